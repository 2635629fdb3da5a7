"""RoPE math against transformers' own rope functions and the closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from kernelkit.longctx import rope

transformers = pytest.importorskip("transformers")
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402

CASES = [(64, 10000.0, 2.0), (128, 10000.0, 4.0), (64, 100000.0, 2.0), (96, 500000.0, 8.0), (32, 10000.0, 1.5)]


def _config(dim: int, base: float, length: int, rope_params: dict):
    from transformers import LlamaConfig

    if rope.keeps_rope_parameters():  # transformers 5.x
        settings: dict = {"rope_parameters": {"rope_theta": base, **rope_params}}
    else:  # 4.x (the floor): rope_theta + rope_scaling
        settings = {"rope_theta": base, "rope_scaling": rope_params}
    return LlamaConfig(hidden_size=dim * 2, num_attention_heads=2, head_dim=dim, num_key_value_heads=2,
                       max_position_embeddings=length, **settings)


@pytest.mark.parametrize("dim,base,factor", CASES)
def test_linear_matches_transformers(dim, base, factor):
    cfg = _config(dim, base, 4096, {"rope_type": "linear", "factor": factor})
    ref, att = ROPE_INIT_FUNCTIONS["linear"](cfg, None)
    ours = rope.inv_freq(dim, base, "linear", factor)
    assert torch.max(torch.abs(ours - ref.double())).item() < 1e-6
    assert att == rope.attention_factor("linear", factor) == 1.0


@pytest.mark.parametrize("dim,base,factor", CASES)
@pytest.mark.parametrize("seq_len", [1000, 4096, 8192, 20000])
def test_dynamic_matches_transformers(dim, base, factor, seq_len):
    cfg = _config(dim, base, 4096, {"rope_type": "dynamic", "factor": factor})
    ref, _ = ROPE_INIT_FUNCTIONS["dynamic"](cfg, None, seq_len=seq_len)
    ours = rope.inv_freq(dim, base, "dynamic", factor, seq_len=seq_len, max_position_embeddings=4096)
    assert torch.max(torch.abs(ours - ref.double())).item() < 1e-6


@pytest.mark.parametrize("dim,base,factor", CASES)
@pytest.mark.parametrize("length", [2048, 4096, 8192])
def test_yarn_matches_transformers(dim, base, factor, length):
    cfg = _config(dim, base, length, {"rope_type": "yarn", "factor": factor,
                                       "original_max_position_embeddings": length})
    ref, att = ROPE_INIT_FUNCTIONS["yarn"](cfg, None)
    ours = rope.inv_freq(dim, base, "yarn", factor, max_position_embeddings=length)
    assert torch.max(torch.abs(ours - ref.double())).item() < 1e-6
    assert abs(att - rope.yarn_attention_factor(factor)) < 1e-12


def test_static_ntk_closed_form():
    # LLaMA2-7B (d=128): s=2 -> 20221.26, s=4 -> 40889.94 (spec numbers); highest frequency unchanged,
    # lowest divided by exactly s.
    assert rope.ntk_aware_base(10000, 2, 128) == pytest.approx(20221.26, abs=0.01)
    assert rope.ntk_aware_base(10000, 4, 128) == pytest.approx(40889.94, abs=0.01)
    for dim, base, factor in CASES:
        plain = rope.inv_freq(dim, base)
        ntk = rope.inv_freq(dim, base, "ntk", factor)
        assert ntk[0].item() == pytest.approx(1.0)
        assert (plain[-1] / ntk[-1]).item() == pytest.approx(factor, rel=1e-12)
        expected = (base * factor ** (dim / (dim - 2))) ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        assert torch.allclose(ntk, expected, rtol=1e-12, atol=0)


def test_dynamic_spec_number_and_identity_below_length():
    assert rope.dynamic_ntk_base(10000, 2, 128, 8192, 4096) == pytest.approx(30527.74, abs=0.01)
    assert rope.dynamic_ntk_base(10000, 2, 128, 100, 4096) == 10000
    assert rope.yarn_attention_factor(2) == pytest.approx(1 + 0.1 * math.log(2))
    assert rope.yarn_correction_range(128, 10000, 4096) == (20, 46)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown RoPE method"):
        rope.inv_freq(64, 10000, "ntk-by-magic", 2)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        rope.inv_freq(64, 10000, "yarn", 2)
    with pytest.raises(ValueError, match="factor"):
        rope.inv_freq(64, 10000, "linear", 0.5)


@pytest.fixture(scope="module")
def tiny_llama():
    # built with `rope_parameters=` on every version: 4.x keeps it as an unread attribute, which must not make
    # apply_rope_scaling write its settings where 4.x does not look
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("method", ["linear", "ntk", "dynamic", "yarn"])
def test_apply_rope_scaling_sets_module_frequencies(tiny_llama, method):
    ids = torch.arange(40).unsqueeze(0) % 64
    with torch.no_grad():
        rope.apply_rope_scaling(tiny_llama, "none")
        plain = tiny_llama(ids).logits
        applied = rope.apply_rope_scaling(tiny_llama, method, 2.0)
        emb = tiny_llama.model.rotary_emb
        expected = rope.inv_freq(16, 10000.0, method, 2.0, max_position_embeddings=64)
        assert torch.max(torch.abs(emb.inv_freq.double() - expected)).item() < 1e-6
        assert emb.attention_scaling == pytest.approx(rope.attention_factor(method, 2.0))
        scaled = tiny_llama(ids).logits
        # re-applying switches rather than compounding
        rope.apply_rope_scaling(tiny_llama, method, 2.0)
        assert torch.allclose(tiny_llama.model.rotary_emb.inv_freq, emb.inv_freq)
        rope.apply_rope_scaling(tiny_llama, "none")
        back = tiny_llama(ids).logits
    assert applied["rope_theta"] > 0
    if method == "dynamic":  # 40 tokens < 64 trained positions: dynamic NTK leaves the model as it was
        assert torch.allclose(plain, scaled, atol=1e-6)
    else:
        assert not torch.allclose(plain, scaled, atol=1e-4)
    assert torch.allclose(plain, back, atol=1e-6)


def test_rope_settings_read_alike_on_every_transformers_version(tiny_llama):
    rope.apply_rope_scaling(tiny_llama, "linear", 2.0)
    assert rope.rope_settings(tiny_llama.config) == {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    rope.apply_rope_scaling(tiny_llama, "ntk", 2.0)
    assert rope.rope_settings(tiny_llama.config) == {"rope_type": "default",
                                                     "rope_theta": rope.ntk_aware_base(10000.0, 2.0, 16)}
    rope.apply_rope_scaling(tiny_llama, "none")
    assert rope.rope_settings(tiny_llama.config) == {"rope_type": "default", "rope_theta": 10000.0}
