"""Long-context LLM evaluation (M4LE) and RoPE context scaling."""
