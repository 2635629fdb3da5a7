"""NTK benchmarks: empirical NTK vs the torch.func tutorial; analytic CNTK time and memory.

The baseline is the jacobian-contraction recipe of the PyTorch tutorial "Neural Tangent Kernels"
(per-sample ``vmap(jacrev)`` Jacobians, one ``einsum`` per parameter tensor, summed), written here from
its description. neural-tangents (JAX) is timed only when importable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from kernelkit.bench import BenchContext, register_benchmark
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


def _neural_tangents_available() -> bool:
    try:
        import neural_tangents  # noqa: F401
    except Exception:  # not installed, or broken with the installed JAX
        return False
    return True


@register_benchmark("ntk_empirical", title="Empirical NTK: kernelkit vs the torch.func tutorial (N=128)")
def bench_empirical(b: BenchContext) -> None:
    n = 16 if b.quick else 128
    torch.manual_seed(0)
    nt_note = "neural-tangents importable" if _neural_tangents_available() else \
        "neural-tangents not importable here (optional JAX reference; not timed)"
    for arch, make, shape in (("MLP 512x3", _mlp, (64,)), ("CNN", _cnn, (3, 16, 16))):
        for o in (1, 10):
            model = make(o)
            x1, x2 = torch.randn(n, *shape), torch.randn(n, *shape)
            for compute, trace in (("trace", "sum"), ("full", None)):
                if o == 1 and compute == "full":
                    continue
                ours = empirical(model, x1, x2, trace=trace)
                ref = tutorial_jacobian_contraction(model, x1, x2, compute)
                err = float((ours - ref).abs().max() / ref.abs().max())
                b.compare(f"{arch} O={o} {compute}",
                          kernelkit=lambda m=model, t=trace, a=x1, c=x2: empirical(m, a, c, trace=t),
                          baseline=lambda m=model, k=compute, a=x1, c=x2: tutorial_jacobian_contraction(m, a, c, k),
                          baseline_name="torch.func tutorial (jacobian contraction)", N=n, O=o,
                          max_rel_diff=f"{err:.1e}", note=nt_note)


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
else:
    net = knn.Sequential(knn.Dense(1, bias_std=0.1), knn.ReLU(), knn.Dense(1, bias_std=0.1), knn.ReLU(), knn.Dense(1))
    x = torch.randn(cfg["n"], 32, dtype=torch.float64)
t = time.perf_counter()
k = analytic(net, x, get="ntk", batch_size=cfg["batch"])
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "peak_mb": peak / 1024, "base_mb": base / 1024, "output_mb": k.ntk.numel() * 8 / 2**20,
                  "finite": bool(torch.isfinite(k.ntk).all())}))
"""


def _child(cfg: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cfg), str(torch.get_num_threads())],
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"analytic benchmark child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


@register_benchmark("ntk_analytic_cntk", title="Analytic CNTK with GAP: time and memory; bounded-memory FC kernels")
def bench_analytic(b: BenchContext) -> None:
    nt = "neural-tangents" + ("" if _neural_tangents_available() else " (not importable; not timed)")
    cases = [
        ("CNTK GAP 8x8, depth 3, default blocks",
         {"kind": "cntk", "size": 8, "depth": 3, "n": 8 if b.quick else 64, "batch": None}),
        ("CNTK GAP 16x16, depth 3, default blocks",
         {"kind": "cntk", "size": 16, "depth": 3, "n": 4 if b.quick else 32, "batch": None}),
        ("FC depth 3, batch 1000", {"kind": "fc", "n": 2000 if b.quick else 10000, "batch": 1000}),
        ("FC depth 3, one block", {"kind": "fc", "n": 2000 if b.quick else 4000, "batch": 2000 if b.quick else 4000}),
    ]
    for label, cfg in cases:
        t0 = time.perf_counter()
        res = _child(cfg)
        per_entry_ms = res["seconds"] / cfg["n"] ** 2 * 1e3
        b.record(label, kernelkit_s=res["seconds"], baseline_s=None, baseline_name=nt, N=cfg["n"],
                 peak_rss_mb=round(res["peak_mb"], 1), rss_after_import_mb=round(res["base_mb"], 1),
                 output_mb=round(res["output_mb"], 1),
                 ms_per_entry=round(per_entry_ms, 4), wall_with_startup_s=round(time.perf_counter() - t0, 1))
