"""Fast large-kernel depthwise convolution with autograd (``depthwise_conv2d``).

``depthwise_conv2d(x, weight, bias=None, stride=1, padding="same", dilation=1)`` computes exactly
``F.conv2d(x, weight, bias, stride, padding, dilation, groups=C)`` (``padding="same"`` with even
kernels pads like torch: ``total // 2`` before, the rest after) and picks a strategy by shape:

* ``"direct"``      ``F.conv2d(groups=C)`` forward and torch's own backward;
* ``"dft"``         frequency domain with dense DFT matrices applied as GEMMs, forward and backward
                    (:mod:`kernelkit.conv._dw_spectral`); cost barely depends on the kernel size or
                    dilation;
* ``"fft"``         the same algorithm on ``torch.fft.rfft2`` / ``irfft2``;
* ``"direct_dft"``  ``F.conv2d`` forward (fast in torch for <= 13 taps per axis) with the frequency
                    domain backward (torch's CPU depthwise backward costs ~10 forwards);
* ``"subgrid"``     stride-1 dilated kernels as a dense ``k×k`` conv on the ``d×d`` interleaved
                    sub-images (:mod:`kernelkit.conv._dw_subgrid`).

Why ``auto`` picks what it picks (CPU, 2 cores, fp32, C=384, 32×32, batch 8; ratios torch / strategy,
measured side by side in one process on a loaded shared machine, so absolute times are inflated):

======================  ===========  =========  =========  ==============
case                    torch fwd    dft fwd    fft fwd    fwd+bwd: dft / direct_dft
======================  ===========  =========  =========  ==============
K=7                     1.00         0.45       0.39       6.3× / 8.0×
K=13                    1.00         0.12       0.11       13× / 15×
K=17                    1.00         6.3×       5.2×       22× / 10.5×
K=31                    1.00         12.6×      13.2×      see benchmark
k=3 r=3 / r=4 / r=5     1.00         0.30-0.51  0.32-0.59  see benchmark
k=7 r=2                 1.00         0.26       0.29       see benchmark
======================  ===========  =========  =========  ==============

torch's forward is fast up to 13 taps per axis (oneDNN) and falls off a cliff from 15; the spectral
forward costs about 2.4 direct 13×13 forwards whatever the kernel. Hence on CPU: forward ``direct`` for
<= ``DIRECT_MAX_TAPS`` taps per axis, else ``dft``; when a gradient is needed, ``direct_dft`` for small
kernels and ``dft`` for large ones. ``dft`` is used while the period is at most ``DFT_MAX_PERIOD``
(beyond that the O(P) matrices lose to O(log P) FFTs) and ``fft`` above. Tiny problems, 3×3 kernels,
half precision and CUDA tensors (cuDNN) always go ``direct``. ``benchmarks/depthwise_conv.py`` re-measures.
"""

from __future__ import annotations

import torch

from kernelkit.conv._dw_geometry import Geometry, IntPair, Padding, resolve_geometry, validate_inputs
from kernelkit.conv._dw_spectral import direct_conv, spectral_depthwise

STRATEGIES = ("auto", "direct", "dft", "fft", "direct_dft", "subgrid")

DIRECT_MAX_TAPS = 13  # torch's CPU depthwise forward is fast up to 13 taps per axis, ~20× slower from 15
DFT_MAX_PERIOD = 96  # dense DFT matrices beyond this length lose to torch.fft
SMALL_TAPS = 9  # kh * kw at or below this (3×3): torch forward and backward are both cheap
TINY_NUMEL = 4096  # below this many input elements the per-call overhead of the spectral path dominates


def choose_strategy(x: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> str:
    """The strategy ``auto`` uses for this input (see the module docstring for the measurements)."""
    kh, kw = geo.h.kernel, geo.w.kernel
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return "direct"
    if x.numel() < TINY_NUMEL or (kh * kw <= SMALL_TAPS and not geo.dilated):
        return "direct"
    spectral = "dft" if max(geo.h.min_period, geo.w.min_period) <= DFT_MAX_PERIOD else "fft"
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if max(kh, kw) <= DIRECT_MAX_TAPS:  # torch's forward is fast here; only its backward is slow
        return "direct_dft" if needs_grad and spectral == "dft" else "direct"
    return spectral


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
    if strategy == "subgrid":
        from kernelkit.conv._dw_subgrid import subgrid_depthwise

        return subgrid_depthwise(x, weight, bias, geo)
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"strategy {strategy!r} supports float32 and float64 only, got {x.dtype}")
    if strategy == "direct_dft":
        return spectral_depthwise(x, weight, bias, geo, "dft", direct_forward=True)
    return spectral_depthwise(x, weight, bias, geo, strategy)
