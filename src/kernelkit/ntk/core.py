"""Infinite-width kernel recursions (Jacot et al. 2018, Prop. 1 / Thm. 1; CNN-GP / CNTK rules).

Pure tensor math, no modules and no I/O. A :class:`Kernel` carries the covariances of one layer's
pre-activations (or activations) for two input batches. Spatial layouts keep the full covariance
between positions, so every kernel tensor has shape ``(*batch, *S, *S)`` where ``S`` is the spatial
shape (``()`` for fully connected layers, ``(H, W)`` for images):

* ``nngp``: ``(N1, N2, *S, *S)``, the NNGP covariance ``E[z(x1)_p z(x2)_p']`` per channel;
* ``ntk``:  ``(N1, N2, *S, *S)``, the NTK (per output channel), or ``None`` when not requested;
* ``cov1``: ``(N1, *S, *S)``, the covariance of each ``x1`` with itself (``cov2`` likewise).

All rules are written for one channel; weight layers average over input channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from kernelkit.layers.padding import tf_same_padding

__all__ = [
    "ATTENTION_MECHANISMS",
    "PADDINGS",
    "Kernel",
    "ab_relu",
    "attention_weights",
    "avg_pool_kernel",
    "conv_kernel",
    "conv_pads",
    "dense_kernel",
    "dropout_kernel",
    "erf_kernel",
    "flatten_kernel",
    "gap_kernel",
    "gelu_kernel",
    "input_kernel",
    "layer_norm_kernel",
    "pad_positions",
    "quadrature_kernel",
    "relu_expectations",
    "self_attention_kernel",
    "sum_kernels",
]

_EPS = 1e-30


@dataclass(frozen=True)
class Kernel:
    """Covariances of one layer for inputs ``x1`` and ``x2`` (see the module docstring for shapes)."""

    nngp: Tensor
    ntk: Tensor | None
    cov1: Tensor
    cov2: Tensor
    spatial: tuple[int, ...]
    channels: int
    is_gaussian: bool = False
    same_inputs: bool = False  # x2 is x1 (sample n of x1 is sample n of x2: Dropout's masks coincide)

    def replace(self, **changes: object) -> Kernel:
        return replace(self, **changes)  # type: ignore[arg-type]


def _map_covs(k: Kernel, f: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """``(f(cov1), f(cov2))``, calling ``f`` once when ``cov2`` is ``cov1`` (same inputs) and keeping them one
    tensor."""
    cov1 = f(k.cov1)
    return cov1, (cov1 if k.cov2 is k.cov1 else f(k.cov2))


# --------------------------------------------------------------------------------------------- input
def input_kernel(x1: Tensor, x2: Tensor, compute_ntk: bool = True, same_inputs: bool = False) -> Kernel:
    """Kernel of the raw inputs: ``x·x' / channels`` per position pair, NTK zero.

    ``x`` is ``(N, features)`` or ``(N, C, *S)`` (channels first); ``same_inputs`` says that ``x2`` is ``x1``
    (the diagonal of the kernel pairs each sample with itself); then ``cov2`` is ``cov1``, one tensor, and
    every rule keeps it so (``_map_covs``), computing the self-covariances once.
    """
    channels = x1.shape[1]
    spatial = tuple(x1.shape[2:])
    d = len(spatial)
    a = x1.reshape(x1.shape[0], channels, -1)  # (N1, C, P)
    b = x2.reshape(x2.shape[0], channels, -1)
    nngp = torch.einsum("ncp,mcq->nmpq", a, b) / channels
    cov1 = torch.einsum("ncp,ncq->npq", a, a) / channels
    cov2 = None if same_inputs else torch.einsum("ncp,ncq->npq", b, b) / channels
    shape = spatial + spatial

    def reshape(t: Tensor, lead: int) -> Tensor:
        return t.reshape(*t.shape[:lead], *shape) if d else t.reshape(t.shape[:lead])

    nngp, cov1 = reshape(nngp, 2), reshape(cov1, 1)
    cov2 = cov1 if cov2 is None else reshape(cov2, 1)
    ntk = torch.zeros_like(nngp) if compute_ntk else None
    return Kernel(nngp, ntk, cov1, cov2, spatial, channels, is_gaussian=False, same_inputs=same_inputs)


# --------------------------------------------------------------------------------------- weight layers
def dense_kernel(k: Kernel, out_features: int, weight_std: float, bias_std: float | None,
                 parametrization: str) -> Kernel:
    """Fully connected layer: ``nngp' = σw² nngp + σb²``; NTK per the parametrization.

    NTK parametrization: ``ntk' = nngp' + σw² ntk``.
    Standard parametrization: ``ntk' = fan_in · nngp + σw² ntk (+1 with a bias)``.
    """
    if k.spatial:
        raise ValueError(f"Dense needs a flat (N, features) input, got spatial shape {k.spatial}; add Flatten "
                         "or GlobalAvgPool first")
    return _affine(k, k.nngp, k.ntk, k.cov1, k.cov2, weight_std, bias_std, parametrization, fan_in=k.channels,
                   out_channels=out_features)


def _scale_shift(t: Tensor, wv: float, bv: float, in_place: bool) -> Tensor:
    """``wv·t + bv`` (the same floating-point operations in place or not; ones that change nothing skipped)."""
    if not in_place:
        return wv * t + bv
    if wv != 1.0:
        t.mul_(wv)
    return t.add_(bv) if bv != 0.0 else t


def _affine(k: Kernel, nngp: Tensor, ntk: Tensor | None, cov1: Tensor, cov2: Tensor, weight_std: float,
            bias_std: float | None, parametrization: str, fan_in: int, out_channels: int | None = None,
            spatial: tuple[int, ...] | None = None, owned: bool = False) -> Kernel:
    """The weight layer's affine map of the covariances; ``owned`` says that ``nngp``, ``ntk``, ``cov1`` and
    ``cov2`` were made for this call (no one else holds them), so they are updated in place."""
    if parametrization not in ("ntk", "standard"):
        raise ValueError(f"parametrization must be 'ntk' or 'standard', got {parametrization!r}")
    wv = weight_std**2
    bv = 0.0 if bias_std is None else bias_std**2
    new_ntk: Tensor | None = None
    if ntk is not None and parametrization == "standard":  # needs the old nngp
        new_ntk = fan_in * nngp + wv * ntk + (0.0 if bias_std is None else 1.0)
    new_nngp = _scale_shift(nngp, wv, bv, owned)
    if ntk is not None and parametrization == "ntk":
        new_ntk = (ntk.mul_(wv) if wv != 1.0 else ntk).add_(new_nngp) if owned else new_nngp + wv * ntk
    new_cov1 = _scale_shift(cov1, wv, bv, owned)
    new_cov2 = new_cov1 if cov2 is cov1 else _scale_shift(cov2, wv, bv, owned)
    return Kernel(new_nngp, new_ntk, new_cov1, new_cov2,
                  k.spatial if spatial is None else spatial,
                  k.channels if out_channels is None else out_channels, is_gaussian=True,
                  same_inputs=k.same_inputs)


PADDINGS = ("same", "valid", "circular", "symmetric")
"""``same``: JAX/TF SAME (output ``ceil(size/stride)``, the odd extra row/column at the bottom/right);
``circular``: the SAME amounts, wrapped around; ``valid``: none; ``symmetric``: ``(k-1)//2`` before and
``k//2`` after whatever the stride (torch's ``padding=k//2`` for odd ``k``)."""


def conv_pads(size: int, kernel_size: int, stride: int, padding: str) -> tuple[int, int]:
    """Padding ``(before, after)`` of one spatial axis of length ``size`` (see :data:`PADDINGS`)."""
    if padding == "valid":
        return 0, 0
    if padding == "symmetric":
        return (kernel_size - 1) // 2, kernel_size // 2
    if padding in ("same", "circular"):
        return tf_same_padding(size, kernel_size, stride)
    raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def pad_positions(t: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int], padding: str,
                  dims: tuple[int, ...] = (-4, -3, -2, -1)) -> Tensor:
    """Pad the spatial axes ``dims`` of ``t`` (negative, in ``(h, w)`` pairs) for a ``kernel_size``/``stride``
    window: zeros, or wrapped around for ``circular``."""
    pads = {d: conv_pads(t.shape[d], kernel_size[i % 2], stride[i % 2], padding) for i, d in enumerate(dims)}
    if all(p == (0, 0) for p in pads.values()):
        return t
    if padding == "circular":
        for d, (before, after) in pads.items():
            t = t.index_select(d, torch.arange(-before, t.shape[d] + after, device=t.device) % t.shape[d])
        return t
    flat: list[int] = []
    for d in range(-1, min(dims) - 1, -1):  # F.pad lists the last axis first
        flat += pads.get(d, (0, 0))
    return torch.nn.functional.pad(t, flat)


def _tap_sum(t: Tensor, k: int, stride: int, padding: str, dims: tuple[int, int]) -> Tensor:
    """``Σ_a t[.., s·i + a − before, .., s·i' + a − before, ..]`` over the ``k`` taps ``a`` of one spatial axis,
    whose two copies are ``dims``; zero padding is skipped rather than materialized."""
    size = t.shape[dims[0]]
    before, after = conv_pads(size, k, stride, padding)
    if padding == "circular" and before + after:
        idx = torch.arange(-before, size + after, device=t.device) % size
        t = t.index_select(dims[0], idx).index_select(dims[1], idx)
        size, before, after = size + before + after, 0, 0
    out_size = (size + before + after - k) // stride + 1
    if out_size < 1:
        raise ValueError(f"kernel size {k} is larger than the (padded) input size {size + before + after}")
    taps = []  # per tap inside the input: source and destination indices, whether it covers every output
    for a in range(k):
        lo = max(0, -(-(before - a) // stride))  # first output whose tap a lands inside the input
        hi = min(out_size, (size - 1 - a + before) // stride + 1)
        if hi <= lo:
            continue
        first = stride * lo + a - before
        src: list[slice] = [slice(None)] * t.dim()
        dst: list[slice] = [slice(None)] * t.dim()
        for d in dims:
            src[d] = slice(first, first + stride * (hi - lo - 1) + 1, stride)
            dst[d] = slice(lo, hi)
        taps.append((tuple(src), tuple(dst), lo == 0 and hi == out_size))
    # Start from a copy of a tap that covers every output (no zero fill, one pass less) when it is among the
    # first two taps: 0 + t0 + t1 and t1 + t0 are the same floating-point sum, so the values do not change.
    start = next((i for i, tap in enumerate(taps[:2]) if tap[2]), None)
    if start is None:
        shape = list(t.shape)
        shape[dims[0]] = shape[dims[1]] = out_size
        out = t.new_zeros(shape)
    else:
        out = t[taps[start][0]].clone(memory_format=torch.contiguous_format)
    for i, (src_i, dst_i, _) in enumerate(taps):
        if i != start:
            out[dst_i] += t[src_i]
    return out


def _shift_sum(t: Tensor, kernel_size: tuple[int, int], stride: int, padding: str) -> Tensor:
    """Mean over filter taps δ of ``t[..., p+δ, p'+δ]`` for ``t`` of shape ``(..., H, W, H, W)`` (separable: the
    row taps, then the column taps)."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    t = _tap_sum(t, kernel_size[0], stride, padding, (-4, -2))
    t = _tap_sum(t, kernel_size[1], stride, padding, (-3, -1))
    return t.div_(kernel_size[0] * kernel_size[1])


def conv_kernel(k: Kernel, out_channels: int, kernel_size: tuple[int, int], stride: int, padding: str,
                weight_std: float, bias_std: float | None, parametrization: str) -> Kernel:
    """Weight-shared 2-D convolution: ``K'_pp' = σw²/q Σ_δ K_{p+δ,p'+δ} + σb²`` (same for the NTK)."""
    if len(k.spatial) != 2:
        raise ValueError(f"Conv2d needs an (N, C, H, W) input, got spatial shape {k.spatial}")

    def f(t: Tensor) -> Tensor:
        return _shift_sum(t, kernel_size, stride, padding)

    nngp, (cov1, cov2) = f(k.nngp), _map_covs(k, f)
    ntk = None if k.ntk is None else f(k.ntk)
    spatial = tuple(nngp.shape[-2:])
    fan_in = k.channels * kernel_size[0] * kernel_size[1]
    return _affine(k, nngp, ntk, cov1, cov2, weight_std, bias_std, parametrization, fan_in=fan_in,
                   out_channels=out_channels, spatial=spatial, owned=True)  # the tap sums are new tensors


# ---------------------------------------------------------------------------------------- readouts
def _diag_positions(t: Tensor, spatial: tuple[int, ...], lead: int) -> Tensor:
    """``t[..., p, p]`` as ``(*lead, P)``."""
    p = math.prod(spatial)
    return t.reshape(*t.shape[:lead], p, p).diagonal(dim1=-2, dim2=-1)


def flatten_kernel(k: Kernel) -> Kernel:
    """Flatten: ``(1/P) Σ_p K_pp`` (only same-position covariances survive)."""
    if not k.spatial:
        return k
    p = math.prod(k.spatial)

    def f(t: Tensor, lead: int) -> Tensor:
        return _diag_positions(t, k.spatial, lead).mean(-1)

    cov1, cov2 = _map_covs(k, lambda c: f(c, 1))
    return Kernel(f(k.nngp, 2), None if k.ntk is None else f(k.ntk, 2), cov1, cov2, (),
                  k.channels * p, is_gaussian=k.is_gaussian, same_inputs=k.same_inputs)


def gap_kernel(k: Kernel) -> Kernel:
    """Global average pooling: ``(1/P²) Σ_{p,p'} K_pp'``."""
    if not k.spatial:
        raise ValueError("GlobalAvgPool needs a spatial (N, C, H, W) input")
    d = len(k.spatial)
    dims = tuple(range(-2 * d, 0))

    def f(t: Tensor) -> Tensor:
        return t.mean(dim=dims)

    cov1, cov2 = _map_covs(k, f)
    return Kernel(f(k.nngp), None if k.ntk is None else f(k.ntk), cov1, cov2, (), k.channels,
                  is_gaussian=k.is_gaussian, same_inputs=k.same_inputs)


def sum_kernels(kernels: list[Kernel]) -> Kernel:
    """Sum of independent branches (zero cross-covariance): kernels add."""
    first = kernels[0]
    for other in kernels[1:]:
        if other.spatial != first.spatial or other.nngp.shape != first.nngp.shape:
            raise ValueError(f"branches disagree in shape: {tuple(first.nngp.shape)} vs {tuple(other.nngp.shape)}")
        if other.channels != first.channels:
            raise ValueError(f"branches disagree in channels: {first.channels} vs {other.channels}")
    def total(ts: list[Tensor]) -> Tensor:  # ((t0 + t1) + t2) ..., one new tensor (the branches' are kept)
        out = ts[0] + ts[1] if len(ts) > 1 else ts[0]
        for t in ts[2:]:
            out.add_(t)
        return out

    ntk = None if first.ntk is None else total([k.ntk for k in kernels])  # type: ignore[misc]
    cov1 = total([k.cov1 for k in kernels])
    cov2 = cov1 if all(k.cov2 is k.cov1 for k in kernels) else total([k.cov2 for k in kernels])
    return Kernel(total([k.nngp for k in kernels]), ntk, cov1, cov2, first.spatial, first.channels,
                  is_gaussian=all(k.is_gaussian for k in kernels), same_inputs=first.same_inputs)


# ---------------------------------------------------------------------- pooling, normalization, dropout
def _avg_last_two(t: Tensor, kernel_size: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    y = torch.nn.functional.avg_pool2d(t.reshape(-1, 1, *t.shape[-2:]), kernel_size, stride)
    return y.reshape(*t.shape[:-2], *y.shape[-2:])


def avg_pool_kernel(k: Kernel, kernel_size: tuple[int, int], stride: tuple[int, int], padding: str) -> Kernel:
    """Local average pooling (a linear map on each position set): ``K'_pp' = 1/q² Σ_{δ,δ'} K_{p+δ,p'+δ'}``,
    divided by the full window size ``q`` also at padded edges (neural-tangents' ``normalize_edges=False``)."""
    if len(k.spatial) != 2:
        raise ValueError(f"AvgPool2d needs an (N, C, H, W) input, got spatial shape {k.spatial}")
    if padding not in PADDINGS:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")

    def pool(t: Tensor) -> Tensor:
        t = pad_positions(t, kernel_size, stride, padding)
        if t.shape[-2] < kernel_size[0] or t.shape[-1] < kernel_size[1]:
            raise ValueError(f"pooling window {kernel_size} is larger than the (padded) input "
                             f"{tuple(t.shape[-2:])}")
        t = _avg_last_two(t, kernel_size, stride).movedim((-4, -3), (-2, -1))
        return _avg_last_two(t, kernel_size, stride).movedim((-2, -1), (-4, -3))

    nngp, (cov1, cov2) = pool(k.nngp), _map_covs(k, pool)
    return k.replace(nngp=nngp, ntk=None if k.ntk is None else pool(k.ntk), cov1=cov1, cov2=cov2,
                     spatial=tuple(nngp.shape[-2:]))


def _position_scales(k: Kernel, s1: Tensor, s2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-position factors ``s1 (N1, P)``, ``s2 (N2, P)`` as multipliers of ``nngp``, ``cov1``, ``cov2``."""
    s, d = k.spatial, len(k.spatial)
    n1, n2 = s1.shape[0], s2.shape[0]
    ones = (1,) * d
    nngp = s1.reshape(n1, 1, *s, *ones) * s2.reshape(1, n2, *ones, *s)
    cov1 = s1.reshape(n1, *s, *ones) * s1.reshape(n1, *ones, *s)
    cov2 = s2.reshape(n2, *s, *ones) * s2.reshape(n2, *ones, *s)
    return nngp, cov1, cov2


def layer_norm_kernel(k: Kernel, eps: float) -> Kernel:
    """Layer normalization over channels at each position: ``K'_pp' = K_pp' / √((K¹_pp + ε)(K²_p'p' + ε))``
    (the NTK likewise). Needs Gaussian pre-activations, whose channel mean vanishes at infinite width."""
    if not k.is_gaussian:
        raise ValueError("LayerNorm needs Gaussian pre-activations: put it right after a Dense/Conv2d layer "
                         "(as neural-tangents, which implements it for Gaussian inputs only)")
    r1 = (_diag_positions(k.cov1, k.spatial, 1) + eps).rsqrt()
    r2 = (_diag_positions(k.cov2, k.spatial, 1) + eps).rsqrt()
    f12, f11, f22 = _position_scales(k, r1, r2)
    return k.replace(nngp=k.nngp * f12, ntk=None if k.ntk is None else k.ntk * f12, cov1=k.cov1 * f11,
                     cov2=k.cov2 * f22)


def dropout_kernel(k: Kernel, rate: float) -> Kernel:
    """Dropout in training mode (drop probability ``rate``, survivors scaled by ``1/(1 − rate)``): the covariance
    of a unit with itself grows by ``1/(1 − rate)`` (same sample, same position); masks of different samples or
    positions are independent. As neural-tangents, the NTK is scaled like the NNGP and the output is treated as
    non-Gaussian."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    factor = 1.0 / (1.0 - rate)
    p = math.prod(k.spatial)
    eye_p = torch.eye(p, dtype=k.nngp.dtype, device=k.nngp.device).reshape(k.spatial + k.spatial)
    on_positions = eye_p.mul(factor - 1.0).add_(1.0)
    cov1, cov2 = k.cov1 * on_positions, k.cov2 * on_positions
    nngp, ntk = k.nngp, k.ntk
    n1, n2 = nngp.shape[:2]
    if k.same_inputs and n1 == n2:
        eye_n = torch.eye(n1, dtype=nngp.dtype, device=nngp.device).reshape(n1, n1, *(1,) * (2 * len(k.spatial)))
        on_both = (eye_n * eye_p).mul_(factor - 1.0).add_(1.0)
        nngp = nngp * on_both
        ntk = None if ntk is None else ntk * on_both
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)


ATTENTION_MECHANISMS = ("softmax", "identity", "abs", "relu")


def attention_weights(logits: Tensor, mechanism: str) -> Tensor:
    """Attention weights from ``logits`` ``(..., P, P)``: softmax over the key positions (last axis), or the
    elementwise ``identity``/``abs``/``relu``."""
    if mechanism == "softmax":
        return torch.softmax(logits, dim=-1)
    if mechanism == "identity":
        return logits
    if mechanism == "abs":
        return logits.abs()
    if mechanism == "relu":
        return torch.relu(logits)
    raise ValueError(f"attention_mechanism must be one of {ATTENTION_MECHANISMS}, got {mechanism!r}")


def self_attention_kernel(k: Kernel, qk_std: float, ov_std: float, bias_std: float | None, mechanism: str) -> Kernel:
    """Global self-attention with linear scaling and tied key/query weights (Hron et al. 2020; neural-tangents'
    ``GlobalSelfAttention(linear_scaling=True)``): the attention weights converge to the deterministic
    ``G = mechanism(σ_QK K_self)`` of each input's own covariance, and
    ``K'_pp' = σ_OV² Σ_qq' G¹_pq K_qq' G²_p'q' + σb²``, ``Θ' = σ_OV² G¹ Θ G²ᵀ + σb² + 2(K' − σb²)``."""
    p = math.prod(k.spatial)
    n1, n2 = k.nngp.shape[:2]
    bv = 0.0 if bias_std is None else bias_std**2
    ov = ov_std**2
    g1 = attention_weights(qk_std * k.cov1.reshape(n1, p, p), mechanism)
    g2 = attention_weights(qk_std * k.cov2.reshape(n2, p, p), mechanism)

    def pair(t: Tensor) -> Tensor:
        out = torch.einsum("npq,nmqr,msr->nmps", g1, t.reshape(n1, n2, p, p), g2)
        return out.reshape(k.nngp.shape).mul_(ov).add_(bv)

    def self_cov(c: Tensor, g: Tensor, n: int) -> Tensor:
        return torch.einsum("npq,nqr,nsr->nps", g, c.reshape(n, p, p), g).reshape(c.shape).mul_(ov).add_(bv)

    nngp = pair(k.nngp)
    ntk = None if k.ntk is None else pair(k.ntk).add_(nngp - bv, alpha=2.0)
    return k.replace(nngp=nngp, ntk=ntk, cov1=self_cov(k.cov1, g1, n1), cov2=self_cov(k.cov2, g2, n2),
                     is_gaussian=True)


# ------------------------------------------------------------------------------------ nonlinearities
Expectations = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
"""``(k11, k22, k12) -> (E[σ(u)σ(v)], E[σ'(u)σ'(v)])`` for ``(u, v) ~ N(0, [[k11, k12], [k12, k22]])``."""


def elementwise_kernel(k: Kernel, expectations: Expectations, name: str) -> Kernel:
    """Apply a pointwise nonlinearity: ``nngp' = E[σσ]``, ``ntk' = E[σ'σ'] · ntk``, per position pair."""
    if not k.is_gaussian:
        raise ValueError(f"{name} needs Gaussian pre-activations: put a Dense/Conv2d layer before it "
                         "(two nonlinearities in a row, or a nonlinearity on the raw input, have no Gaussian rule)")
    s = k.spatial
    d1 = _diag_positions(k.cov1, s, 1)  # (N1, P)
    d2 = _diag_positions(k.cov2, s, 1)  # (N2, P)
    (n1, p), n2 = d1.shape, d2.shape[0]
    # Positions flattened, and k11/k22 broadcast rather than expanded: the same values with (N1, N2, P, P)
    # operands, whose last axis is contiguous (or broadcast), so the elementwise kernels run vectorized.
    k12 = k.nngp.reshape(n1, n2, p, p)
    nngp, dot = expectations(d1.reshape(n1, 1, p, 1), d2.reshape(1, n2, 1, p), k12)
    ntk = None if k.ntk is None else dot.mul_(k.ntk.reshape(k12.shape)).reshape(k.nngp.shape)  # dot not reused

    def self_cov(c: Tensor, d: Tensor) -> Tensor:
        return expectations(d.reshape(-1, p, 1), d.reshape(-1, 1, p), c.reshape(-1, p, p))[0].reshape(c.shape)

    cov1 = self_cov(k.cov1, d1)
    cov2 = cov1 if k.cov2 is k.cov1 else self_cov(k.cov2, d2)
    return Kernel(nngp.reshape(k.nngp.shape), ntk, cov1, cov2, s, k.channels,
                  is_gaussian=False, same_inputs=k.same_inputs)


def _correlation(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
    """``norm = √(k11 k22)`` and ``ρ = k12/norm`` clipped to ``[−1, 1]`` (``0`` where ``norm ≤ 1e-30``)."""
    norm = torch.mul(k11, k22).sqrt_()
    rho = torch.div(k12, norm).clamp_(-1.0, 1.0)  # where norm > ε this is k12/max(norm, ε)
    if norm.numel() and bool(norm.amin() <= _EPS):  # rare (zero inputs): only then the mask is built
        rho.masked_fill_(norm <= _EPS, 0.0)
    return norm, rho


def relu_expectations(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
    """Arc-cosine kernel: ``E[relu u relu v] = √(k11 k22)/(2π)(sin θ + (π−θ)ρ)``, ``E[1 1] = (π−θ)/(2π)``."""
    return ab_relu(0.0, 1.0)(k11, k22, k12)


def ab_relu(a: float, b: float) -> Expectations:
    """Expectations for ``σ(x) = a·min(x, 0) + b·max(x, 0)`` (ReLU, LeakyReLU, Abs, identity).

    With ``J(ρ)`` the ReLU arc-cosine kernel: ``E[σσ] = (a²+b²) J(ρ) − 2ab J(−ρ)`` and
    ``E[σ'σ'] = (a²+b²)(π−θ)/(2π) + 2ab θ/(2π)``.
    """

    c1, c2 = a * a + b * b, 2 * a * b

    def fn(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
        # J(ρ) = norm/(2π)(sin θ + (π−θ)ρ), J(−ρ) = norm/(2π)(sin θ − θρ), so with u = c1·π − (c1 − c2)·θ:
        # E[σσ] = norm/(2π)((c1 − c2) sin θ + u ρ) and E[σ'σ'] = u/(2π). Computed in place (memory-bound on CNTKs).
        norm, rho = _correlation(k11, k22, k12)
        dot = torch.arccos(rho).mul_(-(c1 - c2) / (2 * math.pi)).add_(c1 / 2)  # u/(2π)
        sin = torch.mul(rho, rho).neg_().add_(1.0).sqrt_()  # |ρ| ≤ 1, so ρ² ≤ 1 in floating point too
        nngp = sin.mul_((c1 - c2) / (2 * math.pi)).addcmul_(dot, rho).mul_(norm)
        return nngp, dot

    return fn


def erf_kernel(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> Expectations:
    """Expectations for ``σ(x) = a·erf(b x) + c`` (Williams 1997 closed form)."""

    def fn(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
        s11, s22, s12 = b * b * k11, b * b * k22, b * b * k12
        prod = (1 + 2 * s11) * (1 + 2 * s22)
        nngp = a * a * (2 / math.pi) * torch.arcsin((2 * s12 / torch.sqrt(prod)).clamp(-1.0, 1.0)) + c * c
        dot = a * a * b * b * (4 / math.pi) / torch.sqrt((prod - 4 * s12 * s12).clamp_min(_EPS))
        return nngp, dot

    return fn


def gelu_kernel() -> Expectations:
    """Expectations for the exact ``gelu(x) = x·Φ(x)`` (closed form of Tsuchida et al. 2021, as neural-tangents):
    with ``δ² = (1+k11)(1+k22) − k12²`` and ``α = atan2(k12, δ)``,
    ``E[σσ] = k12/4 + (k12 α + (k12² + k11 k22 δ²)/((1+k11)(1+k22) δ))/(2π)``."""

    def fn(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
        prod = k11 * k22
        prod1 = (k11 + 1) * (k22 + 1)
        delta2 = prod1 - k12 * k12
        delta = delta2.clamp_min(0.0).sqrt()
        angles = torch.atan2(k12, delta)
        nngp = ((k12 * k12 + prod * delta2) / (prod1 * delta) + k12 * angles) / (2 * math.pi) + 0.25 * k12
        first = (1 / delta2 + (1 - prod) / prod1 + 1) * k12 / delta / (2 * math.pi)
        dot = first + 0.25 + angles / (2 * math.pi)
        return nngp, dot

    return fn


def _hermite(order: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    import numpy as np

    x, w = np.polynomial.hermite_e.hermegauss(order)  # weight exp(-x²/2)
    return torch.tensor(x, dtype=dtype), torch.tensor(w / math.sqrt(2 * math.pi), dtype=dtype)


def quadrature_kernel(fn: Callable[[Tensor], Tensor], order: int = 128, chunk: int = 1024) -> Expectations:
    """Expectations of any elementwise ``fn`` by 2-D Gauss–Hermite quadrature (``order²`` nodes).

    ``u = √k11 z1``, ``v = √k22 (ρ z1 + √(1−ρ²) z2)``; the derivative comes from autograd. Accurate for
    smooth activations; kinks converge slowly (use the closed forms for ReLU-like functions).
    """

    def deriv(x: Tensor) -> Tensor:
        with torch.enable_grad():
            xx = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(fn(xx).sum(), xx)
        return g

    def fn_exp(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
        shape = k12.shape
        k11, k22, k12 = (t.reshape(-1) for t in torch.broadcast_tensors(k11, k22, k12))
        z, w = _hermite(order, k12.dtype)
        z, w = z.to(k12.device), w.to(k12.device)
        z1, z2 = z[:, None], z[None, :]
        ww = (w[:, None] * w[None, :]).reshape(-1)
        norm, rho = _correlation(k11, k22, k12)
        s1, s2 = torch.sqrt(k11.clamp_min(0)), torch.sqrt(k22.clamp_min(0))
        out_f, out_d = [], []
        for i in range(0, k12.numel(), chunk):
            sl = slice(i, i + chunk)
            r = rho[sl, None, None]
            u = s1[sl, None, None] * z1
            v = s2[sl, None, None] * (r * z1 + torch.sqrt((1 - r * r).clamp_min(0)) * z2)
            u = u.expand(-1, order, order).reshape(-1, order * order)
            v = v.reshape(-1, order * order)
            out_f.append((fn(u) * fn(v)) @ ww)
            out_d.append((deriv(u) * deriv(v)) @ ww)
        return torch.cat(out_f).reshape(shape), torch.cat(out_d).reshape(shape)

    return fn_exp
