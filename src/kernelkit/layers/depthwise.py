"""Fast large-kernel depthwise convolution with autograd (``depthwise_conv2d``).

``depthwise_conv2d(x, weight, bias=None, stride=1, padding="same", dilation=1)`` computes exactly
``F.conv2d(x, weight, bias, stride, padding, dilation, groups=C)`` (``padding="same"`` with even
kernels pads like torch: ``total // 2`` before, the rest after) and picks a strategy by shape:

* ``"direct"``         ``F.conv2d(groups=C)`` forward and torch's own backward;
* ``"direct_grouped"`` ``F.conv2d`` forward (fast in torch for <= 13 taps per axis); backward: input
                       gradient as ``F.conv2d`` with the flipped kernel (strides: on the zero-filled
                       stride-1 grid), weight gradient as ONE grouped ``F.conv2d`` over ``N·C`` groups
                       with the output gradient as the kernel and the dilation as the stride (torch's
                       depthwise weight gradient is the slow part of its backward);
* ``"dft"``            frequency domain with dense DFT matrices applied as GEMMs, forward and backward
                       (:mod:`kernelkit.layers._dw_spectral`); cost barely depends on the kernel size or
                       dilation;
* ``"fft"``            the same algorithm on ``torch.fft.rfft2`` / ``irfft2``;
* ``"direct_dft"``     ``F.conv2d`` forward, flipped-kernel input gradient, spectral weight gradient
                       (the previous choice for small kernels with gradients; kept for comparison);
* ``"subgrid"``        dilated kernels as a dense ``k×k`` conv on the ``d×d`` interleaved sub-images
                       (:mod:`kernelkit.layers._dw_subgrid`; torch autograd; strides subsample). Not picked
                       by ``auto`` (measured slower than the alternatives).

Why ``auto`` picks what it picks. Ratios torch / kernelkit (> 1: kernelkit faster) from
``benchmarks/depthwise_conv.py --threads 2`` (C=384, 32×32, batch 8, fp32; medians, both sides timed
alternately in one process); K=17/31 rows from four runs, the rest from three, on the shared
2-core machine under load average 3-15:

=====================  ===============  ==========  =============  ==============
case                   auto (no grad)   forward     fwd+bwd        auto (grad)
=====================  ===============  ==========  =============  ==============
K=7                    direct           [1]         3.00-3.45      direct_grouped
K=13                   direct           [1]         4.24-4.41      direct_grouped
K=17                   dft              6.2-13.0    6.4-10.8       dft
K=31                   dft              15.0-29.0   25.0-34.4      dft
k=3 r=3 / r=4 / r=5    direct           [1]         2.47-6.05      direct_grouped
k=7 r=2                direct           [1]         7.1-11.8       direct_grouped
DRB K=13, train form   (all branches)               2.70-4.34
=====================  ===============  ==========  =============  ==============

[1] the same ``F.conv2d`` call on both sides: 0.79-1.02 in these runs, i.e. timing noise at 1-15 ms
per call on a loaded machine; the dispatch itself (argument checks, geometry, choice) costs 5-7 µs
per call (measured on a 1×8×8×8 input: 62 vs 56 µs).

Component timings (same shapes, 1 and 2 threads; also 64×80×8×8 and 8×80×56×56): for kernels 5-13
and dilated 3×3 / 7×7, ``direct_grouped`` fwd+bwd is 3-10× torch's, ``direct_dft`` 1-6×, ``dft``
0.7-6×; for dense 3×3 torch's own backward is as fast (0.65-1.0×), so it stays ``direct``; from
15 taps torch's forward falls off a cliff (~20× slower) and ``dft`` wins (K=17: 10-12× vs 2× for
``direct_grouped``). Hence on CPU: forward ``direct`` for <= ``DIRECT_MAX_TAPS`` taps per axis, else
``dft``; with gradients (stride 1) ``direct_grouped`` up to ``DIRECT_MAX_TAPS`` taps except dense
3×3, ``dft`` beyond; ``fft`` instead of ``dft`` once the period exceeds ``DFT_MAX_PERIOD`` (K=31 on
32-112 px maps: dft 1.1× faster at P=47, fft 2.6-3.9× faster at P=95-127, noisy in between). Dense
3×3, tiny inputs, strided small kernels, half precision and CUDA (cuDNN; not measured here, no GPU)
go ``direct``.
"""

from __future__ import annotations

import torch

from kernelkit.layers._dw_geometry import Geometry, IntPair, Padding, resolve_geometry, validate_inputs
from kernelkit.layers._dw_spectral import direct_conv, direct_depthwise, spectral_depthwise

STRATEGIES = ("auto", "direct", "direct_grouped", "dft", "fft", "direct_dft", "subgrid")

DIRECT_MAX_TAPS = 13  # torch's CPU depthwise forward is fast up to 13 taps per axis, ~20× slower from 15
DFT_MAX_PERIOD = 80  # dense DFT matrices beyond this length lose to torch.fft (crossover ~70-95)
SMALL_TAPS = 9  # kh * kw at or below this, not dilated (dense 3×3): torch, whose own backward is as fast
TINY_NUMEL = 4096  # below this many input elements the per-call overhead of the spectral path dominates


def choose_strategy(x: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> str:
    """The strategy ``auto`` uses for this input (see the module docstring for the measurements)."""
    kh, kw = geo.h.kernel, geo.w.kernel
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return "direct"
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    dense_small = kh * kw <= SMALL_TAPS and not geo.dilated
    if x.numel() < TINY_NUMEL or dense_small:
        return "direct"
    if max(kh, kw) <= DIRECT_MAX_TAPS:  # torch's forward is fast here; only its backward is slow
        if not needs_grad:
            return "direct"
        return "direct" if geo.strided else "direct_grouped"
    return "dft" if max(geo.h.min_period, geo.w.min_period) <= DFT_MAX_PERIOD else "fft"


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                     stride: IntPair = 1, padding: Padding = "same", dilation: IntPair = 1, *,
                     strategy: str = "auto") -> torch.Tensor:
    """Depthwise 2-D convolution, equal to ``F.conv2d(x, weight, bias, stride, padding, dilation, groups=C)``.

    Args:
        x: input ``(N, C, H, W)``.
        weight: ``(C, 1, kh, kw)``, any (odd or even, non-square) kernel size.
        bias: optional ``(C,)``.
        stride, dilation: int or ``(h, w)`` pair, >= 1.
        padding: ``"same"`` (stride 1 only, as in torch), ``"valid"``, an int or a ``(ph, pw)`` pair.
        strategy: ``"auto"`` (by shape, see module docstring) or one of ``STRATEGIES`` to force a path.

    Returns:
        ``(N, C, H_out, W_out)``, differentiable with respect to ``x``, ``weight`` and ``bias``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    validate_inputs(x, weight, bias)
    geo = resolve_geometry(x, weight, stride, padding, dilation)
    if strategy == "auto":
        strategy = choose_strategy(x, weight, geo)
    if strategy == "direct":
        return direct_conv(x, weight, bias, geo)
    if strategy == "direct_grouped":
        return direct_depthwise(x, weight, bias, geo)
    if strategy == "subgrid":
        from kernelkit.layers._dw_subgrid import subgrid_depthwise

        return subgrid_depthwise(x, weight, bias, geo)
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"strategy {strategy!r} supports float32 and float64 only, got {x.dtype}")
    if strategy == "direct_dft":
        return spectral_depthwise(x, weight, bias, geo, "dft", direct_forward=True)
    return spectral_depthwise(x, weight, bias, geo, strategy)
