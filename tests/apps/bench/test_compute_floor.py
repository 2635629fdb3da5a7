"""The compute floor of a benchmark case: FLOPs counted exactly, the rule that states a target's reach."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kernelkit.apps.bench import compute_floor


def test_model_flops_count_two_per_multiply_add() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 5 * 5, 7))
    x = torch.zeros(2, 3, 5, 5)
    conv = 8 * 5 * 5 * 3 * 3 * 3  # multiply-adds per sample: outputs x taps x input channels
    linear = 8 * 5 * 5 * 7
    assert compute_floor.model_flops(model, x) == 2 * 2 * (conv + linear)


def test_gemm_rate_is_a_measured_positive_rate() -> None:
    rate = compute_floor.gemm_rate(torch.get_num_threads(), ((64, 64, 64),))
    assert 1e6 < rate < 1e15  # FLOP/s: more than a megaflop, less than a petaflop on any CPU


@pytest.mark.parametrize(("baseline_s", "need_pct", "verdict"), [
    (1.2, 125.0, "out of reach"),  # 1.5x of 1.2 s is 0.8 s, under the 1 s floor
    (3.0, 50.0, "not excluded"),  # 2 s needed, twice the floor
])
def test_floor_notes_state_the_target_by_the_rule(monkeypatch: pytest.MonkeyPatch, baseline_s: float,
                                                  need_pct: float, verdict: str) -> None:
    monkeypatch.setattr(compute_floor, "gemm_rate", lambda threads: 2e9)
    notes = compute_floor.floor_notes(2_000_000_000, 4.0, baseline_s, 1.5, "ort")  # floor: 1 s
    assert notes["compute_floor_ms"] == 1000.0
    assert notes["kernelkit_pct_of_gemm_rate"] == 25.0
    assert notes["ort_pct_of_gemm_rate"] == round(100 / baseline_s, 1)
    assert notes["1.5x_target_needs_pct_of_gemm_rate"] == need_pct
    assert notes["1.5x_target"].startswith(verdict)


def test_floor_notes_without_a_baseline_give_the_floor_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute_floor, "gemm_rate", lambda threads: 1e9)
    notes = compute_floor.floor_notes(3_000_000, None, None, 1.5, "ort")
    assert notes == {"model_gflop": 0.0, "gemm_gflop_per_s": 1.0, "compute_floor_ms": 3.0}
