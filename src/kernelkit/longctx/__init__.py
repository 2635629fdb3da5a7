"""Long-context LLM evaluation (M4LE) and RoPE context scaling.

Modules: ``length`` (word/character lengths, buckets), ``metrics`` (the reference's scorers; it names no
task), ``records`` (the M4LE jsonl schema), ``rope`` (RoPE scaling math and model patching), ``tasks`` (the
task registry: each task's source, builder, prompt, metric and stop marks in one definition; scoring by task
name), ``backends`` (HF, OpenAI-compatible, offline default model; each backend owns its model), ``runner``
(resumable evaluation), ``scoring`` (tables, normalisation, plots as ``matplotlib.figure.Figure``),
``perplexity`` (next-token loss by position), ``serve`` (an OpenAI-compatible server over a backend).
"""

from kernelkit.longctx.length import BUCKETS, EXTENDED_BUCKETS, text_length

__all__ = ["BUCKETS", "EXTENDED_BUCKETS", "text_length"]
