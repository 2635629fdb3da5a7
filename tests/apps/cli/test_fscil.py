"""``kernelkit fscil run`` end to end (subprocess): outputs, config.json and usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

from kernelkit.apps.configs.fscil import DATASET_DEFAULTS, FscilRunConfig
from kernelkit.fscil import TeenConfig
from kernelkit.fscil.data import DATASETS


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KERNELKIT_DATA": ""}
    return subprocess.run([sys.executable, "-m", "kernelkit", "fscil", "run", *args], capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_run_writes_sessions_confusion_plots_and_every_input(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _cli("--dataset", "digits", "--epochs", "1", "--width", "4", "--batch-size", "64", "--lr", "0.05",
                "--threads", "2", "--out", str(out), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(proc.stdout)
    sec = results["sections"]["fscil"]
    assert set(sec["sessions"]) == {"prototype", "teen(tau=16,alpha=0.1)"}
    assert [s["session"] for s in sec["sessions"]["prototype"]] == [0, 1, 2]
    for name in ("fscil_accuracy_per_session.png", "fscil_new_to_base.png"):
        assert (out / "plots" / name).stat().st_size > 0
    report = (out / "report.html").read_text()
    assert "Confusion summary" in report and "EMBEDDED FALLBACK" in report and "TEEN (utils.harm_mean)" in report
    assert "Published (Wang et al. 2023, NeurIPS, TEEN," in report  # the paper's numbers in a box of their own
    teen = sec["summary"]["teen(tau=16,alpha=0.1)"]
    assert f"this run&#x27;s TEEN: session 0 {100 * teen['acc'][0]:.2f}%, last {100 * teen['last']:.2f}%" in report
    assert "dataset: digits here, " in report and "1 base epoch here" in report
    config = json.loads((out / "config.json").read_text())
    assert set(config) == {f.name for f in fields(FscilRunConfig)}
    d = DATASET_DEFAULTS["digits"]
    assert config["tau"] == TeenConfig.tau and config["alpha"] == d.alpha and config["temperature"] == d.temperature
    assert config["backbone"] == d.backbone and config["width"] == 4 and config["epochs"] == 1
    assert config["methods"] == ["prototype", "teen"] and config["threads"] == 2 and config["device"] == "cpu"


def test_cli_bad_input_exits_with_a_clear_message(tmp_path: Path) -> None:
    proc = _cli("--dataset", "cifar100", "--data-dir", str(tmp_path), "--epochs", "0", "--out", str(tmp_path / "r"))
    assert proc.returncode == 2
    assert "cifar-100-python" in proc.stderr
    proc = _cli("--dataset", "digits", "--method", "fancy", "--out", str(tmp_path / "r2"))
    assert proc.returncode == 2 and "unknown" in proc.stderr and "fancy" in proc.stderr
    proc = _cli("--dataset", "digits", "--alpha", "1.5", "--out", str(tmp_path / "r3"))
    assert proc.returncode == 2 and "--alpha" in proc.stderr and "[0, 1]" in proc.stderr


def test_dataset_defaults_are_filled_in_once() -> None:
    assert tuple(DATASET_DEFAULTS) == DATASETS  # one table per dataset, in the library's order
    cfg = FscilRunConfig(dataset="mini_imagenet").resolved()
    d = DATASET_DEFAULTS["mini_imagenet"]
    assert (cfg.backbone, cfg.alpha, cfg.temperature) == (d.backbone, d.alpha, d.temperature)
    assert FscilRunConfig(dataset="cifar100", alpha=0.0, backbone="resnet8").resolved().alpha == 0.0
    assert asdict(cfg.resolved()) == asdict(cfg)
    assert cfg.train().augment == d.augment and cfg.train().temperature == d.temperature
