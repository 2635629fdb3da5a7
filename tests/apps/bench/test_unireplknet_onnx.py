"""The ``unireplknet_onnx`` benchmark's quick case: both sides run the same deploy weights and agree."""

from __future__ import annotations

import sys

import pytest

from kernelkit.apps.bench import run_benchmarks


def test_quick_case_times_both_sides_on_the_same_weights() -> None:
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    row, exports = run_benchmarks(["unireplknet_onnx"], quick=True, min_run_time=0.01, quiet=True)
    assert row.kernelkit_s and row.baseline_s and row.ratio is not None
    assert float(row.extra["rel_diff_vs_onnx"]) < 1e-5
    assert row.extra["images"] == 1
    assert row.extra["compute_floor_ms"] > 0 and "1.5x_target" in row.extra  # the compute-floor note
    assert "official export" in exports.label  # measured when the official code is importable, else a note says why
    assert exports.baseline_s is not None or "official" in exports.extra["note"]


def test_the_two_exports_agree_when_the_official_code_is_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in "official" module (kernelkit's own model under the official name), both exports run in
    ONNX Runtime and give the same outputs."""
    import types

    from kernelkit.apps.bench import unireplknet
    from kernelkit.models import create_model

    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    fake = types.SimpleNamespace(unireplknet_a=lambda deploy, **kw: create_model("unireplknet_a", deploy=deploy))
    monkeypatch.setattr(unireplknet, "load_official", lambda: (fake, ""))
    _, exports = run_benchmarks(["unireplknet_onnx"], quick=True, min_run_time=0.01, quiet=True)
    assert exports.kernelkit_s and exports.baseline_s
    assert float(exports.extra["rel_diff_between_exports"]) < 1e-5


def test_without_the_onnx_extra_the_row_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    (row,) = run_benchmarks(["unireplknet_onnx"], quick=True, min_run_time=0.01, quiet=True)  # no export row
    assert row.baseline_s is None and row.ratio is None
    assert "kernelkit[onnx]" in row.extra["note"]
