"""Benchmark ``depthwise_conv``: kernelkit's depthwise conv vs ``F.conv2d(groups=C)`` (CPU, or CUDA with ``--device``).

Cases (issue "Performance"): C=384, 32×32, batch 8; dense K ∈ {7, 13, 17, 31} and the dilated
training branches (k=3 with r=3, 4, 5; k=7 with r=2), forward (no grad) and forward+backward; plus
the whole training-form Dilated Reparam Block (K=13, all branches with their BN) forward+backward
with the fast path on vs off; and K=13, 15 and 31 on a channels-last input. Each row records the
strategy ``auto`` picked (the fixed rule, or the tuned choice when ``KERNELKIT_TUNE=1``). ``ctx.quick``
uses smoke sizes. With ``--device cuda`` the same cases run on the GPU against cuDNN's ``F.conv2d`` (the CPU
strategies never run there: ``auto`` picks ``direct``, which is ``F.conv2d``, so the ratio measures only the
call overhead).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from kernelkit.apps.bench import BenchContext, register_benchmark
from kernelkit.layers._dw_geometry import resolve_geometry
from kernelkit.layers.depthwise import depthwise_conv2d, tuned_strategy

DENSE_KERNELS = (7, 13, 17, 31)
DILATED_BRANCHES = ((3, 3), (3, 4), (3, 5), (7, 2))
CHANNELS_LAST_KERNELS = (13, 15, 31)


def _train_step(fn: Callable[[], torch.Tensor], grad: torch.Tensor | None = None) -> Callable[[], None]:
    """Forward + backward of ``fn`` with a fixed upstream gradient (ones when ``grad`` is None)."""

    def step() -> None:
        y = fn()
        y.backward(torch.ones_like(y) if grad is None else grad)

    return step


def _no_grad(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.no_grad():
            return fn()

    return run


def _compare_conv(ctx: BenchContext, x: torch.Tensor, k: int, dilation: int, label: str) -> None:
    channels = x.shape[1]
    g = torch.Generator().manual_seed(k * 10 + dilation)
    w = (torch.randn(channels, 1, k, k, generator=g) / k).to(x.device)
    pad = (k - 1) * dilation // 2

    def ours(xx: torch.Tensor, ww: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: depthwise_conv2d(xx, ww, None, 1, "same", dilation)

    def torch_conv(xx: torch.Tensor, ww: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: F.conv2d(xx, ww, None, 1, pad, dilation, channels)

    geo = resolve_geometry(x, w, 1, "same", dilation)
    with torch.no_grad():
        picked = tuned_strategy(x, w, None, geo)
    ctx.compare(f"{label} forward", kernelkit=_no_grad(ours(x, w)), baseline=_no_grad(torch_conv(x, w)),
                baseline_name=_baseline_name(x), strategy=picked)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    ctx.compare(f"{label} forward+backward", kernelkit=_train_step(ours(xr, wr)),
                baseline=_train_step(torch_conv(xr, wr)), baseline_name=_baseline_name(x),
                strategy=tuned_strategy(xr, wr, None, geo))


def _baseline_name(x: torch.Tensor) -> str:
    return "F.conv2d(groups=C)" + (" (cuDNN)" if x.device.type == "cuda" else "")


def _compare_reparam_block(ctx: BenchContext, x: torch.Tensor, kernel_size: int) -> None:
    from kernelkit.layers.reparam import DilatedReparamBlock, use_fast_depthwise

    torch.manual_seed(0)
    block = DilatedReparamBlock(x.shape[1], kernel_size).to(x.device).train()
    xr = x.clone().requires_grad_()

    def step(fast: bool) -> Callable[[], None]:
        def run() -> None:
            with use_fast_depthwise(fast):
                y = block(xr)
            y.backward(torch.ones_like(y))

        return run

    ctx.compare(f"DilatedReparamBlock K={kernel_size} train form forward+backward", kernelkit=step(True),
                baseline=step(False), baseline_name="same block, F.conv2d",
                branches=[(kernel_size, 1), *block.branches])
    # Rows with every branch routed, should the block leave some branch to F.conv2d.
    skipped = [m for m in block.modules() if getattr(m, "_fast_ok", True) is False]
    if not skipped:
        return
    for m in skipped:
        setattr(m, "_fast_ok", True)  # noqa: B010
    try:
        ctx.compare(f"DilatedReparamBlock K={kernel_size} train form forward+backward, every branch routed",
                    kernelkit=step(True), baseline=step(False), baseline_name="same block, F.conv2d",
                    also_routed=len(skipped))
    finally:
        for m in skipped:
            setattr(m, "_fast_ok", False)  # noqa: B010


@register_benchmark("depthwise_conv", title="Large-kernel depthwise conv vs F.conv2d(groups=C)",
                    devices=("cpu", "cuda"))
def bench_depthwise_conv(ctx: BenchContext) -> None:
    n, c, size = (2, 16, 16) if ctx.quick else (8, 384, 32)
    dense = (7, 13) if ctx.quick else DENSE_KERNELS
    dilated = DILATED_BRANCHES[-1:] if ctx.quick else DILATED_BRANCHES
    x = torch.randn(n, c, size, size, generator=torch.Generator().manual_seed(0)).to(ctx.device)
    for k in dense:
        _compare_conv(ctx, x, k, 1, f"K={k}")
    for k, r in dilated:
        _compare_conv(ctx, x, k, r, f"k={k} r={r}")
    # channels-last input (what UniRepLKNet's CPU inference feeds its deploy convs): on AVX-512 the fixed rule
    # widens K=13 to 13×15, runs K=15 as it is, and leaves K=31 to the spectral rule
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for k in CHANNELS_LAST_KERNELS:
        _compare_conv(ctx, x_cl, k, 1, f"K={k} channels-last")
    _compare_reparam_block(ctx, x, 13)
