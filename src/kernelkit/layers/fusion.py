"""Structural re-parameterization algebra: pure tensor functions, one copy each.

Every function takes and returns plain tensors (no modules, no I/O), so modules, tests and
training-time penalties can share them. A conv kernel has shape ``(out, in/groups, kh, kw)``; a
linear weight ``(out, in)``; biases ``(out,)``. Equations follow the UniRepLKNet paper (eqs. 1/6) and
the RepVGG/DBB transforms.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F


def fold_bn(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    bn_weight: torch.Tensor | None,
    bn_bias: torch.Tensor | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm that follows a conv/linear layer into that layer.

    ``W' = W·γ/√(σ²+ε)`` per output channel (dim 0) and ``b' = β + (b−μ)·γ/√(σ²+ε)``.
    Works for conv kernels and linear weights alike. ``bias=None`` means no bias (zero).
    """
    std = (running_var + eps).sqrt()
    gamma = torch.ones_like(std) if bn_weight is None else bn_weight
    beta = torch.zeros_like(std) if bn_bias is None else bn_bias
    scale = gamma / std
    b = torch.zeros_like(running_mean) if bias is None else bias
    w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    return w, beta + (b - running_mean) * scale


def dilated_to_dense(kernel: torch.Tensor, dilation: int) -> torch.Tensor:
    """The non-dilated kernel of size ``(k−1)·r+1`` equal to ``kernel`` applied with dilation ``r``.

    ``W'[i·r, j·r] = W[i, j]``, zeros elsewhere (paper eq. 1; the same as
    ``conv_transpose2d(W, ones(1,1,1,1), stride=r)`` applied per input-channel slice).
    """
    if dilation < 1:
        raise ValueError(f"dilation must be >= 1, got {dilation}")
    if dilation == 1:
        return kernel
    out, cin, kh, kw = kernel.shape
    dense = kernel.new_zeros(out, cin, (kh - 1) * dilation + 1, (kw - 1) * dilation + 1)
    dense[:, :, ::dilation, ::dilation] = kernel
    return dense


def pad_kernel(kernel: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a square kernel symmetrically to ``size×size`` (same centre, same 'same'-padded output)."""
    k = kernel.shape[-1]
    if kernel.shape[-2] != k:
        raise ValueError(f"pad_kernel expects a square kernel, got {tuple(kernel.shape[-2:])}")
    if size < k:
        raise ValueError(f"cannot pad a {k}×{k} kernel to the smaller size {size}")
    if (size - k) % 2:
        raise ValueError(f"cannot centre a {k}×{k} kernel in {size}×{size} (sizes must have the same parity)")
    p = (size - k) // 2
    return F.pad(kernel, [p, p, p, p]) if p else kernel


def add_branches(branches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum parallel same-padded conv branches ``(kernel, bias)`` into one kernel of the largest size."""
    items = list(branches)
    if not items:
        raise ValueError("add_branches needs at least one branch")
    size = max(k.shape[-1] for k, _ in items)
    kernel = sum(pad_kernel(k, size) for k, _ in items)
    bias = sum(b for _, b in items)
    return kernel, bias  # type: ignore[return-value]


def fold_input_bias(weight: torch.Tensor, bias: torch.Tensor | None, input_bias: torch.Tensor) -> torch.Tensor:
    """Bias of a linear layer whose input gets ``+ input_bias`` first: ``b + W·β`` (GRN β folding)."""
    projected = weight @ input_bias.reshape(-1)
    return projected if bias is None else bias + projected


def fold_output_scale(
    weight: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multiply a per-output-channel scale (layer scale γ) into a layer's weight and bias."""
    s = scale.reshape(-1)
    return weight * s.reshape(-1, *([1] * (weight.dim() - 1))), bias * s
