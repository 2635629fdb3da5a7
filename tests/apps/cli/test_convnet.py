"""``kernelkit convnet``: erf, train, modality, mixnet-info, mixconv-ablation; config.json is asdict(config)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import numpy as np
import pytest
from typer.testing import CliRunner

from kernelkit.apps.cli.convnet import app
from kernelkit.apps.configs.convnet import (
    AblationConfig,
    ConvnetTrainConfig,
    ErfConfig,
    MixconvAblationCommandConfig,
    MixnetInfoConfig,
    ModalityConfig,
)


def _read(run, name: str = "results.json") -> dict:
    return json.loads((run / name).read_text())


def test_erf_large_vs_small_kernel(tmp_path) -> None:
    res = CliRunner().invoke(app, ["erf", "--model", "unireplknet_a", "--images", "1", "--size", "32",
                                   "--out", str(tmp_path / "run"), "--data-dir", str(tmp_path), "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    ratios = _read(tmp_path / "run")["sections"]["erf"]["area_ratios"]
    assert set(ratios) == {"unireplknet_a", "unireplknet_a (large kernels → 3)"}
    config = _read(tmp_path / "run", "config.json")
    assert set(config) == {f.name for f in fields(ErfConfig)}
    assert config["images"] == 1 and config["size"] == 32 and config["compare_kernel"] == 3
    bad = CliRunner().invoke(app, ["erf", "--model", "unireplknet_zz", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "unireplknet_zz" in bad.output


def test_train_on_the_generated_long_range_task(tmp_path) -> None:
    res = CliRunner().invoke(app, ["train", "--model", "unireplknet_a", "--data", "torus", "--limit", "40",
                                   "--max-steps", "2", "--batch-size", "16", "--epochs", "1", "--device", "cpu",
                                   "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    out = _read(tmp_path / "run")["sections"]["train"]
    assert out["reparam_rel_err"] < 1e-4
    config = _read(tmp_path / "run", "config.json")
    assert set(config) == {f.name for f in fields(ConvnetTrainConfig)}
    assert config["data"] == "torus" and config["limit"] == 40 and config["max_steps"] == 2
    bad = CliRunner().invoke(app, ["train", "--data", "imagenet", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "imagenet" in bad.output


@pytest.mark.parametrize("kind,extra,in_chans,per_sample", [
    ("audio", [], 1, 1),
    ("timeseries", ["--d-model", "48"], 1, 1),  # 48 steps x 48 -> 1x48x48
    ("pointcloud", ["--view-size", "32"], 3, 4),
    ("video", ["--frame-size", "8"], 3, 1),  # 16 frames of 8x8 -> 32x32
])
def test_modality_builds_maps_and_runs_the_network(tmp_path, kind: str, extra: list[str], in_chans: int,
                                                   per_sample: int) -> None:
    res = CliRunner().invoke(app, ["modality", "--modality", kind, "--batch", "2", *extra,
                                   "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    out = _read(tmp_path / "run")["sections"]["modality"]
    assert out["in_chans"] == in_chans and out["maps_per_sample"] == per_sample and out["logits_finite"]
    assert out["shapes"]["per-sample logits"] == [2, ModalityConfig.num_classes]
    assert out["shapes"]["network input (maps)"][0] == 2 * per_sample
    assert set(_read(tmp_path / "run", "config.json")) == {f.name for f in fields(ModalityConfig)}


def test_modality_reads_a_numpy_file_and_names_bad_input(tmp_path) -> None:
    wave = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32)
    np.save(tmp_path / "wave.npy", wave)
    res = CliRunner().invoke(app, ["modality", "--modality", "audio", "--input", str(tmp_path / "wave.npy"),
                                   "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert _read(tmp_path / "run")["sections"]["modality"]["shapes"]["network input (maps)"] == [1, 1, 128, 128]
    bad = CliRunner().invoke(app, ["modality", "--modality", "smell", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "smell" in bad.output
    np.save(tmp_path / "short.npy", wave[:, :100])
    short = CliRunner().invoke(app, ["modality", "--input", str(tmp_path / "short.npy"), "--out", str(tmp_path / "r3")])
    assert short.exit_code == 2 and "--input" in short.output


def test_mixnet_info_records_its_config(tmp_path) -> None:
    res = CliRunner().invoke(app, ["mixnet-info", "--model", "mixnet_s", "--size", "64", "--out",
                                   str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    out = _read(tmp_path / "run")["sections"]["info"]
    assert out["params"] == 4_134_606
    config = _read(tmp_path / "run", "config.json")
    assert set(config) == {f.name for f in fields(MixnetInfoConfig)} and config["size"] == 64


def test_mixconv_ablation_command_records_the_resolved_ablation(tmp_path) -> None:
    res = CliRunner().invoke(app, ["mixconv-ablation", "--quick", "--dataset", "digits", "--kernel-sets", "3;3,5",
                                   "--seeds", "1", "--epochs", "1", "--image-size", "8", "--train-per-class", "5",
                                   "--seed", "3", "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    config = _read(tmp_path / "run", "config.json")
    want = asdict(AblationConfig.quick())
    want.update(dataset="digits", kernel_sets=[[3], [3, 5]], seeds=[3], epochs=1, image_size=8, train_per_class=5)
    assert config["ablation"] == json.loads(json.dumps(want))
    assert set(config) == {f.name for f in fields(MixconvAblationCommandConfig)} and config["quick"] is True
    rows = _read(tmp_path / "run")["sections"]["mixconv_ablation"]["mixconv_ablation"]["runs"]
    assert [(r["kernels"], r["seed"]) for r in rows] == [("dw3x3", 3), ("mix35", 3)]
    bad = CliRunner().invoke(app, ["mixconv-ablation", "--kernel-sets", "4", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "--kernel-sets" in bad.output


def test_option_defaults_come_from_the_configs() -> None:
    import inspect

    from kernelkit.apps.cli import mixconv, unireplknet

    for fn, cls in ((unireplknet.erf, ErfConfig), (unireplknet.train, ConvnetTrainConfig),
                    (mixconv.mixnet_info, MixnetInfoConfig)):
        params = inspect.signature(fn).parameters
        for f in fields(cls):
            if f.name in params:
                assert params[f.name].default == getattr(cls(), f.name), (fn.__name__, f.name)


def test_rerun_into_the_same_out_with_other_settings_or_no_intact_checkpoint_exits_cleanly(tmp_path) -> None:
    import subprocess
    import sys

    def train(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kernelkit", "convnet", "train", "--model", "unireplknet_a",
                               "--data", "torus", "--limit", "40", "--max-steps", "2", "--batch-size", "16",
                               "--epochs", "1", "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "run"),
                               "--quiet", *extra], capture_output=True, text=True, timeout=300)

    first = train()
    assert first.returncode == 0, first.stderr
    other = train("--lr", "0.5")
    assert other.returncode == 2 and "--out" in other.stderr and "lr" in other.stderr
    assert "Traceback" not in other.stderr + other.stdout
    for ckpt in (tmp_path / "run").rglob("step-*.safetensors"):
        ckpt.write_bytes(b"broken")
    broken = train()
    assert broken.returncode == 1 and "Traceback" not in broken.stderr + broken.stdout
    assert "step-" in broken.stderr
