"""kill -9 in the middle of training, resume in a new process: the run continues exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from kernelkit.utils.checkpoint import load_tensors
from kernelkit.utils.io import read_jsonl

SCRIPT = r'''
import random, sys, time
import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset
from kernelkit.train import TrainConfig, Trainer

torch.set_num_threads(1)
out, delay = sys.argv[1], float(sys.argv[2])
g = torch.Generator().manual_seed(123)
x = torch.randn(120, 8, generator=g)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 3))

def augment(xb, yb):
    time.sleep(delay)  # slows the first process down so it can be killed mid-run
    shift = float(np.random.rand()) * 0.01 + random.random() * 0.01  # numpy and python RNGs
    return xb + 0.05 * torch.randn_like(xb) + shift, yb

cfg = TrainConfig(epochs=4, batch_size=16, optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                  weight_decay=1e-3, warmup_steps=5, label_smoothing=0.1, ema_decay=0.9, grad_clip=1.0,
                  checkpoint_every=3, log_every=1, seed=7)
Trainer(model, TensorDataset(x, y), cfg, out, val_set=TensorDataset(x[:40], y[:40]),
        batch_transform=augment, quiet=True).fit()
'''


def _start(script: Path, out: Path, delay: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(out), str(delay)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _pointer_step(out: Path) -> int:
    try:
        return json.loads((out / "checkpoints" / "latest.json").read_text())["step"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return -1


def _curve(out: Path) -> list[tuple]:
    return [(r["step"], r.get("loss"), r.get("train_loss"), r.get("val_loss"), r.get("val_acc"))
            for r in read_jsonl(out / "metrics.jsonl")]


def test_kill9_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full = _start(script, full_dir, 0.0)
    victim = _start(script, cut_dir, 0.12)  # 8 steps per epoch, 32 in all, checkpoints every 3
    deadline = time.time() + 60
    while _pointer_step(cut_dir) < 13 and time.time() < deadline and victim.poll() is None:
        time.sleep(0.02)
    assert victim.poll() is None, "training finished before it could be killed: " + victim.stdout.read().decode()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    killed_at = _pointer_step(cut_dir)
    assert 13 <= killed_at < 32  # with work left to do (normally 15: mid-epoch; the in-process tests pin that)

    resumed = _start(script, cut_dir, 0.0)
    for proc in (full, resumed):
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out.decode()

    a = load_tensors(full_dir / "checkpoints" / "step-00000032.safetensors")
    b = load_tensors(cut_dir / "checkpoints" / "step-00000032.safetensors")
    assert a.keys() == b.keys()
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())
    print(f"resumed vs uninterrupted: max difference {diff:.3g}")
    assert diff == 0.0, f"max difference {diff}"  # weights, EMA, optimizer buffers and RNG states
    wa, wb = load_tensors(full_dir / "model.safetensors"), load_tensors(cut_dir / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the loss curve: every step's loss and every epoch's metrics, including those after the resume point
    curve = _curve(full_dir)
    assert len([c for c in curve if c[1] is not None]) == 32
    assert _curve(cut_dir) == curve
