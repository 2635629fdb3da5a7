"""Infinite-width WideResNet kernel (neural-tangents' README network): kernelkit vs neural-tangents.

``WideResnet(block_size=1, k=1, num_classes=1)`` on 8x8x3 images (final ``AvgPool`` window 2, the last feature
map's size), NNGP and NTK of ``x`` against itself, float32 and float64. Each side runs in its own child process
(median, min and max of 3 measured calls after a warm-up call; peak RSS, and its rise above the RSS at the start of the
measured part: after imports and a warm-up on two images for kernelkit, after imports and before the first
(compiling) call for neural-tangents): kernelkit in this interpreter,
neural-tangents (``jax.jit``, CPU) in the interpreter named by ``KERNELKIT_NT_PYTHON`` (a separate environment
with ``neural-tangents==0.6.5 jax==0.4.23``), on the same inputs and number of threads; without it the rows
carry kernelkit only and say so. Each row also reports the largest relative difference of the two NTKs, the
resident memory of kernelkit's child right after ``import numpy, torch`` (before any kernelkit code) and, by the
rule of ``_memory_target_notes``, whether kernelkit's whole-process peak is within a quarter of neural-tangents'
("met"), not ("not met"), or cannot be because ``import torch`` alone exceeds that quarter ("out of reach").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from kernelkit.apps.bench import BenchContext, register_benchmark

MEMORY_TARGET = 4  # kernelkit's whole-process peak RSS at most 1/4 of neural-tangents'

_OURS = r"""
import json, resource, sys, time
import numpy as np, torch
torch_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the floor of any torch process
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg["threads"])
from kernelkit.ntk import analytic, nn as knn
dtype = torch.float64 if cfg["dtype"] == "float64" else torch.float32
x = torch.tensor(np.load(cfg["save"] + "_x.npy")).permute(0, 3, 1, 2)
net = knn.wide_resnet(cfg["block_size"], k=1, num_classes=1, pool=cfg["size"] // 4)
analytic(net, x[:2], dtype=dtype)  # warm-up on a small batch
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
times = []
for _ in range(cfg["repeats"]):
    t = time.perf_counter()
    k = analytic(net, x, dtype=dtype)
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save(cfg["save"] + "_k.npy", k.ntk.double().numpy())
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "min_s": min(times), "max_s": max(times),
                  "peak_mb": peak / 1024, "base_mb": base / 1024, "torch_mb": torch_mb}))
"""

_NT = r"""
import json, os, resource, sys, time
cfg = json.loads(sys.argv[1])
if cfg["threads"] == 1:
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
import numpy as np
import jax
jax.config.update("jax_enable_x64", cfg["dtype"] == "float64")
from neural_tangents import stax

def block(channels, strides=(1, 1), channel_mismatch=False):
    main = stax.serial(stax.Relu(), stax.Conv(channels, (3, 3), strides, padding="SAME"),
                       stax.Relu(), stax.Conv(channels, (3, 3), padding="SAME"))
    shortcut = stax.Identity() if not channel_mismatch else stax.Conv(channels, (3, 3), strides, padding="SAME")
    return stax.serial(stax.FanOut(2), stax.parallel(main, shortcut), stax.FanInSum())

def group(n, channels, strides=(1, 1)):
    return stax.serial(block(channels, strides, True), *[block(channels) for _ in range(n - 1)])

pool = cfg["size"] // 4
_, _, kernel_fn = stax.serial(stax.Conv(16, (3, 3), padding="SAME"), group(cfg["block_size"], 16),
                              group(cfg["block_size"], 32, (2, 2)), group(cfg["block_size"], 64, (2, 2)),
                              stax.AvgPool((pool, pool)), stax.Flatten(), stax.Dense(1, 1., 0.))
x = np.load(cfg["save"] + "_x.npy").astype(cfg["dtype"])
fn = jax.jit(kernel_fn, static_argnames="get")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
fn(x, None, get=("nngp", "ntk")).ntk.block_until_ready()
first = time.perf_counter() - t
times = []
for _ in range(cfg["repeats"]):
    t = time.perf_counter()
    k = fn(x, None, get=("nngp", "ntk"))
    k.ntk.block_until_ready()
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ref, ours = np.asarray(k.ntk, dtype=np.float64), np.load(cfg["save"] + "_k.npy")
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "min_s": min(times), "max_s": max(times),
                  "first_call_s": first, "peak_mb": peak / 1024, "base_mb": base / 1024,
                  "max_rel_diff": float(np.abs(ref - ours).max() / np.abs(ref).max())}))
"""


def _run(python: str, script: str, cfg: dict[str, Any], what: str) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"])}
    out = subprocess.run([python, "-c", script, json.dumps(cfg)], capture_output=True, text=True, timeout=1800,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{what} child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _memory_target_notes(ours: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """Whether the whole-process peak-RSS target (kernelkit <= 1/4 of neural-tangents) is reachable at all.

    ``import numpy, torch`` alone takes ``torch_mb`` of resident memory before any kernelkit code runs; when that
    is more than a quarter of neural-tangents' whole-process peak, no torch program meets the target here.
    """
    quarter = ref["peak_mb"] / MEMORY_TARGET
    return {"rss_after_import_torch_mb": round(ours["torch_mb"], 1),
            "import_torch_over_baseline_peak": round(ours["torch_mb"] / ref["peak_mb"], 3),
            "whole_process_quarter_target": "met" if ours["peak_mb"] <= quarter
            else ("out of reach: import torch alone exceeds it" if ours["torch_mb"] > quarter else "not met")}


@register_benchmark("ntk_wideresnet", title="Infinite-width WideResNet kernel (neural-tangents README network)")
def bench_wideresnet(b: BenchContext) -> None:
    import numpy as np

    nt_python = os.environ.get("KERNELKIT_NT_PYTHON")
    sizes = (16,) if b.quick else (16, 32)
    for n in sizes:
        for dtype in ("float32", "float64"):
            cfg: dict[str, Any] = {"n": n, "size": 8, "block_size": 1, "dtype": dtype,
                                   "threads": torch.get_num_threads(), "repeats": 1 if b.quick else 3}
            name = f"neural-tangents (jit, CPU, {dtype})"
            with tempfile.TemporaryDirectory() as tmp:
                cfg["save"] = str(Path(tmp) / "case")
                x = np.random.default_rng(n).normal(size=(n, cfg["size"], cfg["size"], 3))  # NHWC
                np.save(cfg["save"] + "_x.npy", x)
                ours = _run(sys.executable, _OURS, cfg, "kernelkit")
                ref = _run(nt_python, _NT, cfg, "neural-tangents") if nt_python else None
            ours_mb = ours["peak_mb"] - ours["base_mb"]
            extra: dict[str, Any] = {"N": n, "dtype": dtype, "min_max_s": [round(ours["min_s"], 4),
                                                                            round(ours["max_s"], 4)],
                                     "peak_rss_mb": round(ours["peak_mb"], 1),
                                     "peak_above_start_mb": round(ours_mb, 1)}
            if ref is None:
                extra["note"] = "neural-tangents not run: set KERNELKIT_NT_PYTHON to a Python that imports it"
            else:
                extra.update(baseline_min_max_s=[round(ref["min_s"], 4), round(ref["max_s"], 4)],
                             baseline_peak_rss_mb=round(ref["peak_mb"], 1),
                             baseline_rss_after_import_mb=round(ref["base_mb"], 1),
                             baseline_first_call_s=round(ref["first_call_s"], 2),
                             baseline_peak_above_start_mb=round(ref["peak_mb"] - ref["base_mb"], 1),
                             peak_rss_ratio=round(ours["peak_mb"] / ref["peak_mb"], 3),
                             peak_above_start_ratio=round(ours_mb / max(ref["peak_mb"] - ref["base_mb"], 1e-9), 3),
                             max_rel_diff=f"{ref['max_rel_diff']:.1e}")
                extra.update(_memory_target_notes(ours, ref))
            b.record(f"WideResNet b1 k1 8x8x3, N={n}, {dtype}, NNGP+NTK", kernelkit_s=ours["seconds"],
                     baseline_s=ref["seconds"] if ref else None, baseline_name=name if ref else "none", **extra)
