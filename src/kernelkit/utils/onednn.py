"""oneDNN's fused float32 CPU linear (``torch.ops.mkldnn._linear_pointwise``), behind one availability check.

On some CPUs ``F.linear`` / ``torch.mm`` go to a slower GEMM than oneDNN's (``kernelkit bench`` measures it
where it matters, e.g. the M4LE inference benchmark). The op is private to torch, so it
is probed once per process (present, runs, and computes ``x @ w.T + b`` with each post-op this module
offers); callers fall back to plain ops when :func:`available` is false.
"""

from __future__ import annotations

import functools
import types

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MIN_MACS", "accelerate_linears", "available", "linear"]

#: Products smaller than this many multiply-adds stay on ``F.linear``, where oneDNN's per-call overhead outweighs
#: its faster GEMM.
MIN_MACS = 1 << 19


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, post: str = "none",
           other: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` followed by ``post``: ``"none"``, ``"gelu"`` (exact erf GELU) or ``"add"`` of ``other``.

    Only call when :func:`available` is true; inputs are 2-D float32 CPU tensors.
    """
    if post == "add":
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, "add")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, post, [], "none" if post == "gelu" else "")


@functools.cache
def available() -> bool:
    """The op exists, runs and agrees with ``F.linear`` for every post-op above (checked once)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    try:
        g = torch.Generator().manual_seed(0)
        a, w, b, other = (torch.randn(s, generator=g) for s in ((37, 29), (23, 29), (23,), (37, 23)))
        checks = ((linear(a, w), a @ w.T),
                  (linear(a, w, b, "gelu"), F.gelu(F.linear(a, w, b))),
                  (linear(a, w, b, "add", other), F.linear(a, w, b) + other))
        return all(bool(torch.allclose(got, want, rtol=1e-5, atol=1e-5)) for got, want in checks)
    except (RuntimeError, NotImplementedError, AttributeError):  # op missing in this build, or unsupported CPU
        return False


def _routed_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // self.in_features
    if (rows * self.in_features * self.out_features < MIN_MACS or x.dtype != torch.float32 or x.device.type != "cpu"
            or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))):
        return F.linear(x, self.weight, self.bias)
    bias = None if self.bias is None else self.bias.detach()
    y = linear(x.reshape(rows, self.in_features).contiguous(), self.weight.detach(), bias)
    return y.reshape(*x.shape[:-1], self.out_features)


def accelerate_linears(model: nn.Module) -> int:
    """Route the ``nn.Linear`` layers of a float32 CPU model through oneDNN for inference-size products of at
    least :data:`MIN_MACS` multiply-adds (autograd calls and small products keep ``F.linear``). Results equal
    ``F.linear``'s to float32 rounding. Returns how many layers were routed (0 when oneDNN is unavailable)."""
    if not available():
        return 0
    routed = 0
    for m in model.modules():
        if type(m) is nn.Linear and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu":
            m.forward = types.MethodType(_routed_forward, m)  # type: ignore[method-assign]
            routed += 1
    return routed
