"""Depthwise convolution in the frequency domain, with a hand-written backward pass.

A stride-1 depthwise convolution is a circular convolution on a period ``P >= size + max(pad)``
per axis (``AxisGeometry.min_period``), so per channel ``Y = X · H`` with ``X`` the 2-D real DFT
of the unpadded input and ``H`` that of the kernel placed at the tap offsets ``pad_before - k·d``.
Stride and cropping are reading the inverse transform at chosen positions only; dilation is free.

The backward pass stays in the frequency domain too:

* ``grad_x = synthesis(GY · conj(H))`` (correlation with the kernel),
* ``grad_w[k] = synthesis(Σ_n GY · conj(X))`` read at the tap offsets (a cross-correlation),

which is why it costs about one more forward pass, where torch's CPU depthwise backward costs ~10.

Two transforms implement ``analysis`` (real signal at given positions → half spectrum) and
``synthesis`` (half spectrum → real values at given positions):

* ``"fft"``: ``torch.fft.rfft2`` / ``irfft2`` with a 2·3·5-smooth period;
* ``"dft"``: dense DFT matrices applied with (batched) GEMMs, period exactly ``min_period``; for the
  20–64 point transforms of 7–56 px feature maps this is faster than an FFT on CPU, because GEMM runs
  near peak and only the positions that exist (input pixels, output pixels, taps) are computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from kernelkit.layers._dw_geometry import AxisGeometry, Geometry

Positions = tuple[int, ...]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128,
            torch.float16: torch.complex64, torch.bfloat16: torch.complex64}


def direct_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry) -> torch.Tensor:
    """``F.conv2d(groups=C)`` with the resolved geometry (asymmetric 'same' padding done by ``F.pad``)."""
    stride, dilation = (geo.h.stride, geo.w.stride), (geo.h.dilation, geo.w.dilation)
    if geo.symmetric:
        return F.conv2d(x, weight, bias, stride, (geo.h.pad_before, geo.w.pad_before), dilation, x.shape[1])
    x = F.pad(x, (geo.w.pad_before, geo.w.pad_after, geo.h.pad_before, geo.h.pad_after))
    return F.conv2d(x, weight, bias, stride, 0, dilation, x.shape[1])


def direct_input_grad(grad_y: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Stride-1 input gradient as ``F.conv2d`` of ``grad_y`` with the flipped kernel (torch's fast forward).

    ``grad_x[m] = Σ_k w[K-1-k] · grad_y[m - (extent-1-pad_before) + k·d]``: pad ``extent-1-pad`` on each
    side (negative values crop).
    """
    h, w = geo.h, geo.w
    pads = (w.extent - 1 - w.pad_before, w.extent - 1 - w.pad_after, h.extent - 1 - h.pad_before,
            h.extent - 1 - h.pad_after)
    return F.conv2d(F.pad(grad_y, pads), weight.flip(-1, -2), None, 1, 0, (h.dilation, w.dilation), grad_y.shape[1])


def grouped_weight_grad(x: torch.Tensor, grad_y: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Weight gradient ``(C, 1, kh, kw)`` as one grouped ``F.conv2d`` with ``grad_y`` as the kernel.

    ``grad_w[c, k] = Σ_n Σ_m grad_y[n, c, m] · x_pad[n, c, m·s + k·d]``: a cross-correlation of each
    padded input plane with its output-gradient plane, read at the tap positions — a convolution with
    ``N·C`` groups, ``grad_y`` as the (large) kernel dilated by the stride ``s``, and stride ``d``, whose
    tiny ``kh × kw`` output oneDNN computes far faster than torch's depthwise weight-gradient kernel.
    """
    h, w = geo.h, geo.w
    n, c = x.shape[:2]
    xp = F.pad(x, (w.pad_before, w.pad_after, h.pad_before, h.pad_after))
    if h.out * w.out == 1:  # a 1×1 "kernel": torch would loop over the N·C groups in its slow path
        taps = xp[..., :h.extent:h.dilation, :w.extent:w.dilation]
        return (taps * grad_y).sum(0).unsqueeze(1)
    xp = xp.reshape(1, n * c, *_padded(geo))
    ker = grad_y.reshape(n * c, 1, h.out, w.out)
    out = F.conv2d(xp, ker, None, (h.dilation, w.dilation), 0, (h.stride, w.stride), n * c)
    return out[..., :h.kernel, :w.kernel].reshape(n, c, h.kernel, w.kernel).sum(0).unsqueeze(1)


def _padded(geo: Geometry) -> tuple[int, int]:
    return (geo.h.size + geo.h.pad_before + geo.h.pad_after, geo.w.size + geo.w.pad_before + geo.w.pad_after)


def strided_input_grad(grad_y: torch.Tensor, weight: torch.Tensor, geo: Geometry) -> torch.Tensor:
    """Input gradient of a strided conv: spread ``grad_y`` onto the stride-1 output grid, then
    :func:`direct_input_grad` (the flipped-kernel ``F.conv2d``)."""
    h, w = geo.h, geo.w
    dense = grad_y.new_zeros(*grad_y.shape[:2], h.out_dense, w.out_dense)
    dense[..., ::h.stride, ::w.stride] = grad_y
    return direct_input_grad(dense, weight, geo)


def direct_backward(grad_y: torch.Tensor, x: torch.Tensor | None, weight: torch.Tensor | None, geo: Geometry,
                    need_x: bool, need_w: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(grad_x, grad_w)`` of the direct strategies: input gradient as ``F.conv2d`` with the flipped kernel
    (:func:`direct_input_grad`, :func:`strided_input_grad`), weight gradient as one grouped ``F.conv2d``
    (:func:`grouped_weight_grad`). ``x`` is needed for ``grad_w``, ``weight`` for ``grad_x``."""
    grad_y = grad_y.contiguous()
    grad_x = grad_w = None
    if need_x:
        assert weight is not None
        input_grad = strided_input_grad if geo.strided else direct_input_grad
        grad_x = input_grad(grad_y, weight, geo)
    if need_w:
        assert x is not None
        grad_w = grouped_weight_grad(x, grad_y, geo)
    return grad_x, grad_w


# computes a depthwise conv's values: (x, weight, bias, geometry) -> y
ConvForward = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", Geometry], torch.Tensor]


class DirectDepthwise(torch.autograd.Function):
    """Depthwise conv: ``forward`` (``F.conv2d``, :func:`direct_conv`, by default), backward by
    :func:`direct_backward`."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                geo: Geometry, forward: ConvForward) -> torch.Tensor:
        ctx.geo, ctx.has_bias = geo, bias is not None
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight if ctx.needs_input_grad[0] else None)
        return forward(x, weight, bias, geo)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x, grad_w = direct_backward(grad_y, x, weight, ctx.geo, need_x, need_w)
        grad_b = grad_y.sum((0, 2, 3)) if (need_b and ctx.has_bias) else None
        return grad_x, grad_w, grad_b, None, None


def direct_depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry,
                     forward: ConvForward = direct_conv) -> torch.Tensor:
    """Depthwise conv through :class:`DirectDepthwise`; ``forward`` computes the values (same numbers as
    :func:`direct_conv`, e.g. :func:`kernelkit.layers._dw_widened.widened_conv`)."""
    return DirectDepthwise.apply(x, weight, bias, geo, forward)


def smooth_size(n: int) -> int:
    """Smallest integer >= n whose only prime factors are 2, 3 and 5 (fast FFT lengths)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def periods(geo: Geometry, transform: str) -> tuple[int, int]:
    """Circular periods (Ph, Pw) used by a transform."""
    if transform == "fft":  # rfft2/irfft2 also need every output position inside one period
        return smooth_size(max(geo.h.min_period, geo.h.out_dense)), smooth_size(max(geo.w.min_period, geo.w.out_dense))
    return geo.h.min_period, geo.w.min_period


def input_positions(axis: AxisGeometry) -> Positions:
    return tuple(range(axis.size))


def output_positions(axis: AxisGeometry) -> Positions:
    return tuple(i * axis.stride for i in range(axis.out))


def tap_positions(axis: AxisGeometry, period: int) -> Positions:
    return tuple(j % period for j in axis.tap_offsets())


# -- dense DFT matrices (cached per period, positions, dtype, device) ---------------------------------
def _phase(period: int, positions: Positions) -> torch.Tensor:
    """Angles ``2π·f·p/P`` for all frequencies f (rows) and positions p (columns), in float64."""
    f = torch.arange(period, dtype=torch.int64)[:, None]
    p = torch.tensor(positions, dtype=torch.int64)[None, :]
    return (f * p % period).to(torch.float64) * (2 * math.pi / period)


@lru_cache(maxsize=256)
def _analysis_rows(period: int, positions: Positions, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Complex (P, L): full DFT along an axis of a signal known at ``positions``."""
    angle = _phase(period, positions)
    return torch.polar(torch.ones_like(angle), -angle).to(dtype=_COMPLEX[dtype], device=device)


@lru_cache(maxsize=256)
def _analysis_cols(period: int, positions: Positions, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Real (L, 2F): half-spectrum DFT of a real signal, columns interleaved (re, im) per frequency."""
    nfreq = period // 2 + 1
    angle = _phase(period, positions)[:nfreq].T  # (L, F)
    mat = torch.stack((torch.cos(angle), -torch.sin(angle)), dim=-1).reshape(len(positions), 2 * nfreq)
    return mat.to(dtype=dtype, device=device)


@lru_cache(maxsize=256)
def _synthesis_rows(period: int, positions: Positions, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Complex (L, P): inverse DFT along an axis, evaluated at ``positions`` (includes 1/P)."""
    mat = torch.polar(torch.full((), 1.0 / period, dtype=torch.float64), _phase(period, positions).T)
    return mat.to(dtype=_COMPLEX[dtype], device=device)


@lru_cache(maxsize=256)
def _synthesis_cols(period: int, positions: Positions, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Real (2F, L): inverse real DFT from an interleaved half spectrum to values at ``positions``."""
    nfreq = period // 2 + 1
    weight = torch.full((nfreq, 1), 2.0 / period, dtype=torch.float64)
    weight[0] = 1.0 / period
    if period % 2 == 0:
        weight[-1] = 1.0 / period
    angle = _phase(period, positions)[:nfreq]  # (F, L)
    mat = torch.stack((weight * torch.cos(angle), -weight * torch.sin(angle)), dim=1).reshape(2 * nfreq, -1)
    return mat.to(dtype=dtype, device=device)


class Transform(Protocol):
    def analysis(self, x: torch.Tensor, pos: tuple[Positions, Positions], period: tuple[int, int]) -> torch.Tensor:
        """Real (..., Lh, Lw) at positions → complex half spectrum (..., Ph, Pw // 2 + 1)."""

    def synthesis(self, z: torch.Tensor, pos: tuple[Positions, Positions], period: tuple[int, int]) -> torch.Tensor:
        """Complex half spectrum (..., Ph, Pw // 2 + 1) → real values (..., Lh, Lw) at positions."""


class MatrixDFT:
    """Transforms as GEMMs with dense DFT matrices restricted to the positions that exist."""

    def analysis(self, x: torch.Tensor, pos: tuple[Positions, Positions], period: tuple[int, int]) -> torch.Tensor:
        cols = _analysis_cols(period[1], pos[1], x.dtype, x.device)
        half = torch.matmul(x, cols)  # (..., Lh, 2F) real, interleaved
        half = torch.view_as_complex(half.unflatten(-1, (-1, 2)))  # (..., Lh, F)
        return torch.matmul(_analysis_rows(period[0], pos[0], x.dtype, x.device), half)  # (..., Ph, F)

    def synthesis(self, z: torch.Tensor, pos: tuple[Positions, Positions], period: tuple[int, int]) -> torch.Tensor:
        real_dtype = z.real.dtype
        rows = torch.matmul(_synthesis_rows(period[0], pos[0], real_dtype, z.device), z)  # (..., Lh, F)
        flat = torch.view_as_real(rows).flatten(-2)  # (..., Lh, 2F)
        return torch.matmul(flat, _synthesis_cols(period[1], pos[1], real_dtype, z.device))  # (..., Lh, Lw)


def _as_index(positions: Positions) -> slice | list[int]:
    """A slice when positions are 0, s, 2s, ... (a view), else an index list."""
    if len(positions) == 1:
        return slice(positions[0], positions[0] + 1)
    step = positions[1] - positions[0]
    if positions[0] == 0 and step > 0 and all(b - a == step for a, b in zip(positions, positions[1:], strict=False)):
        return slice(0, positions[-1] + 1, step)
    return list(positions)


class TorchFFT:
    """Transforms with ``torch.fft.rfft2`` / ``irfft2`` (zero-inserted / gathered positions)."""

    def analysis(self, x: torch.Tensor, pos: tuple[Positions, Positions], period: tuple[int, int]) -> torch.Tensor:
        ih, iw = _as_index(pos[0]), _as_index(pos[1])
        if ih != slice(0, x.shape[-2], 1) or iw != slice(0, x.shape[-1], 1):
            placed = x.new_zeros(*x.shape[:-2], max(pos[0]) + 1, max(pos[1]) + 1)
            if isinstance(ih, slice) and isinstance(iw, slice):
                placed[..., ih, iw] = x
            else:
                rows, cols = torch.tensor(pos[0], device=x.device), torch.tensor(pos[1], device=x.device)
                placed[..., rows[:, None], cols[None, :]] = x
            x = placed
        return torch.fft.rfft2(x, s=period)

    def synthesis(self, z: torch.Tensor, pos: tuple[Positions, Positions], period: tuple[int, int]) -> torch.Tensor:
        full = torch.fft.irfft2(z, s=period)
        ih, iw = _as_index(pos[0]), _as_index(pos[1])
        out = full[..., ih, :]
        return out[..., iw]


TRANSFORMS: dict[str, Transform] = {"dft": MatrixDFT(), "fft": TorchFFT()}


def kernel_spectrum(weight: torch.Tensor, geo: Geometry, period: tuple[int, int]) -> torch.Tensor:
    """Half spectrum (C, Ph, F) of each kernel placed at its circular tap offsets (dilation included)."""
    taps = (tap_positions(geo.h, period[0]), tap_positions(geo.w, period[1]))
    return MatrixDFT().analysis(weight[:, 0], taps, period)


def weight_grad(cross: torch.Tensor, geo: Geometry, period: tuple[int, int]) -> torch.Tensor:
    """Read the circular cross-correlation spectrum (C, Ph, F) at the tap offsets → (C, 1, kh, kw)."""
    taps = (tap_positions(geo.h, period[0]), tap_positions(geo.w, period[1]))
    return MatrixDFT().synthesis(cross, taps, period).unsqueeze(1)


def spectral_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry,
                     transform: str, direct_forward: bool = False, keep_spectra: tuple[bool, bool] = (False, False),
                     ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(y, spec_x, spec_w)``: the spectral (or, with ``direct_forward``, ``F.conv2d``) forward, and the input
    and kernel spectra it computed when ``keep_spectra`` asks for them (for :func:`spectral_backward`)."""
    period = periods(geo, transform)
    if direct_forward:
        return direct_conv(x, weight, bias, geo), None, None
    tr = TRANSFORMS[transform]
    spec_x = tr.analysis(x, (input_positions(geo.h), input_positions(geo.w)), period)
    spec_w = kernel_spectrum(weight, geo, period)
    y = tr.synthesis(spec_x * spec_w, (output_positions(geo.h), output_positions(geo.w)), period)
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y, spec_x if keep_spectra[0] else None, spec_w if keep_spectra[1] else None


def spectral_backward(grad_y: torch.Tensor, geo: Geometry, transform: str, direct_forward: bool, need_x: bool,
                      need_w: bool, *, x: torch.Tensor | None = None, spec_x: torch.Tensor | None = None,
                      weight: torch.Tensor | None = None, spec_w: torch.Tensor | None = None,
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(grad_x, grad_w)`` in the frequency domain (see the module docstring); the input and kernel spectra
    are taken from ``spec_x`` / ``spec_w`` when the forward kept them, else computed from ``x`` / ``weight``.
    With ``direct_forward`` at stride 1 the input gradient is the flipped-kernel ``F.conv2d``."""
    period, tr = periods(geo, transform), TRANSFORMS[transform]
    grad_x = grad_w = None
    grad_y = grad_y.contiguous()
    if not (need_x or need_w):
        return grad_x, grad_w
    spec_gy = None
    if need_w or not (direct_forward and not geo.strided):
        spec_gy = tr.analysis(grad_y, (output_positions(geo.h), output_positions(geo.w)), period)
    if need_x and direct_forward and not geo.strided:
        assert weight is not None
        grad_x = direct_input_grad(grad_y, weight, geo)
    elif need_x:
        if spec_w is None:
            assert weight is not None
            spec_w = kernel_spectrum(weight, geo, period)
        assert spec_gy is not None
        grad_x = tr.synthesis(spec_gy * spec_w.conj(), (input_positions(geo.h), input_positions(geo.w)), period)
    if need_w:
        if spec_x is None:
            assert x is not None
            spec_x = tr.analysis(x.contiguous(), (input_positions(geo.h), input_positions(geo.w)), period)
        assert spec_gy is not None
        cross = torch.einsum("nchw,nchw->chw", spec_gy, spec_x.conj())
        grad_w = weight_grad(cross, geo, period)
    return grad_x, grad_w


class SpectralDepthwise(torch.autograd.Function):
    """Depthwise conv with a frequency-domain backward (:func:`spectral_backward`); the forward is spectral
    or ``F.conv2d`` (:func:`spectral_forward`)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry,
                transform: str, direct_forward: bool) -> torch.Tensor:
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        y, spec_x, spec_w = spectral_forward(x, weight, bias, geo, transform, direct_forward, (need_w, need_x))
        ctx.geo, ctx.transform, ctx.has_bias, ctx.direct_forward = geo, transform, bias is not None, direct_forward
        ctx.save_for_backward(x if (need_w and spec_x is None) else None, spec_x,
                              weight if (need_x and spec_w is None) else None, spec_w)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, spec_x, weight, spec_w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x, grad_w = spectral_backward(grad_y, ctx.geo, ctx.transform, ctx.direct_forward, need_x, need_w,
                                           x=x, spec_x=spec_x, weight=weight, spec_w=spec_w)
        grad_b = grad_y.sum((0, 2, 3)) if (need_b and ctx.has_bias) else None
        return grad_x, grad_w, grad_b, None, None, None


def spectral_depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry,
                       transform: str = "dft", direct_forward: bool = False) -> torch.Tensor:
    """Depthwise conv through ``SpectralDepthwise`` (``transform`` in {"dft", "fft"})."""
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; choose from {sorted(TRANSFORMS)}")
    return SpectralDepthwise.apply(x.contiguous(), weight, bias, geo, transform, direct_forward)
