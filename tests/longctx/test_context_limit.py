"""The context a backend runs with: trained context x the RoPE factor, or --max-context."""

from __future__ import annotations

import pytest

from kernelkit.longctx.backends.base import Request


@pytest.fixture(scope="module")
def short_lm(smollm2, tmp_path_factory):
    """A 2-layer random Llama trained (configured) for 128 positions, with SmolLM2's tokenizer."""
    from tests.lm_fixtures import save_tiny_llama

    _, tok = smollm2
    folder = tmp_path_factory.mktemp("short_lm")
    save_tiny_llama(tok, folder, max_position_embeddings=128)
    return tok, folder


def _prompt(tok, n: int) -> str:
    text = " ".join(f"w{i}" for i in range(n))
    ids = tok(text)["input_ids"]
    assert len(ids) >= 300
    return tok.decode(ids[:300])


@pytest.mark.parametrize(("rope", "limit"), [("none", 128), ("linear", 512), ("ntk", 512), ("yarn", 512),
                                             ("dynamic", 512)])
def test_the_limit_is_the_trained_context_times_the_factor(short_lm, rope, limit):
    from kernelkit.longctx.backends import BACKENDS

    tok, folder = short_lm
    be = BACKENDS.get("hf")(str(folder), rope=rope, rope_factor=4.0, progress=False)
    assert be.max_context == limit
    assert be.describe()["trained_context"] == 128
    prompt = _prompt(tok, 400)
    n = len(be.encode(prompt))
    (res,) = be.generate([Request("a", prompt, 4)])
    assert res.ok, res.error
    if rope == "none":  # cut to 128 - 4 tokens for the answer
        assert res.truncated and res.prompt_tokens == 124 and res.info["prompt_tokens_before_cut"] == n
    else:  # the 300-token prompt stays whole past the 128 trained positions
        assert not res.truncated and res.prompt_tokens == n and n >= 299


def test_max_context_overrides_the_limit(short_lm):
    from kernelkit.longctx.backends import BACKENDS

    tok, folder = short_lm
    be = BACKENDS.get("hf")(str(folder), rope="dynamic", rope_factor=2.0, max_context=200, progress=False)
    assert be.max_context == 200
    (res,) = be.generate([Request("a", _prompt(tok, 400), 4)])
    assert res.truncated and res.prompt_tokens == 196


def test_context_limit_rules():
    from types import SimpleNamespace

    from kernelkit.longctx.rope import context_limit

    model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=1000))
    assert context_limit(model) == 1000
    assert context_limit(model, 64) == 64
    model._kernelkit_rope_origin = (10000.0, 1000)
    model._kernelkit_rope_applied = ("yarn", 2.5)
    assert context_limit(model) == 2500
    with pytest.raises(ValueError, match="max_context"):
        context_limit(model, 0)
    assert context_limit(SimpleNamespace(config=SimpleNamespace())) is None
