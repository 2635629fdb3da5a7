"""``kernelkit convnet export``: writes the file atomically, reloads it and compares it with the eager model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kernelkit.apps.cli.convnet import app
from kernelkit.models.export import load_exported


def _export(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["export", *args])
    return res.exit_code, res.output


@pytest.mark.parametrize("fmt,suffix", [("exported-program", ".pt2"), ("torchscript", ".pt")])
def test_export_reloads_to_the_eager_outputs(tmp_path: Path, fmt: str, suffix: str) -> None:
    out = tmp_path / f"model{suffix}"
    code, output = _export("unireplknet_a", "--format", fmt, "--deploy", "--out", str(out), "--input-size", "32",
                           "--batch", "2", "--json")
    assert code == 0, output
    result = json.loads(output)
    assert result["reproduces"] and result["max_rel_diff"] <= 1e-4
    assert result["input"] == [2, 3, 32, 32] and result["deploy"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary file left behind
    # the file is a standalone model of the deploy form: no kernelkit op in it, same outputs as a fresh run
    reloaded = load_exported(out, fmt)
    assert reloaded(torch.zeros(2, 3, 32, 32)).shape == (2, 1000)


def test_onnx_export_runs_in_onnx_runtime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "mixnet.onnx"
    code, output = _export("mixnet_s", "--format", "onnx", "--out", str(out), "--input-size", "32")
    assert code == 0, output
    assert "max relative difference to eager" in output and out.is_file()


def test_default_file_name_names_model_and_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = _export("unireplknet_a", "--format", "exported-program", "--deploy", "--input-size", "32",
                           "--quiet")
    assert code == 0, output
    assert (tmp_path / "unireplknet_a-deploy.pt2").is_file()


@pytest.mark.parametrize("args,named", [
    (["nope_net"], "MODEL"),
    (["unireplknet_a", "--format", "tflite"], "--format"),
    (["unireplknet_a", "--batch", "0"], "--batch"),
    (["unireplknet_a", "--input-size", "8"], "--input-size"),
])
def test_bad_options_exit_2_naming_them(args: list[str], named: str) -> None:
    code, output = _export(*args)
    assert code == 2 and named in output and "Traceback" not in output


def test_out_is_a_directory_exits_2(tmp_path: Path) -> None:
    code, output = _export("unireplknet_a", "--format", "torchscript", "--out", str(tmp_path), "--input-size", "32")
    assert code == 2 and "--out" in output and str(tmp_path) in output


def test_missing_onnx_packages_exit_1_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # ``import onnxruntime`` raises ImportError
    code, output = _export("unireplknet_a", "--format", "onnx", "--input-size", "32")
    assert code == 1, output
    assert "pip install 'kernelkit[onnx]'" in output and "onnxruntime" in output
    assert len(output.strip().splitlines()) == 1


def test_a_file_that_does_not_reproduce_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import kernelkit.models.export as export

    real = export.load_exported
    monkeypatch.setattr(export, "load_exported", lambda path, fmt: (lambda x: real(path, fmt)(x) * 1.01))
    out = tmp_path / "m.pt2"
    code, output = _export("unireplknet_a", "--format", "exported-program", "--out", str(out), "--input-size", "32")
    assert code == 1
    assert "does not reproduce" in output and str(out) in output and "Traceback" not in output
