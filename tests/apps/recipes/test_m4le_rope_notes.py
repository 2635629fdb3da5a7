"""The M4LE recipe's notes are computed from the numbers in their tables."""

from __future__ import annotations

from kernelkit.apps.recipes.m4le_rope import position_loss_note


def _rows(losses: list[float], edges: list[int]) -> list[dict]:
    return [{"start": a, "end": b, "loss": v} for a, b, v in zip(edges[:-1], edges[1:], losses, strict=True)]


def test_short_measurement_says_it_shows_nothing_past_the_trained_context():
    edges = [0, 512, 1024, 2048]
    note = position_loss_note({"plain": _rows([3.0, 2.0, 1.5], edges), "yarn x2": _rows([3.1, 2.1, 1.6], edges)},
                              trained=8192)
    assert "yarn x2 +0.100" in note
    assert "Only positions up to 2048 were measured" in note and "Past it" not in note
    assert "flat" not in note


def test_past_the_trained_context_names_the_lowest_loss():
    edges = [0, 4096, 8192, 16384]
    note = position_loss_note({"plain": _rows([2.0, 2.0, 6.0], edges), "ntk x2": _rows([2.1, 2.1, 2.5], edges),
                               "yarn x2": _rows([2.05, 2.0, 2.4], edges)}, trained=8192)
    assert "Past it, mean loss: plain 6.000, ntk x2 2.500, yarn x2 2.400; lowest: yarn x2." in note
    assert "ntk x2 +0.100" in note and "yarn x2 +0.025" in note
