"""The offline default model runs where it is asked to, and `m4le run` records the device it actually ran on."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from kernelkit.longctx.backends.base import Request
from kernelkit.longctx.records import Record, write_records


def test_smollm2_backend_places_its_model_on_the_device(smollm2):
    from kernelkit.longctx.backends import BACKENDS

    backend = BACKENDS.get("smollm2")(device="meta")  # a device with no data: placement only
    assert {p.device.type for p in backend.model.parameters()} == {"meta"}
    assert backend.describe()["device"] == "meta"
    assert BACKENDS.get("smollm2")().describe()["device"] == "cpu"  # the library default


def _run(tmp_path, *device: str):
    from kernelkit.apps.cli.m4le import app

    records = write_records(tmp_path / "r.jsonl", [Record("Answer.", "What is two plus two?\nAnswer:", ["4"], 8, 10,
                                                          1000, {"task": "nq-open", "id": "s0"})])
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "smollm2", "--max-new-tokens", "2",
                                   "--out", str(out), "--quiet", *device])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "config.json").read_text())
    backend = json.loads((out / "results.json").read_text())["sections"]["run"]["backend"]
    return config["device"], backend["device"]


def test_m4le_run_records_the_device_smollm2_ran_on(smollm2, tmp_path):
    recorded, used = _run(tmp_path)  # --device auto
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert recorded.split(":")[0] == used.split(":")[0] == expected


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_smollm2_on_cuda_answers_as_on_cpu(smollm2, tmp_path):
    from kernelkit.longctx.backends import BACKENDS

    requests = [Request("q", "What is the capital of France? Answer in one word.", 6)]
    cpu = BACKENDS.get("smollm2")(chat_template=True).generate(requests)[0]
    gpu_backend = BACKENDS.get("smollm2")(chat_template=True, device="cuda")
    assert gpu_backend.describe()["device"].startswith("cuda")
    assert gpu_backend.generate(requests)[0].text == cpu.text
    recorded, used = _run(tmp_path, "--device", "cuda")
    assert recorded.startswith("cuda") and used.startswith("cuda")
