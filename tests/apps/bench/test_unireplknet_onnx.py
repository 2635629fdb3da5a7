"""The ``unireplknet_onnx`` benchmark's quick case: both sides run the same deploy weights and agree."""

from __future__ import annotations

import sys

import pytest

from kernelkit.apps.bench import run_benchmarks


def test_quick_case_times_both_sides_on_the_same_weights() -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    (row,) = run_benchmarks(["unireplknet_onnx"], quick=True, min_run_time=0.01, quiet=True)
    assert row.kernelkit_s and row.baseline_s and row.ratio is not None
    assert float(row.extra["rel_diff_vs_onnx"]) < 1e-5
    assert row.extra["images"] == 1


def test_without_the_onnx_extra_the_row_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    (row,) = run_benchmarks(["unireplknet_onnx"], quick=True, min_run_time=0.01, quiet=True)
    assert row.baseline_s is None and row.ratio is None
    assert "kernelkit[onnx]" in row.extra["note"]
