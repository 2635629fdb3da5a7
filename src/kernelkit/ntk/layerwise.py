"""Structured empirical NTK of sequential networks by explicit layer-wise backpropagation on the whole batch.

For a chain of fully connected, convolutional, elementwise and reshaping layers, the cotangents ``G`` of
every output logit at each layer's output are propagated backwards for the whole batch at once
(one ``(N·O, out) × (out, in)`` product per fully connected layer), and each weight layer adds

* fully connected: ``Σ_o (G_o G'_oᵀ) ⊙ (s_w² A A'ᵀ + s_b²)`` with ``A`` the layer inputs; the ``out × in``
  per-sample gradients are never formed;
* convolution: the per-sample weight gradients ``G (C_out, P) · U (P, C_in·k²)`` from unfolded input
  patches ``U``, contracted with one matrix product (cheaper than the ``P²`` position-pair form).

For float32 on CPU the convolution input cotangents are computed in channels-last layout (oneDNN's transposed
convolution rather than its NCHW fallback) and kept in that layout through elementwise layers and
the next convolution's per-sample weight gradients, so no transposing copy is made.

Cost for an MLP: ``N·O·Σ in·out`` for the cotangents plus ``N²·O·Σ (in + out)`` for the contractions,
instead of ``N²·O·Σ in·out`` for contracting explicit Jacobians. Matrix products of float32 CPU tensors
go through oneDNN when it is available (it uses AVX-512 where the default BLAS may not).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernelkit.ntk import nn as knn
from kernelkit.utils import onednn

__all__ = ["LayerwiseFeatures", "NotAChainError", "chain_layers", "contract", "features", "forward_saving",
           "input_grad", "logit_chunks", "matmul_nt"]


class NotAChainError(RuntimeError):
    """The model's layers do not act as a simple chain on these inputs (e.g. a Linear on a 3-D input)."""

_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.ELU, nn.Softplus, nn.Mish,
                nn.Hardtanh, nn.Identity, knn.ABReLU, knn.Erf, knn.Elementwise, knn.Identity)
_WEIGHT = (nn.Linear, knn.Dense, nn.Conv2d, knn.Conv2d)


# ------------------------------------------------------------------------------------------- GEMM
def matmul_nt(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b.T`` for 2-D tensors (oneDNN for contiguous float32 on CPU when available)."""
    if a.dtype == torch.float32 and a.device.type == "cpu" and onednn.available() and not a.requires_grad:
        if not (b.is_contiguous() or b.T.is_contiguous()):  # oneDNN takes either layout without a copy
            b = b.contiguous()
        return onednn.linear(a.contiguous(), b)
    return a @ b.T


# --------------------------------------------------------------------------------------- detection
def _leaves(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in _leaves(child)]
    return [model]


def _supported(m: nn.Module) -> bool:
    if isinstance(m, nn.Conv2d):
        return m.groups == 1 and m.padding_mode == "zeros" and not isinstance(m.padding, str)
    if isinstance(m, nn.Flatten):
        return m.start_dim == 1 and m.end_dim == -1
    return isinstance(m, (*_WEIGHT, *_ELEMENTWISE, knn.Flatten, knn.GlobalAvgPool))


def chain_layers(model: nn.Module) -> list[nn.Module] | None:
    """The model as a list of supported layers applied in order, or ``None`` when it is not such a chain.

    Each layer must appear once and own its parameters (no tying); every trainable parameter must belong to a
    weight layer; buffers (e.g. batch-norm statistics) are not allowed.
    """
    layers = _leaves(model)
    if not all(_supported(m) for m in layers) or len({id(m) for m in layers}) != len(layers):
        return None
    if any(True for _ in model.buffers()):
        return None
    owned = [p for m in layers for p in m.parameters()]
    if len({id(p) for p in owned}) != len(owned) or {id(p) for p in model.parameters()} != {id(p) for p in owned}:
        return None
    return layers


# --------------------------------------------------------------------------------------- features
@dataclass
class _Dense:
    grads: Tensor  # (N, O, out): cotangents at the layer output
    inputs: Tensor  # (N, in)
    weight_scale2: float  # s_w² (0 when the weight is frozen)
    bias_scale2: float  # s_b² (0 without a trainable bias)


@dataclass
class LayerwiseFeatures:
    """Per-sample derivative factors of one input block."""

    n: int
    out_dim: int
    dense: list[_Dense]
    explicit: list[Tensor]  # (N, O, F): explicit per-sample gradients (convolutions)


def _scales(m: nn.Module) -> tuple[float, float]:
    return m.scales() if isinstance(m, (knn.Dense, knn.Conv2d)) else (1.0, 1.0)


def _trainable(p: object) -> bool:
    return isinstance(p, Tensor) and p.requires_grad


def _conv_geometry(m: nn.Module) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """kernel size, stride, padding, dilation (knn.Conv2d pads explicitly before a VALID convolution)."""
    if isinstance(m, knn.Conv2d):
        return m.kernel_size, (m.stride, m.stride), (0, 0), (1, 1)
    assert isinstance(m, nn.Conv2d)
    return (m.kernel_size, m.stride, m.padding, m.dilation)  # type: ignore[return-value]


def forward_saving(layers: list[nn.Module], x: Tensor) -> tuple[list[Tensor | None], Tensor]:
    """Run the chain; keep each weight layer's (padded) input and each elementwise layer's derivative."""
    saved: list[Tensor | None] = []
    for m in layers:
        if type(m) is nn.ReLU:  # derivative in closed form (autograd's threshold_backward is 0 at 0 too)
            saved.append((x > 0).to(x.dtype))
            x = torch.relu(x)
        elif isinstance(m, _ELEMENTWISE):
            with torch.enable_grad():
                h = x.detach().requires_grad_(True)
                y = m(h)
                (d,) = torch.autograd.grad(y.sum(), h)
            saved.append(d)
            x = y.detach()
        elif isinstance(m, knn.Conv2d):
            saved.append(x)  # unpadded: its size fixes the SAME padding amounts
            x = m(x)
        elif isinstance(m, (nn.Linear, knn.Dense)):
            if x.dim() != 2:
                raise NotAChainError(f"{type(m).__name__} applied to a {x.dim()}-D input")
            saved.append(x)
            ws, bs = _scales(m)
            y = matmul_nt(x, m.weight)
            y = y * ws if ws != 1.0 else y
            x = y if m.bias is None else y + (m.bias * bs if bs != 1.0 else m.bias)
        elif isinstance(m, _WEIGHT):
            saved.append(x)
            x = m(x)
        else:  # Flatten / GlobalAvgPool: keep the input shape
            saved.append(x.new_zeros(()).expand(x.shape))
            x = m(x)
    return saved, x


def input_grad(m: nn.Module, g: Tensor, inp: Tensor) -> Tensor:
    """Cotangent at the layer input from ``g`` of shape ``(N, O, *out)``; ``inp`` is the saved input."""
    n, o = g.shape[:2]
    if isinstance(m, (nn.Linear, knn.Dense)):
        ws = _scales(m)[0]
        gf = g.reshape(n * o, -1)
        return matmul_nt(gf if ws == 1.0 else gf * ws, m.weight.T).reshape(n, o, -1)
    if isinstance(m, (nn.Conv2d, knn.Conv2d)):
        ks, stride, padding, dilation = _conv_geometry(m)
        ws = _scales(m)[0]
        padded = list(inp.shape[2:])
        if isinstance(m, knn.Conv2d):
            left, right, top, bottom = m.pads(padded[0], padded[1])
            padded = [padded[0] + top + bottom, padded[1] + left + right]
        extra = tuple(padded[i] - ((g.shape[3 + i] - 1) * stride[i] - 2 * padding[i]
                                   + dilation[i] * (ks[i] - 1) + 1) for i in range(2))
        gf = g.reshape(n * o, *g.shape[2:])
        if gf.dtype == torch.float32 and gf.device.type == "cpu":
            # channels-last takes oneDNN's transposed convolution instead of the NCHW fallback on CPU
            gf = gf.contiguous(memory_format=torch.channels_last)
        w = m.weight.detach()  # a Parameter takes a different oneDNN path here even under no_grad
        gi = F.conv_transpose2d(gf, w if ws == 1.0 else w * ws,
                                stride=stride, padding=padding, output_padding=extra, dilation=dilation)
        if isinstance(m, knn.Conv2d) and tuple(padded) != tuple(inp.shape[2:]):  # through the explicit padding
            with torch.enable_grad():
                z = gi.new_zeros((n * o, *inp.shape[1:]), requires_grad=True)
                (gi,) = torch.autograd.grad(m._pad(z), z, gi)
        return gi.reshape(n, o, *gi.shape[1:])
    if isinstance(m, knn.GlobalAvgPool):
        spatial = inp.shape[2:]
        p = 1
        for s in spatial:
            p *= s
        return (g / p).reshape(n, o, -1, *([1] * len(spatial))).expand(n, o, *inp.shape[1:])
    return g.reshape(n, o, *inp.shape[1:])  # Flatten


def _batched_nt(a: Tensor, b: Tensor) -> Tensor:
    """``a[i] @ b[i].T`` for ``(B, M, K)`` and ``(B, N, K)`` (one oneDNN product per item for large float32
    items on CPU, ``bmm`` otherwise)."""
    big = a.shape[1] * a.shape[2] * b.shape[1] >= 1_000_000  # per-item calls pay off only for large items
    if big and a.dtype == torch.float32 and a.device.type == "cpu" and onednn.available():
        out = a.new_empty(a.shape[0], a.shape[1], b.shape[1])
        for i in range(a.shape[0]):
            out[i] = matmul_nt(a[i], b[i])
        return out
    return torch.bmm(a, b.transpose(1, 2))


def _channels_last(g: Tensor) -> bool:
    """``g`` is ``(N, O, C, H, W)`` laid out as ``(N, O, H, W, C)`` (after a channels-last transposed conv)."""
    return g.dim() == 5 and g.shape[2] > 1 and not g.is_contiguous() and g.permute(0, 1, 3, 4, 2).is_contiguous()


def _unfold(x: Tensor, ks: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
            dilation: tuple[int, int]) -> Tensor:
    """``F.unfold`` (``(N, C·kh·kw, P)`` patches); undilated kernels use strided views and one copy instead of
    ``im2col``'s per-sample loop."""
    if dilation != (1, 1):
        return F.unfold(x, ks, dilation=dilation, padding=padding, stride=stride)
    if padding != (0, 0):
        x = F.pad(x, (padding[1], padding[1], padding[0], padding[0]))
    v = x.unfold(2, ks[0], stride[0]).unfold(3, ks[1], stride[1])  # (N, C, Ho, Wo, kh, kw)
    return v.permute(0, 1, 4, 5, 2, 3).reshape(x.shape[0], -1, v.shape[2] * v.shape[3])


def _cached(cache: dict[Any, Tensor] | None, key: Any, make: Callable[[], Tensor]) -> Tensor:
    """``make()``, kept in ``cache`` under ``key`` for later calls when a cache is given."""
    if cache is None:
        return make()
    if key not in cache:
        cache[key] = make()
    return cache[key]


def _conv_weight_grads(m: nn.Module, g: Tensor, inp: Tensor, cache: dict[Any, Tensor] | None = None) -> list[Tensor]:
    """Per-sample, per-logit weight and bias gradients of a convolution, each ``(N, O, F)``; ``cache`` keeps the
    unfolded input patches for later calls on the same input (other logits)."""
    n, o, cout = g.shape[:3]
    ks, stride, padding, dilation = _conv_geometry(m)
    ws, bs = _scales(m)

    def patches(x: Tensor) -> Tensor:
        def make() -> Tensor:
            return _unfold(m._pad(x) if isinstance(m, knn.Conv2d) else x, ks, stride, padding, dilation)
        return _cached(cache, ("patches", id(m)), make)
    parts = []
    if _channels_last(g):  # (N, O, C, H, W) stored as (N, O, H, W, C): no transposing copy
        gp = g.permute(0, 1, 3, 4, 2).reshape(n, o, -1, cout)  # (N, O, P, C_out), a view
        if _trainable(m.weight):
            u = patches(inp)  # (N, C_in·k², P)
            # one batched (C_in·k², P) @ (P, C_out) product per logit; features ordered (k, c_out)
            gws = [torch.bmm(u, gp[:, j]) for j in range(o)]
            gw = (gws[0].unsqueeze(1) if o == 1 else torch.stack(gws, 1)).reshape(n, o, -1)
            parts.append(gw if ws == 1.0 else gw * ws)
        if _trainable(m.bias):
            parts.append(gp.sum(2) * bs)
        return parts
    gf = g.reshape(n, o * cout, -1)  # (N, O·C_out, P)
    if _trainable(m.weight):
        gw = _batched_nt(gf, patches(inp)).reshape(n, o, -1)
        parts.append(gw if ws == 1.0 else gw * ws)
    if _trainable(m.bias):
        parts.append(gf.sum(-1).reshape(n, o, cout) * bs)
    return parts


def logit_chunks(layers: list[nn.Module], x: Tensor, out_dim: int, budget_bytes: int = 8 << 20) -> list[slice]:
    """Output logits split so that one chunk's largest cotangent (``N × chunk × widest activation``) stays within
    ``budget_bytes``: traced kernels sum over logits, so they are accumulated chunk by chunk and the big
    per-logit temporaries are reused instead of allocated (and page-faulted in) at full size."""
    widest = x[0].numel()
    with torch.no_grad():
        h = x[:1]
        for m in layers:
            h = m(h)
            widest = max(widest, h.numel())
    size = max(1, budget_bytes // (x.shape[0] * widest * x.element_size()))
    return [slice(i, min(i + size, out_dim)) for i in range(0, out_dim, size)]


def features(layers: list[nn.Module], x: Tensor, logits: slice | None = None,
             forward: tuple[list[Tensor | None], Tensor] | None = None,
             cache: dict[Any, Tensor] | None = None) -> LayerwiseFeatures:
    """Cotangents and inputs of every weight layer for the inputs ``x`` (one batched backward pass), for all
    output logits or the ``logits`` slice; ``forward`` reuses a :func:`forward_saving` result for ``x`` and
    ``cache`` (a dict kept by the caller for ``x``) the input-only tensors of earlier calls (unfolded patches,
    re-laid-out derivatives) when the logits are processed in chunks."""
    with torch.no_grad():
        saved, out = forward if forward is not None else forward_saving(layers, x)
        n = x.shape[0]
        eye = torch.eye(out[0].numel(), dtype=out.dtype, device=out.device)
        if logits is not None:
            eye = eye[logits]
        out_dim = eye.shape[0]
        g = eye.reshape(1, out_dim, *out.shape[1:]).expand(n, out_dim, *out.shape[1:])
        dense: list[_Dense] = []
        explicit: list[Tensor] = []
        for i in range(len(layers) - 1, -1, -1):
            m, s = layers[i], saved[i]
            assert s is not None
            if isinstance(m, _ELEMENTWISE):
                if _channels_last(g) and s.dim() == 4:
                    # g is a fresh transposed-convolution output (nothing else holds it): scale it in place, in
                    # its own layout
                    s_cl = _cached(cache, ("channels_last", i),
                                   functools.partial(s.contiguous, memory_format=torch.channels_last))
                    g.mul_(s_cl.unsqueeze(1))
                else:
                    g = g * s.unsqueeze(1)
                continue
            if isinstance(m, (nn.Linear, knn.Dense)):
                ws, bs = _scales(m)
                if _trainable(m.weight) or _trainable(m.bias):
                        dense.append(_Dense(g, s, ws * ws if _trainable(m.weight) else 0.0,
                                        bs * bs if _trainable(m.bias) else 0.0))
            elif isinstance(m, (nn.Conv2d, knn.Conv2d)) and (_trainable(m.weight) or _trainable(m.bias)):
                explicit.extend(_conv_weight_grads(m, g, s, cache))
            if i > 0 and any(_trainable(p) for layer in layers[:i] for p in layer.parameters()):
                g = input_grad(m, g, s)
            elif i > 0:
                break  # nothing trainable below this layer
    return LayerwiseFeatures(n, out_dim, dense, explicit)


# --------------------------------------------------------------------------------------- contraction
def _pairs(a: Tensor, b: Tensor, n1: int, n2: int, o: int, trace: bool) -> Tensor:
    """``Σ_f a[n, o, f] b[m, o', f]``: ``(N1, N2)`` summed over ``o = o'`` or ``(N1, N2, O, O)``."""
    if trace:
        return matmul_nt(a.reshape(n1, -1), b.reshape(n2, -1))
    return matmul_nt(a.reshape(n1 * o, -1), b.reshape(n2 * o, -1)).reshape(n1, o, n2, o).permute(0, 2, 1, 3)


def contract(a: LayerwiseFeatures, b: LayerwiseFeatures, trace: str | None) -> Tensor:
    """``Σ_params J(a) J(b)ᵀ``: ``(N1, N2)`` (``trace`` ``"mean"``/``"sum"``) or ``(N1, N2, O, O)``."""
    n1, n2, o = a.n, b.n, a.out_dim
    traced = trace is not None
    with torch.no_grad():
        k: Tensor | None = None
        for da, db in zip(a.dense, b.dense, strict=True):
            gg = _pairs(da.grads, db.grads, n1, n2, o, traced)
            coef = matmul_nt(da.inputs.reshape(n1, -1), db.inputs.reshape(n2, -1)) * da.weight_scale2 \
                if da.weight_scale2 else None
            if coef is None:
                term = gg * da.bias_scale2
            else:
                coef = coef + da.bias_scale2 if da.bias_scale2 else coef
                term = gg * (coef if traced else coef[:, :, None, None])
            k = term if k is None else k + term
        for fa, fb in zip(a.explicit, b.explicit, strict=True):
            term = _pairs(fa, fb, n1, n2, o, traced)
            k = term if k is None else k + term
    assert k is not None
    return k / o if trace == "mean" else k
