"""Model fixtures shared by the longctx and M4LE application tests: the offline SmolLM2 (loaded once) and a tiny random
Llama. Registered for the whole suite by tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smollm2():
    """(model, tokenizer) of the offline default model; skipped when its packages are missing."""
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from kernelkit.longctx.backends.hf import load_smollm2, smollm2_dir

    try:
        smollm2_dir()
    except (ImportError, FileNotFoundError) as exc:
        pytest.skip(str(exc))
    return load_smollm2()


def save_tiny_llama(tok, folder, max_position_embeddings: int = 4096):
    """A 2-layer random Llama (seed 0) with tokenizer ``tok``, saved to ``folder``; returns the model."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=max_position_embeddings,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model


@pytest.fixture(scope="session")
def tiny_lm(smollm2, tmp_path_factory):
    """A 2-layer random Llama with SmolLM2's tokenizer, saved to disk: ``(model, tokenizer, folder)``."""
    _, tok = smollm2
    folder = tmp_path_factory.mktemp("tiny_lm")
    return save_tiny_llama(tok, folder), tok, folder
