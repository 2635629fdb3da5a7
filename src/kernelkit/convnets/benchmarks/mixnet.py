"""MixNet-S end-to-end inference images/s vs a same-size depthwise-3x3 network and vs split-concat MixConv.

The depthwise-3x3 baseline is MixNet-S with every depthwise kernel set to 3 (same widths, same
grouped 1x1 convs, same SE): the speed cost of the mixed kernels themselves. The second comparison
forces every MixConv to split → convs → concat (timm's formulation), the cost the fast paths remove.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from kernelkit.bench import BenchContext, register_benchmark
from kernelkit.models.mixnet import MIXNET_S, MixNet, MixNetSpec


def dw3x3_variant(spec: MixNetSpec) -> MixNetSpec:
    """The same network with a single 3x3 depthwise kernel in every block."""
    return replace(spec, stages=tuple(tuple(replace(b, kernels=(3,)) for b in stage) for stage in spec.stages))


def _interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int, min_time: float) -> dict[str, float]:
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            n, t0 = 0, time.perf_counter()
            while True:
                fn()
                n += 1
                if time.perf_counter() - t0 >= min_time:
                    break
            times[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in times.items()}


@register_benchmark("mixnet", title="MixNet-S inference images/s vs depthwise-3x3 MixNet-S and split-concat MixConv")
def bench_mixnet(ctx: BenchContext) -> None:
    torch.manual_seed(0)
    size = 128 if ctx.quick else 224
    models: dict[str, nn.Module] = {
        "mixnet_s (auto paths)": MixNet(MIXNET_S, impl="auto").eval(),
        "mixnet_s (split-concat)": MixNet(MIXNET_S, impl="split").eval(),
        "dw3x3 mixnet_s": MixNet(dw3x3_variant(MIXNET_S)).eval(),
    }
    for batch in ((1, 4) if ctx.quick else (1, 32)):
        x = torch.randn(batch, 3, size, size)

        def fwd(model: nn.Module, x: torch.Tensor = x) -> Callable[[], object]:
            def run() -> object:
                with torch.no_grad():
                    return model(x)
            return run

        t = _interleaved_medians({k: fwd(m) for k, m in models.items()}, rounds=ctx.rounds,
                                 min_time=ctx.min_run_time / ctx.rounds)
        ips = {k: batch / v for k, v in t.items()}
        kk = t["mixnet_s (auto paths)"]
        for base in ("mixnet_s (split-concat)", "dw3x3 mixnet_s"):
            ctx.record(f"{size}² B={batch} images/s", kk, t[base], baseline_name=base,
                       kernelkit_img_s=round(ips["mixnet_s (auto paths)"], 1), baseline_img_s=round(ips[base], 1))
