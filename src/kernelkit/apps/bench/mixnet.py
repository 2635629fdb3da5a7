"""MixNet-S end-to-end inference images/s vs a same-size depthwise-3x3 network and vs split-concat MixConv.

Eval mode, 224², float32, NCHW input, batch 1 and 32. The depthwise-3x3 baseline is MixNet-S with every
depthwise kernel set to 3 (same widths, same grouped 1x1 convs, same SE): the speed cost of the mixed
kernels themselves (ratio < 1: MixNet-S is slower). The second comparison forces every MixConv to
split → convs → concat (timm's formulation), the cost the fast paths remove. Path choices are made
fresh in this process (private empty cache) during the warm-up call; the counts of chosen paths are
recorded with each row.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from kernelkit.apps.bench import BenchContext, register_benchmark
from kernelkit.layers.mixconv import MixConv2d, fresh_choices
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


def chosen_paths(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """How many MixConv layers run each path for this input (eval, no grad), read through forward hooks."""
    counts: dict[str, int] = {}

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        assert isinstance(module, MixConv2d)
        impl = module.choose_impl(args[0])
        counts[impl] = counts.get(impl, 0) + 1
    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, MixConv2d)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return counts


@register_benchmark("mixnet", title="MixNet-S inference images/s vs depthwise-3x3 MixNet-S and split-concat MixConv")
def bench_mixnet(ctx: BenchContext) -> None:
    with fresh_choices():
        _run(ctx)


def _run(ctx: BenchContext) -> None:
    torch.manual_seed(0)
    size = 128 if ctx.quick else 224
    cl = torch.channels_last
    models: dict[str, nn.Module] = {
        "mixnet_s (auto paths)": MixNet(MIXNET_S, impl="auto").eval(),
        "mixnet_s (split-concat)": MixNet(MIXNET_S, impl="split").eval(),
        "dw3x3 mixnet_s": MixNet(dw3x3_variant(MIXNET_S)).eval(),
    }
    if not ctx.quick:  # the same two networks with channels-last weights and input (a common CPU setting)
        models["mixnet_s (auto paths) [channels_last]"] = MixNet(MIXNET_S).eval().to(memory_format=cl)  # type: ignore[call-overload]
        models["dw3x3 mixnet_s [channels_last]"] = MixNet(dw3x3_variant(MIXNET_S)).eval().to(memory_format=cl)  # type: ignore[call-overload]
    for batch in ((1, 4) if ctx.quick else (1, 32)):
        x = torch.randn(batch, 3, size, size)

        def fwd(name: str, model: nn.Module, x: torch.Tensor = x) -> Callable[[], object]:
            xin = x.contiguous(memory_format=cl) if name.endswith("[channels_last]") else x

            def run() -> object:
                with torch.no_grad():
                    return model(xin)
            return run

        t = _interleaved_medians({k: fwd(k, m) for k, m in models.items()}, rounds=max(ctx.rounds, 5),
                                 min_time=ctx.min_run_time / ctx.rounds)
        ips = {k: batch / v for k, v in t.items()}
        pairs = [("mixnet_s (auto paths)", "mixnet_s (split-concat)"), ("mixnet_s (auto paths)", "dw3x3 mixnet_s")]
        if not ctx.quick:
            pairs.append(("mixnet_s (auto paths) [channels_last]", "dw3x3 mixnet_s [channels_last]"))
        for name, base in pairs:
            xin = x.contiguous(memory_format=cl) if name.endswith("[channels_last]") else x
            ctx.record(f"{size}² B={batch} images/s{' [channels_last]' if xin is not x else ''}", t[name], t[base],
                       baseline_name=base, kernelkit_img_s=round(ips[name], 1), baseline_img_s=round(ips[base], 1),
                       paths=chosen_paths(models[name], xin))
