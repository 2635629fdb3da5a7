"""Blocked kernels: equal to the whole-matrix kernels, resumable after SIGKILL, split over torchrun ranks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from kernelkit import ntk
from kernelkit.ntk.blocked import block_tasks, done_blocks, kernel_blocks, kernel_fn


def _fc() -> nn.Module:
    return ntk.nn.Sequential(ntk.nn.Dense(512, bias_std=0.1), ntk.nn.ReLU(), ntk.nn.Dense(512, bias_std=0.1),
                             ntk.nn.ReLU(), ntk.nn.Dense(1, bias_std=0.1))


def _x(n: int, seed: int = 0) -> Tensor:
    return torch.randn(n, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class _Counting:
    def __init__(self, fn: ntk.blocked.KernelFn) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, xa: Tensor, xb: Tensor | None) -> Tensor:
        self.calls += 1
        return self.fn(xa, xb)


@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_symmetric_analytic_matches_whole_matrix(get: str, tmp_path: Path) -> None:
    x = _x(45)
    net = _fc()
    fn = _Counting(kernel_fn(ntk.analytic, net, get=get))
    k = kernel_blocks(fn, x, block=10, out="host", progress=False)
    # the upper triangle of 5 x 5 blocks only, after one 1 x 1 call that tells the shape
    assert fn.calls == 1 + len(block_tasks(45, 45, 10, True)) == 1 + 15
    ref = ntk.analytic(net, x).get(get)
    # the ReLU kernels' arccos is ill-conditioned at correlation 1, so the diagonal moves by ~1e-9 when the
    # inner products are summed in another order; everything else agrees to rounding
    off = ~torch.eye(45, dtype=torch.bool)
    assert torch.allclose(k[off], ref[off], rtol=1e-12, atol=1e-14)
    assert torch.allclose(k.diagonal(), ref.diagonal(), rtol=1e-8)
    assert torch.equal(k, k.T)
    on_disk = kernel_blocks(fn, x, block=10, out=tmp_path / "k.npy", progress=False)
    assert torch.equal(on_disk, k) and torch.equal(torch.from_numpy(np.load(tmp_path / "k.npy")), k)
    assert torch.equal(kernel_blocks(fn, x, block=10, out="device", progress=False), k)


def test_stacked_nngp_and_ntk_in_one_pass_equal_separate_passes(tmp_path: Path) -> None:
    x, y = _x(30), _x(12, 1)
    net = _fc()
    both = _Counting(kernel_fn(ntk.analytic, net, get=("nngp", "ntk")))
    stacked = kernel_blocks(both, x, block=8, out=tmp_path / "both.npy", progress=False)
    assert stacked.shape == (2, 30, 30) and both.calls == 1 + 10
    for s, get in enumerate(("nngp", "ntk")):
        alone = kernel_blocks(kernel_fn(ntk.analytic, net, get=get), x, block=8, out="host", progress=False)
        assert torch.equal(stacked[s], alone)
        assert torch.equal(stacked[s], stacked[s].T)
    rect = kernel_blocks(kernel_fn(ntk.analytic, net, get=("nngp", "ntk")), x, y, block=8, out="host",
                         progress=False)
    ref = ntk.analytic(net, x, y)
    assert torch.allclose(rect[0], ref.nngp, rtol=1e-12) and torch.allclose(rect[1], ref.ntk, rtol=1e-12)


def test_rectangular_empirical_and_monte_carlo_match_direct_calls() -> None:
    x1, x2 = _x(23, 1), _x(17, 2)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 3)).double()
    fn = _Counting(kernel_fn(ntk.empirical, model))
    k = kernel_blocks(fn, x1, x2, block=8, progress=False)
    assert fn.calls == 1 + 3 * 3 and k.shape == (23, 17)
    assert torch.allclose(k, ntk.empirical(model, x1, x2), rtol=1e-12, atol=1e-14)

    def make() -> nn.Module:
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2)).double()

    mc = kernel_blocks(kernel_fn(ntk.monte_carlo, make, get="nngp", n_samples=3), x1, x2, block=8, progress=False)
    assert torch.allclose(mc, ntk.monte_carlo(make, x1, x2, n_samples=3).nngp, rtol=1e-12, atol=1e-14)


def test_errors_name_the_problem(tmp_path: Path) -> None:
    x = _x(8)
    with pytest.raises(ValueError, match="block must be"):
        kernel_blocks(kernel_fn(ntk.analytic, _fc(), get="ntk"), x, block=0)
    with pytest.raises(ValueError, match="pass get="):
        kernel_blocks(kernel_fn(ntk.analytic, _fc()), x, block=4, progress=False)
    bad = x.clone()
    bad[5, 2] = float("nan")
    with pytest.raises(ValueError, match="x2 contains 1 NaN"):
        kernel_blocks(kernel_fn(ntk.analytic, _fc(), get="ntk"), x, bad, block=4)
    with pytest.raises(ValueError, match="mismatched feature shapes"):
        kernel_blocks(kernel_fn(ntk.analytic, _fc(), get="ntk"), x, x[:, :3], block=4)
    with pytest.raises(ValueError, match=r"must return a \(4, 4\) tensor"):
        kernel_blocks(lambda a, b: torch.zeros(len(a) % 4, len(a) % 4), x, block=4, progress=False)
    with pytest.raises(ValueError, match=r"\(\.\.\., 1, 1\) tensor for a 1 x 1 block"):
        kernel_blocks(lambda a, b: torch.zeros(3), x, block=4, progress=False)
    path = tmp_path / "k.npy"
    kernel_blocks(kernel_fn(ntk.analytic, _fc(), get="ntk"), x, block=4, out=path, progress=False)
    with pytest.raises(ValueError, match="records blocks of another kernel"):
        kernel_blocks(kernel_fn(ntk.analytic, _fc(), get="ntk"), x + 1, block=4, out=path, progress=False)
    k = kernel_blocks(kernel_fn(ntk.analytic, _fc(), get="ntk"), x + 1, block=4, out=path, resume=False,
                      progress=False)
    assert torch.allclose(k, ntk.analytic(_fc(), x + 1).ntk, rtol=1e-8)


SCRIPT = r'''
import json
import os
import sys
import time
import torch
from kernelkit import ntk
from kernelkit.ntk.blocked import kernel_blocks, kernel_fn
from kernelkit.train import distributed

torch.set_num_threads(1)
distributed.init_from_env()
out = sys.argv[1]
delay = float(os.environ.get("BLOCK_DELAY", "0"))
x = torch.randn(40, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
y = torch.randn(13, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
net = ntk.nn.Sequential(ntk.nn.Dense(512, bias_std=0.1), ntk.nn.ReLU(), ntk.nn.Dense(1, bias_std=0.1))
inner = kernel_fn(ntk.analytic, net, get="ntk")
calls = [0]

def fn(a, b):
    calls[0] += 1
    if delay:
        time.sleep(delay)  # a slow kernel, so that the run can be killed part-way
    return inner(a, b)

kernel_blocks(fn, x, block=8, out=out + "/k.npy", progress=False)
host = kernel_blocks(fn, x, y, block=8, out="host", progress=False)
if distributed.is_main():
    torch.save(host, out + "/host.pt")
with open(f"{out}/calls.{distributed.rank()}.json", "w") as f:
    json.dump({"calls": calls[0], "world": distributed.world_size()}, f)
distributed.cleanup()
'''

# symmetric 40x40 in blocks of 8: 5 x 6 / 2 blocks; then 40x13: 5 x 2 blocks; and a 1 x 1 call before each
TASKS = 15 + 5 * 2


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "BLOCK_DELAY"):
        env.pop(k, None)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]


def test_resume_after_sigkill_equals_uninterrupted_run_bitwise(tmp_path: Path) -> None:
    script = tmp_path / "kernel.py"
    script.write_text(SCRIPT)
    env = _env()
    resumed, whole = tmp_path / "resumed", tmp_path / "whole"
    resumed.mkdir()
    whole.mkdir()
    slow = subprocess.Popen([sys.executable, str(script), str(resumed)], env={**env, "BLOCK_DELAY": "0.3"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    finished: set[tuple[int, int]] = set()
    while len(finished) < 4 and time.monotonic() < deadline and slow.poll() is None:
        time.sleep(0.05)
        with contextlib.suppress(OSError, ValueError):  # the files are being created
            finished = done_blocks(resumed / "k.npy")
    slow.send_signal(signal.SIGKILL)
    slow.wait(timeout=30)
    assert slow.returncode == -signal.SIGKILL
    finished = done_blocks(resumed / "k.npy")
    assert 4 <= len(finished) < 15, finished

    _run([sys.executable, str(script), str(resumed)], env)
    _run([sys.executable, str(script), str(whole)], env)
    assert json.loads((resumed / "calls.0.json").read_text())["calls"] == 2 + TASKS - len(finished)
    assert json.loads((whole / "calls.0.json").read_text())["calls"] == 2 + TASKS
    a, b = np.load(resumed / "k.npy"), np.load(whole / "k.npy")
    assert a.dtype == np.float64 and a.shape == (40, 40)
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))  # bitwise


def test_torchrun_two_ranks_equal_single_process_bitwise(tmp_path: Path) -> None:
    script = tmp_path / "kernel.py"
    script.write_text(SCRIPT)
    env = _env()
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    single.mkdir()
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
          str(ddp)], env)
    _run([sys.executable, str(script), str(single)], env)
    calls = [json.loads((ddp / f"calls.{r}.json").read_text()) for r in (0, 1)]
    assert [c["world"] for c in calls] == [2, 2]
    assert [c["calls"] for c in calls] == [2 + 8 + 5, 2 + 7 + 5]  # static split of 15 then 10 blocks
    assert sorted(done_blocks(ddp / "k.npy")) == block_tasks(40, 40, 8, True)
    a, b = np.load(ddp / "k.npy"), np.load(single / "k.npy")
    assert np.array_equal(a.view(np.uint64), b.view(np.uint64))
    h1, h2 = torch.load(ddp / "host.pt"), torch.load(single / "host.pt")
    assert h1.shape == (40, 13) and torch.equal(h1.view(torch.int64), h2.view(torch.int64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_blocks_leave_no_device_memory_behind() -> None:
    x = _x(300).cuda()

    def gram(a: Tensor, b: Tensor | None) -> Tensor:
        return torch.tanh(a @ (a if b is None else b).T)

    torch.cuda.synchronize()
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    k = kernel_blocks(gram, x, block=64, out="host", progress=False)
    torch.cuda.synchronize()
    assert k.device.type == "cpu"
    assert torch.cuda.memory_allocated() == allocated  # no block kept on the device
    assert torch.cuda.memory_reserved() <= reserved  # the cache was returned after each block
    assert torch.allclose(k, gram(x, None).cpu(), rtol=1e-12, atol=1e-12)
    on_device = kernel_blocks(gram, x, block=64, out="device", progress=False)
    assert on_device.is_cuda and torch.equal(on_device.cpu(), k)
