"""DDP under torchrun (2 CPU processes, gloo) equals one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kernelkit.train import distributed
from kernelkit.utils.checkpoint import load_tensors
from kernelkit.utils.io import read_json, read_jsonl

SCRIPT = r'''
import os
import sys
import torch
from torch import nn
from torch.utils.data import TensorDataset
from kernelkit.train import TrainConfig, Trainer, distributed
from kernelkit.utils.io import write_json

torch.set_num_threads(1)
out = sys.argv[1]
distributed.init_from_env()
g = torch.Generator().manual_seed(1)
x = torch.randn(99, 10, generator=g)  # 7 batches of 16; the last has 3 samples, sharded 2 + 1
y = torch.randint(0, 4, (99,), generator=g)
torch.manual_seed(0)
model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 4))
cfg = TrainConfig(epochs=3, batch_size=16, lr=0.2, momentum=0.9, nesterov=True, warmup_steps=3,
                  label_smoothing=0.1, ema_decay=0.8, grad_clip=0.5, checkpoint_every=4, log_every=1, seed=1)
crash_at, calls = int(os.environ.get("CRASH_AT", "0")), [0]

def crash(xb, yb):  # simulated failure of every rank at the same step
    calls[0] += 1
    if calls[0] == crash_at:
        raise SystemExit(3)
    return xb, yb

result = Trainer(model, TensorDataset(x, y), cfg, out, val_set=TensorDataset(x[:35], y[:35]), quiet=True,
                 batch_transform=crash).fit()
if distributed.is_main():
    write_json(out + "/result.json", {"history": result.history, "world": distributed.world_size(),
                                       "last": result.last_checkpoint})
distributed.cleanup()
'''


def test_ddp_two_processes_match_single_process(tmp_path: Path) -> None:
    """The DDP run also fails at step 11 on every rank and is relaunched: it resumes from step 8."""
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "CRASH_AT"):
        env.pop(k, None)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                str(script), str(tmp_path / "ddp")]
    ddp = subprocess.Popen(torchrun, env={**env, "CRASH_AT": "11"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    single = subprocess.Popen([sys.executable, str(script), str(tmp_path / "single")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = ddp.communicate(timeout=180)
    assert ddp.returncode != 0 and not (tmp_path / "ddp" / "result.json").exists(), out.decode()[-3000:]
    assert read_json(tmp_path / "ddp" / "checkpoints" / "latest.json")["step"] == 8
    ddp = subprocess.Popen(torchrun, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for proc in (ddp, single):
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out.decode()[-3000:]

    r1, r2 = read_json(tmp_path / "single" / "result.json"), read_json(tmp_path / "ddp" / "result.json")
    assert (r1["world"], r2["world"]) == (1, 2)
    a, b = load_tensors(r1["last"]), load_tensors(r2["last"])
    compared = [k for k in a if k.startswith(("model.", "ema.", "optim."))]
    assert len(compared) == 12
    diff = max(float((a[k] - b[k]).abs().max()) for k in compared)
    print(f"DDP vs single process: max weight/optimizer difference {diff:.3g}")
    assert diff <= 1e-5, f"max weight/optimizer difference {diff}"
    assert not torch.equal(a["rank0.torch"], b["rank1.torch"])  # every rank's RNG state is kept
    for h1, h2 in zip(r1["history"], r2["history"], strict=True):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], abs=1e-5)
        assert h2["val_loss"] == pytest.approx(h1["val_loss"], abs=1e-5)
        assert (h2["train_acc"], h2["val_acc"]) == (h1["train_acc"], h1["val_acc"])
    # rank 0 alone logs: one record per step, the global-batch mean loss
    l1 = [r["loss"] for r in read_jsonl(tmp_path / "single" / "metrics.jsonl") if "loss" in r]
    l2 = [r["loss"] for r in read_jsonl(tmp_path / "ddp" / "metrics.jsonl") if "loss" in r]
    assert len(l1) == len(l2) == 21
    assert l2 == pytest.approx(l1, abs=1e-5)


def test_helpers_in_a_single_process() -> None:
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    t = torch.arange(3.0)
    assert distributed.all_reduce_sum(t) is t
    assert torch.equal(distributed.all_gather_tensor(t)[0], t)
    assert distributed.device_for_rank("cpu") == torch.device("cpu")


def test_init_from_env_needs_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env() is False
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match="RANK, MASTER_ADDR, MASTER_PORT not set; launch with torchrun"):
        distributed.init_from_env()
