"""The WideResNet-kernel benchmark: kernelkit's child runs, and the memory-target rule names what is reachable."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from kernelkit.apps.bench import ntk_wideresnet, run_benchmarks


@pytest.mark.parametrize(("ours", "ref_peak", "verdict"), [
    ({"peak_mb": 240.0, "torch_mb": 218.0}, 1000.0, "met"),
    ({"peak_mb": 260.0, "torch_mb": 218.0}, 1000.0, "not met"),
    ({"peak_mb": 240.0, "torch_mb": 218.0}, 800.0, "out of reach: import torch alone exceeds it"),
])
def test_memory_target_rule(ours: dict[str, float], ref_peak: float, verdict: str) -> None:
    notes = ntk_wideresnet._memory_target_notes(ours, {"peak_mb": ref_peak})
    assert notes["whole_process_quarter_target"] == verdict
    assert notes["import_torch_over_baseline_peak"] == round(218.0 / ref_peak, 3)


def test_quick_rows_measure_kernelkit_and_a_stand_in_reference(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for neural-tangents' interpreter reports fixed numbers; the rows carry both sides and the rule."""
    fake = tmp_path / "fake-python"
    reply = {"seconds": 2.0, "min_s": 1.9, "max_s": 2.1, "first_call_s": 5.0, "peak_mb": 4000.0,
             "base_mb": 600.0, "max_rel_diff": 1e-9}
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(reply)}'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("KERNELKIT_NT_PYTHON", str(fake))
    rows = run_benchmarks(["ntk_wideresnet"], quick=True, quiet=True)
    assert [r.extra["dtype"] for r in rows] == ["float32", "float64"]
    for row in rows:
        assert row.kernelkit_s and row.baseline_s == 2.0
        assert 50 < row.extra["rss_after_import_torch_mb"] <= row.extra["peak_rss_mb"]
        assert row.extra["whole_process_quarter_target"] == "met"  # a 4 GB reference peak leaves 1 GB
