"""Next-token loss by position against transformers' own language-model loss."""

from __future__ import annotations

import pytest


def test_position_losses_match_the_models_own_loss(tiny_lm):
    import torch

    from kernelkit.longctx.perplexity import position_losses

    model, _tok, _ = tiny_lm
    torch.manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (300,))
    rows = position_losses(model, ids, [0, 100, 200, 300], chunk=64)  # chunks cross the range edges
    assert [(r["start"], r["end"], r["tokens"]) for r in rows] == [(0, 100, 99), (100, 200, 100), (200, 300, 100)]
    with torch.no_grad():
        whole = float(model(ids[None], labels=ids[None]).loss)  # mean over target positions 1..299
        logits = model(ids[None]).logits[0, :-1].double()
        per_token = torch.nn.functional.cross_entropy(logits, ids[1:], reduction="none")
    mean = sum(r["loss"] * r["tokens"] for r in rows) / sum(r["tokens"] for r in rows)
    assert mean == pytest.approx(whole, rel=1e-5)
    assert rows[1]["loss"] == pytest.approx(float(per_token[99:199].mean()), rel=1e-5)


def test_long_text_and_ranges_reject_bad_input(tiny_lm):
    from kernelkit.longctx.perplexity import long_text, position_ranges

    _model, tok, _ = tiny_lm
    ids = long_text({"a": ["one two three"], "b": ["four five six seven"]}, tok, 6)
    assert ids.numel() == 6
    with pytest.raises(ValueError, match="fewer than"):
        long_text(["short"], tok, 1000)
    with pytest.raises(ValueError, match="increase"):
        position_ranges(10, [0, 5, 5])
    assert position_ranges(10, [0, 4, 8, 16]) == [(0, 4), (4, 8), (8, 10)]
