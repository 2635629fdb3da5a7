"""NTK benchmarks: empirical NTK vs the torch.func tutorial and neural-tangents; analytic CNTK time and memory.

The baseline is the jacobian-contraction recipe of the PyTorch tutorial "Neural Tangent Kernels"
(per-sample ``vmap(jacrev)`` Jacobians, one ``einsum`` per parameter tensor, summed), written here from
its description. neural-tangents (JAX) is an optional reference: set ``KERNELKIT_NT_PYTHON`` to a Python
interpreter that can import it (e.g. a separate environment with ``neural-tangents==0.6.5 jax==0.4.23``)
and the same networks, weights and inputs are timed there (jit-compiled, after a warm-up call), on the
same number of threads, in a child process right after the kernelkit measurement.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from kernelkit.apps.bench import BenchContext, register_benchmark
from kernelkit.ntk import empirical


def tutorial_jacobian_contraction(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor,
                                  compute: str = "trace") -> torch.Tensor:
    """The tutorial's method: ``'trace'`` sums over logits (``Naf,Maf->NM``), ``'full'`` gives ``NMab``."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def fnet_single(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, p, (x.unsqueeze(0),)).squeeze(0)

    jac1 = [j.flatten(2) for j in vmap(jacrev(fnet_single), (None, 0))(params, x1).values()]
    jac2 = [j.flatten(2) for j in vmap(jacrev(fnet_single), (None, 0))(params, x2).values()]
    expr = "Naf,Maf->NM" if compute == "trace" else "Naf,Mbf->NMab"
    return torch.stack([torch.einsum(expr, a, b) for a, b in zip(jac1, jac2, strict=True)]).sum(0)


def _mlp(o: int) -> nn.Module:
    return nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, o))


def _cnn(o: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.Flatten(), nn.Linear(32 * 8 * 8, o))


def _timed_median(fn: Any, repeats: int) -> float:
    """Median seconds of ``repeats`` calls (no warm-up call here: the caller gives each side the same one)."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


_NT_EMPIRICAL_CHILD = r"""
import json, os, sys, time
cfg = json.loads(sys.argv[1])
if cfg["threads"] == 1:
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
import numpy as np
import jax
import neural_tangents as nt
d = np.load(cfg["npz"])
x1, x2 = d["x1"], d["x2"]
params = [d[f"p{i}"] for i in range(cfg["n_params"])]
def mlp(p, x):
    for i in range(0, len(p) - 2, 2):
        x = jax.nn.relu(x @ p[i] + p[i + 1])
    return x @ p[-2] + p[-1]
def cnn(p, x):
    dn = ("NHWC", "HWIO", "NHWC")
    x = jax.nn.relu(jax.lax.conv_general_dilated(x, p[0], (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn) + p[1])
    x = jax.nn.relu(jax.lax.conv_general_dilated(x, p[2], (2, 2), ((1, 1), (1, 1)), dimension_numbers=dn) + p[3])
    return x.reshape(x.shape[0], -1) @ p[4] + p[5]
f = mlp if cfg["arch"] == "mlp" else cnn
out = {}
for impl in cfg["impls"]:
    fn = jax.jit(nt.empirical_ntk_fn(f, trace_axes=(-1,) if cfg["trace"] else (), vmap_axes=0, implementation=impl))
    k = np.asarray(fn(x1, x2, params).block_until_ready())
    ts = []
    for _ in range(cfg["repeats"]):
        t = time.perf_counter()
        fn(x1, x2, params).block_until_ready()
        ts.append(time.perf_counter() - t)
    np.save(cfg["npz"][:-4] + f"_k{impl}.npy", k)
    out[impl] = float(np.median(ts))
print(json.dumps(out))
"""


def _neural_tangents_empirical(arch: str, model: nn.Module, x1: torch.Tensor, x2: torch.Tensor, trace: bool,
                               impls: tuple[int, ...], repeats: int) -> dict[int, tuple[float, np.ndarray]] | None:
    """Time neural-tangents' empirical NTK implementations on the same network, weights and inputs (child process
    with ``KERNELKIT_NT_PYTHON``); returns ``{implementation: (median seconds, kernel)}`` or ``None``."""
    python = os.environ.get("KERNELKIT_NT_PYTHON")
    if not python:
        return None
    ps = [p.detach().numpy() for p in model.parameters()]
    if arch == "mlp":  # x @ W (in, out)
        ps = [p.T if p.ndim == 2 else p for p in ps]
        a1, a2 = x1.numpy(), x2.numpy()
    else:  # NHWC activations, HWIO filters; the readout takes (h, w, c)-ordered features
        o = ps[4].shape[0]
        readout = ps[4].reshape(o, 32, 8, 8).transpose(2, 3, 1, 0).reshape(-1, o)
        ps = [ps[0].transpose(2, 3, 1, 0), ps[1], ps[2].transpose(2, 3, 1, 0), ps[3], readout, ps[5]]
        a1, a2 = x1.permute(0, 2, 3, 1).numpy(), x2.permute(0, 2, 3, 1).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        npz = str(Path(tmp) / "case.npz")
        arrays: dict[str, Any] = {"x1": a1, "x2": a2, **{f"p{i}": p for i, p in enumerate(ps)}}
        np.savez(npz, **arrays)
        cfg = {"threads": torch.get_num_threads(), "npz": npz, "arch": arch, "trace": trace, "impls": list(impls),
               "repeats": repeats, "n_params": len(ps)}
        env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
        out = subprocess.run([python, "-c", _NT_EMPIRICAL_CHILD, json.dumps(cfg)], capture_output=True, text=True,
                             timeout=900, env=env)
        if out.returncode != 0:
            raise RuntimeError(f"neural-tangents child failed: {out.stderr[-2000:]}")
        times = json.loads(out.stdout.strip().splitlines()[-1])
        return {int(i): (t, np.load(npz[:-4] + f"_k{i}.npy")) for i, t in times.items()}


@register_benchmark("ntk_empirical", title="Empirical NTK: kernelkit vs the torch.func tutorial and neural-tangents")
def bench_empirical(b: BenchContext) -> None:
    n = 16 if b.quick else 128
    torch.manual_seed(0)
    has_nt = bool(os.environ.get("KERNELKIT_NT_PYTHON"))
    nt_note = "neural-tangents timed in KERNELKIT_NT_PYTHON" if has_nt else \
        "neural-tangents not timed (set KERNELKIT_NT_PYTHON to a Python that imports it)"
    for arch, make, shape in (("mlp", _mlp, (64,)), ("cnn", _cnn, (3, 16, 16))):
        label_arch = "MLP 512x3" if arch == "mlp" else "CNN"
        for o in (1, 10):
            model = make(o)
            x1, x2 = torch.randn(n, *shape), torch.randn(n, *shape)
            for compute, trace in (("trace", "sum"), ("full", None)):
                if compute == "full" and (o == 1 or arch == "mlp"):  # the tutorial's full MLP kernel is not timed
                    continue
                ours = empirical(model, x1, x2, trace=trace)
                t0 = time.perf_counter()
                ref = tutorial_jacobian_contraction(model, x1, x2, compute)
                ref_s = time.perf_counter() - t0
                err = float((ours - ref).abs().max() / ref.abs().max())
                label = f"{label_arch} O={o} {compute}"
                info: dict[str, Any] = {"N": n, "O": o, "max_rel_diff": f"{err:.1e}", "note": nt_note}
                tutorial = "torch.func tutorial (jacobian contraction)"
                ours_fn = functools.partial(empirical, model, x1, x2, trace=trace)
                ref_fn = functools.partial(tutorial_jacobian_contraction, model, x1, x2, compute)
                if ref_s > 5.0:  # slow baseline: both sides had one warm-up call above; median of 3 timed calls each
                    del ref
                    res = b.record(label, kernelkit_s=_timed_median(ours_fn, 3), baseline_s=_timed_median(ref_fn, 3),
                                   baseline_name=tutorial + " (median of 3 after one warm-up, both sides)", **info)
                else:  # the harness: one warm-up each, then alternating timed rounds, medians
                    res = b.compare(label, kernelkit=ours_fn, baseline=ref_fn, baseline_name=tutorial, **info)
                # neural-tangents implementations compared: 3 on the MLP, 1 and 3 on the CNN
                impls = (3,) if arch == "mlp" else (1, 3)
                nt = _neural_tangents_empirical(arch, model, x1, x2, trace is not None, impls, 5)
                if nt:
                    best = min(nt, key=lambda i: nt[i][0])
                    nt_k = torch.from_numpy(nt[best][1]) * (o if trace == "sum" else 1)  # NT averages traced logits
                    nt_err = float((ours - nt_k).abs().max() / nt_k.abs().max())
                    b.record(f"{label} vs neural-tangents", kernelkit_s=res.kernelkit_s, baseline_s=nt[best][0],
                             baseline_name=f"neural-tangents best (implementation {best})", N=n, O=o,
                             max_rel_diff=f"{nt_err:.1e}",
                             all_implementations_s={i: round(t, 5) for i, (t, _) in nt.items()})


_CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from kernelkit.ntk import analytic, nn as knn
cfg = json.loads(sys.argv[1])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
torch.manual_seed(0)
if cfg["kind"] == "cntk":
    layers = []
    for _ in range(cfg["depth"]):
        layers += [knn.Conv2d(1, 3, bias_std=0.1), knn.ReLU()]
    net = knn.Sequential(*layers, knn.GlobalAvgPool(), knn.Dense(1))
    x = torch.randn(cfg["n"], 3, cfg["size"], cfg["size"], dtype=torch.float64)
    if cfg.get("save"):
        import numpy as np
        np.save(cfg["save"] + "_x.npy", x.permute(0, 2, 3, 1).numpy())
else:
    net = knn.Sequential(knn.Dense(1, bias_std=0.1), knn.ReLU(), knn.Dense(1, bias_std=0.1), knn.ReLU(), knn.Dense(1))
    x = torch.randn(cfg["n"], 32, dtype=torch.float64)
times = []
for _ in range(cfg.get("repeats", 0) + 1):  # with repeats: one warm-up call, then the timed ones
    t = time.perf_counter()
    k = analytic(net, x, get="ntk", batch_size=cfg["batch"])
    times.append(time.perf_counter() - t)
times = times[1:] or times
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if cfg.get("save"):
    np.save(cfg["save"] + "_k.npy", k.ntk.numpy())
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "min_s": min(times), "max_s": max(times),
                  "peak_mb": peak / 1024, "base_mb": base / 1024, "output_mb": k.ntk.numel() * 8 / 2**20,
                  "finite": bool(torch.isfinite(k.ntk).all())}))
"""


_NT_ANALYTIC_CHILD = r"""
import json, os, resource, sys, time
cfg = json.loads(sys.argv[1])
if cfg["threads"] == 1:
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from neural_tangents import stax
layers = []
for _ in range(cfg["depth"]):
    layers += [stax.Conv(1, (3, 3), padding="SAME", b_std=0.1), stax.Relu()]
_, _, kernel_fn = stax.serial(*layers, stax.GlobalAvgPool(), stax.Dense(1))
x = np.load(cfg["save"] + "_x.npy")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
fn = jax.jit(kernel_fn, static_argnames="get")
t = time.perf_counter()
k = np.asarray(fn(x, None, get="ntk").block_until_ready())
first = time.perf_counter() - t
times = []
for _ in range(cfg["repeats"]):
    t = time.perf_counter()
    fn(x, None, get="ntk").block_until_ready()
    times.append(time.perf_counter() - t)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ours = np.load(cfg["save"] + "_k.npy")
print(json.dumps({"seconds": sorted(times)[len(times) // 2], "min_s": min(times), "max_s": max(times),
                  "first_call_s": first, "peak_mb": peak / 1024, "base_mb": base / 1024,
                  "max_rel_diff": float(np.abs(k - ours).max() / np.abs(k).max())}))
"""


def _child(cfg: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg), str(torch.get_num_threads())],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"analytic benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@register_benchmark("ntk_analytic_cntk", title="Analytic CNTK with GAP: time and memory; bounded-memory FC kernels")
def bench_analytic(b: BenchContext) -> None:
    nt_python = os.environ.get("KERNELKIT_NT_PYTHON")
    nt = "neural-tangents (jit, float64)" if nt_python else \
        "neural-tangents (not timed: set KERNELKIT_NT_PYTHON to a Python that imports it)"
    cases: list[tuple[str, dict[str, Any]]] = [
        ("CNTK GAP 8x8, depth 3, default blocks",
         {"kind": "cntk", "size": 8, "depth": 3, "n": 8 if b.quick else 64, "batch": None}),
        ("CNTK GAP 16x16, depth 3, default blocks",
         {"kind": "cntk", "size": 16, "depth": 3, "n": 4 if b.quick else 32, "batch": None}),
        ("FC depth 3, batch 1000", {"kind": "fc", "n": 2000 if b.quick else 10000, "batch": 1000}),
        ("FC depth 3, one block", {"kind": "fc", "n": 2000 if b.quick else 4000, "batch": 2000 if b.quick else 4000}),
    ]
    if nt_python:  # side by side with neural-tangents on the same inputs, the sizes of the default-block rows;
        # each side: one warm-up (neural-tangents: compiling) call, then the median (and min, max) of 3 calls
        repeats = 1 if b.quick else 3
        cases[:0] = [("CNTK GAP 8x8, depth 3, vs neural-tangents",
                      {"kind": "cntk", "size": 8, "depth": 3, "n": 8 if b.quick else 64, "batch": None, "nt": True,
                       "repeats": repeats}),
                     ("CNTK GAP 16x16, depth 3, vs neural-tangents",
                      {"kind": "cntk", "size": 16, "depth": 3, "n": 4 if b.quick else 32, "batch": None, "nt": True,
                       "repeats": repeats})]
    for label, cfg in cases:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            if cfg.get("nt"):
                cfg = {**cfg, "save": str(Path(tmp) / "case"), "threads": torch.get_num_threads()}
            res = _child(cfg)
            ref = _nt_analytic(nt_python, cfg) if (nt_python and cfg.get("nt")) else None
        per_entry_ms = res["seconds"] / cfg["n"] ** 2 * 1e3
        extra: dict[str, Any] = {}
        if ref is not None:
            ours_mb, ref_mb = res["peak_mb"] - res["base_mb"], ref["peak_mb"] - ref["base_mb"]
            extra = {"min_max_s": [round(res["min_s"], 3), round(res["max_s"], 3)],
                     "baseline_min_max_s": [round(ref["min_s"], 3), round(ref["max_s"], 3)],
                     "baseline_peak_rss_mb": round(ref["peak_mb"], 1),
                     "baseline_rss_after_import_mb": round(ref["base_mb"], 1),
                     "baseline_first_call_s": round(ref["first_call_s"], 2),
                     "peak_rss_ratio": round(res["peak_mb"] / ref["peak_mb"], 3),
                     "peak_above_import_ratio": round(ours_mb / max(ref_mb, 1e-9), 3),
                     "max_rel_diff": f"{ref['max_rel_diff']:.1e}"}
        b.record(label, kernelkit_s=res["seconds"], baseline_s=ref["seconds"] if ref else None,
                 baseline_name=nt if cfg.get("nt") else "none (kernelkit only)", N=cfg["n"],
                 peak_rss_mb=round(res["peak_mb"], 1), rss_after_import_mb=round(res["base_mb"], 1),
                 output_mb=round(res["output_mb"], 1),
                 ms_per_entry=round(per_entry_ms, 4), wall_with_startup_s=round(time.perf_counter() - t0, 1), **extra)


def _nt_analytic(python: str, cfg: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    out = subprocess.run([python, "-c", _NT_ANALYTIC_CHILD, json.dumps(cfg)], capture_output=True, text=True,
                         timeout=1800, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"neural-tangents analytic child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])
