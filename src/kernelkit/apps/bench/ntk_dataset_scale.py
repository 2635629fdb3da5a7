"""Dataset-scale kernels: FC depth-3 analytic NNGP + NTK for ``N × N`` float64 into a file-backed ``.npy``.

Each ``N`` runs in a fresh child process (``kernel_blocks(kernel_fn(analytic, net, get=("nngp", "ntk")), x,
out=<file>.npy)``), which reports its wall time and its peak resident set size (``ru_maxrss``) before and after
the kernel work. The claim checked: the kernel work raises the peak by less than two block rows of the result,
whatever ``N`` is, i.e.

    peak RSS <= RSS before the work (interpreter, torch, network, inputs) + 2 × one block row,

where one block row is ``block × N`` float64 entries for each of the two kernels. The intermediates of one
block (of order ``block²`` entries) are a fixed cost inside that allowance only when a row holds several blocks,
so the sizes, full and quick, have at least seven blocks per row. The whole matrix
(``2 × N² × 8`` bytes) is printed beside it to show what an in-memory result would take. There is no baseline
library here: the rows record kernelkit's time and memory only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from kernelkit.apps.bench import BenchContext, register_benchmark

FULL_SIZES = (10_000, 20_000)
QUICK_SIZES = (1_500, 3_000)
FULL_BLOCK, QUICK_BLOCK = 1024, 200
FEATURES = 784  # MNIST-sized inputs
KERNELS = 2  # NNGP and NTK, stacked in one file

_CHILD = r"""
import json, resource, sys, time
cfg = json.loads(sys.argv[1])
import torch
torch.set_num_threads(cfg["threads"])
from kernelkit.ntk import analytic
from kernelkit.ntk.blocked import kernel_blocks, kernel_fn
from kernelkit.ntk.training import fc_network
x = torch.randn(cfg["n"], cfg["features"], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
x = x / x.norm(dim=1, keepdim=True)
net = fc_network(1, 3, 0.1)
fn = kernel_fn(analytic, net, get=("nngp", "ntk"))
kernel_blocks(fn, x[:2], block=2, out="host", progress=False)  # warm-up: imports and first calls
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
k = kernel_blocks(fn, x, block=cfg["block"], out=cfg["path"], resume=False, progress=False)
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ref = analytic(net, x[:64], x[-64:])  # a corner spanning several blocks, computed directly
err = max(float((k[0, :64, -64:] - ref.nngp).abs().max()), float((k[1, :64, -64:] - ref.ntk).abs().max()))
print(json.dumps({"seconds": seconds, "rss_before_kib": before, "peak_rss_kib": peak, "shape": list(k.shape),
                  "max_abs_error_vs_direct": err}))
"""


def measure(n: int, block: int, folder: Path, threads: int) -> dict[str, Any]:
    """Run one ``N`` in a child process; its wall time, RSS before and peak RSS (KiB) and the result's shape."""
    path = folder / f"k{n}.npy"
    cfg = {"n": n, "block": block, "features": FEATURES, "path": str(path), "threads": threads}
    try:
        r = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg)], capture_output=True, text=True,
                           check=False)
        if r.returncode != 0:
            raise RuntimeError(f"dataset-scale child for N={n} failed: {r.stderr.strip()[-500:]}")
        return dict(json.loads(r.stdout.strip().splitlines()[-1]))
    finally:
        for f in folder.glob(f"{path.name}*"):
            f.unlink()


def row_bytes(n: int, block: int) -> int:
    """Bytes of one block row of the stacked NNGP + NTK result: ``2 × block × N`` float64 entries."""
    return KERNELS * min(block, n) * n * 8


def verdict(result: dict[str, Any], n: int, block: int) -> tuple[float, bool]:
    """``(bound in MiB, holds)``: peak RSS <= RSS before the work + 2 × one block row."""
    bound_kib = result["rss_before_kib"] + 2 * row_bytes(n, block) / 1024
    return bound_kib / 1024, result["peak_rss_kib"] <= bound_kib


@register_benchmark("ntk_dataset_scale", title="FC depth-3 NNGP+NTK, N×N float64 into a .npy file: time, peak RSS")
def bench(b: BenchContext) -> None:
    sizes, block = (QUICK_SIZES, QUICK_BLOCK) if b.quick else (FULL_SIZES, FULL_BLOCK)
    threads = torch.get_num_threads()  # --threads of `kernelkit bench`, passed on to the child
    with tempfile.TemporaryDirectory(prefix="kernelkit-scale-") as tmp:
        for n in sizes:
            res = measure(n, block, Path(tmp), threads)
            bound_mib, holds = verdict(res, n, block)
            b.record(f"N={n} block={block}", res["seconds"], None, "— (no baseline: time and memory only)",
                     threads=threads, peak_rss_mib=round(res["peak_rss_kib"] / 1024, 1),
                     rss_before_work_mib=round(res["rss_before_kib"] / 1024, 1),
                     one_block_row_mib=round(row_bytes(n, block) / 2**20, 1),
                     bound_mib=round(bound_mib, 1), whole_matrix_mib=round(KERNELS * n * n * 8 / 2**20, 1),
                     peak_below_bound=holds, max_abs_error_vs_direct=res["max_abs_error_vs_direct"])
