"""Fast large-kernel depthwise convolution with autograd (``depthwise_conv2d``).

``depthwise_conv2d(x, weight, bias=None, stride=1, padding="same", dilation=1)`` computes exactly
``F.conv2d(x, weight, bias, stride, padding, dilation, groups=C)`` (``padding="same"`` with even
kernels pads like torch: ``total // 2`` before, the rest after) and picks a strategy by shape:

* ``"direct"``         ``F.conv2d(groups=C)`` forward and torch's own backward;
* ``"direct_grouped"`` ``F.conv2d`` forward (fast in torch for <= 13 taps per axis; ``direct_widened``'s
                       forward where the fixed rule would widen); backward: input
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
* ``"direct_widened"`` ``F.conv2d`` with the kernel one zero tap wider on each side
                       (:mod:`kernelkit.layers._dw_widened`): the same numbers, for the kernel widths at which
                       oneDNN's channels-last forward on AVX-512 is slow; torch autograd;
* ``"subgrid"``        dilated kernels as a dense ``k×k`` conv on the ``d×d`` interleaved sub-images
                       (:mod:`kernelkit.layers._dw_subgrid`; torch autograd; strides subsample). Never the
                       fixed rule's pick; a candidate for dilated kernels when tuning is on.

``strategy="auto"`` asks :mod:`kernelkit.tune`. By default that is :func:`choose_strategy`, a fixed rule
by shape (no timing): forward on an AVX-512 CPU with a float32 channels-last input and an undilated kernel of
up to 29 taps per axis goes ``direct`` (oneDNN's channels-last kernel), or ``direct_widened`` for widths 12
and 13; otherwise on CPU in float32/64, forward ``direct`` for up to ``DIRECT_MAX_TAPS`` taps per axis
(torch's own forward is fast there), else ``dft``; with gradients (stride 1) ``direct_grouped`` up to
``DIRECT_MAX_TAPS`` taps except dense 3×3 (torch's own backward is as fast there), ``dft`` beyond;
``fft`` instead of ``dft`` once the circular period exceeds ``DFT_MAX_PERIOD``. Dense 3×3, tiny inputs,
strided small kernels, half precision and CUDA (cuDNN) go ``direct``. The rule follows CPU runs of
``kernelkit bench depthwise_conv``, whose JSON/markdown output records the measured numbers. With
tuning on (``KERNELKIT_TUNE=1`` or ``with kernelkit.tune.enabled():``) the strategies are measured on
the call's shapes once and the fastest is cached; the rule's pick is kept unless another wins clearly.

With the PyTorch toolchain (every strategy gives ``F.conv2d``'s numbers to fp32 rounding):

* **eager, CPU:** the strategy runs as above (autograd functions with hand-written backwards, no
  dispatcher round trip);
* **torch.compile, FlopCounterMode, fake tensors / make_fx, tensor subclasses:** ``direct_widened`` is plain
  torch ops under ``torch.compile`` and ``direct`` (the caller's own kernel, so FLOP counters count its
  FLOPs) under a dispatch mode; every other strategy but ``direct`` is the registered op
  ``kernelkit::depthwise_conv2d`` (:mod:`kernelkit.layers._dw_ops`): a fake
  implementation for tracing, an autograd formula calling ``kernelkit::depthwise_conv2d_backward`` (the
  strategy's own backward) and ``F.conv2d``'s FLOP count, so ``FlopCounterMode`` reports the conv's
  ``2·N·C·H_out·W_out·kh·kw`` FLOPs (twice that for the backward) whatever strategy ran. Compiled code
  keeps the op (``fullgraph=True`` works); the fixed rule applies, tuning is never measured while tracing;
* **torch.export / ONNX** (``torch.compiler.is_exporting()``): plain ``F.conv2d``, a standard conv graph;
* **autocast** (CPU or CUDA): plain ``F.conv2d``, cast by autocast's rules (parameters may then differ in
  dtype from the input), whatever ``strategy`` says;
* **CUDA, meta and other devices:** plain ``F.conv2d`` (cuDNN on CUDA) whatever ``strategy`` says; the
  op has a CPU implementation only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from kernelkit import tune
from kernelkit.layers._dw_geometry import Geometry, IntPair, Padding, resolve_geometry, validate_inputs
from kernelkit.layers._dw_ops import op_arguments
from kernelkit.layers._dw_spectral import direct_conv, direct_depthwise, spectral_depthwise
from kernelkit.layers._dw_subgrid import subgrid_depthwise
from kernelkit.layers._dw_widened import onednn_channels_last, widen, widened_conv

STRATEGIES = ("auto", "direct", "direct_grouped", "dft", "fft", "direct_dft", "subgrid", "direct_widened")
TUNE_OP = "depthwise"  # the tuner's name for depthwise strategy choices

DIRECT_MAX_TAPS = 13  # taps per axis up to which torch's CPU depthwise forward stays fast
DFT_MAX_PERIOD = 80  # circular period beyond which dense DFT matrices lose to torch.fft
SMALL_TAPS = 9  # kh * kw at or below this, not dilated (dense 3×3): torch, whose own backward is as fast
TINY_NUMEL = 4096  # below this many input elements the per-call overhead of the spectral path dominates


def choose_strategy(x: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> str:
    """The fixed rule's strategy for this input (``auto``'s choice unless tuning is on; see the module docstring)."""
    kh, kw = geo.h.kernel, geo.w.kernel
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return "direct"
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    if not needs_grad and onednn_channels_last(x, geo):  # oneDNN's channels-last forward (AVX-512)
        return "direct_widened" if widen(x, geo) else "direct"
    dense_small = kh * kw <= SMALL_TAPS and not geo.dilated
    if x.numel() < TINY_NUMEL or dense_small:
        return "direct"
    if max(kh, kw) <= DIRECT_MAX_TAPS:  # torch's forward is fast here; only its backward is slow
        if not needs_grad:
            return "direct"
        return "direct" if geo.strided else "direct_grouped"
    return "dft" if max(geo.h.min_period, geo.w.min_period) <= DFT_MAX_PERIOD else "fft"


def _needs_grad(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))


def tune_key(x: torch.Tensor, geo: Geometry, grad: bool) -> str:
    """The op's part of the tuner's key for this call (``kernelkit.tune`` adds torch version, device, threads)."""
    h, w = geo.h, geo.w
    return "|".join(("x".join(map(str, x.shape)), f"k{h.kernel}x{w.kernel}", f"s{h.stride}x{w.stride}",
                     f"d{h.dilation}x{w.dilation}", f"p{h.pad_before},{h.pad_after},{w.pad_before},{w.pad_after}",
                     str(x.dtype).removeprefix("torch."), "grad" if grad else "nograd"))


def tuned_strategy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry) -> str:
    """``auto``'s strategy: :func:`choose_strategy`, or with tuning on the measured fastest (:mod:`kernelkit.tune`)."""
    heuristic = choose_strategy(x, weight, geo)
    if x.numel() < TINY_NUMEL or x.device.type != "cpu":  # elsewhere every strategy runs F.conv2d
        return heuristic
    candidates = ["direct", "direct_grouped"]
    if x.dtype in (torch.float32, torch.float64):
        candidates += ["dft", "fft", "direct_dft"]
    if geo.dilated:
        candidates.append("subgrid")
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        candidates.append("direct_widened")
    if heuristic not in candidates:
        return heuristic
    grad = _needs_grad(x, weight, bias)

    def calls(names: Sequence[str]) -> Mapping[str, Callable[[], object]]:
        xp = x.detach().clone().requires_grad_(grad and x.requires_grad)
        wp = weight.detach().clone().requires_grad_(grad and weight.requires_grad)
        bp = None if bias is None else bias.detach().clone().requires_grad_(grad and bias.requires_grad)
        inputs = [t for t in (xp, wp, bp) if t is not None and t.requires_grad]

        def make(name: str) -> Callable[[], object]:
            def run() -> object:
                with torch.set_grad_enabled(grad):
                    out = _run(xp, wp, bp, geo, name)
                    return torch.autograd.grad(out, inputs, torch.ones_like(out)) if grad else out
            return run
        return {n: make(n) for n in names}

    return tune.choose(TUNE_OP, lambda: tune_key(x, geo, grad), heuristic=heuristic, candidates=candidates,
                       paths=calls, device=x.device)


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
        strategy: ``"auto"`` (by shape, or measured when tuning is on; see the module docstring) or one of
            ``STRATEGIES`` to force a path (on CPU, outside autocast and export; elsewhere ``F.conv2d``).

    Returns:
        ``(N, C, H_out, W_out)``, differentiable with respect to ``x``, ``weight`` and ``bias``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    autocast = _autocast_enabled(x)
    validate_inputs(x, weight, bias, same_dtype=not autocast)
    geo = resolve_geometry(x, weight, stride, padding, dilation)
    if autocast:  # F.conv2d casts as autocast says; the fast paths run in float32/64 only
        return direct_conv(x, weight, bias, geo)
    if strategy == "auto":
        strategy = tuned_strategy(x, weight, bias, geo)
    return _run(x, weight, bias, geo, strategy)


def _autocast_enabled(x: torch.Tensor) -> bool:
    return x.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(x.device.type)


def _traced(x: torch.Tensor) -> bool:
    """Under ``torch.compile`` tracing, a ``TorchDispatchMode`` (``FlopCounterMode``, fake tensors, ``make_fx``)
    or with a tensor subclass input: the registered op is called instead of the eager autograd functions."""
    if torch.compiler.is_compiling():
        return True
    return type(x) is not torch.Tensor or bool(torch._C._len_torch_dispatch_stack())


def _run(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry, strategy: str
         ) -> torch.Tensor:
    if strategy == "direct" or x.device.type != "cpu" or torch.compiler.is_exporting():
        return direct_conv(x, weight, bias, geo)
    if strategy == "direct_widened":  # plain ops; a dispatch mode (FLOP counter) sees the caller's own kernel
        if torch.compiler.is_compiling() or not _traced(x):
            return widened_conv(x, weight, bias, geo)
        return direct_conv(x, weight, bias, geo)
    if strategy in ("dft", "fft", "direct_dft") and x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"strategy {strategy!r} supports float32 and float64 only, got {x.dtype}")
    if _traced(x):
        stride, pads, dilation = op_arguments(geo)
        return torch.ops.kernelkit.depthwise_conv2d(x, weight, bias, stride, pads, dilation, strategy)
    if strategy == "direct_grouped":
        return direct_depthwise(x, weight, bias, geo, widened_conv if widen(x, geo) else direct_conv)
    if strategy == "subgrid":
        return subgrid_depthwise(x, weight, bias, geo)
    if strategy == "direct_dft":
        return spectral_depthwise(x, weight, bias, geo, "dft", direct_forward=True)
    return spectral_depthwise(x, weight, bias, geo, strategy)
