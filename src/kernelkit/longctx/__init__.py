"""Long-context LLM evaluation (M4LE) and RoPE context scaling.

Modules: ``length`` (word/character lengths, buckets), ``metrics`` (the reference's metrics),
``records`` (the M4LE jsonl schema), ``rope`` (RoPE scaling math and model patching), ``tasks``
(builders for the five abilities), ``backends`` (HF, OpenAI-compatible, offline default model),
``runner`` (resumable evaluation), ``scoring`` (tables, normalisation, plots).
"""

from kernelkit.longctx.length import BUCKETS, EXTENDED_BUCKETS, text_length

__all__ = ["BUCKETS", "EXTENDED_BUCKETS", "text_length"]
