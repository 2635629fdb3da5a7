"""oneDNN's fused float32 CPU linear (``torch.ops.mkldnn._linear_pointwise``), behind one availability check.

On some CPUs ``F.linear`` / ``torch.mm`` run at about half oneDNN's speed. The op is private to torch, so it
is probed once per process (present, runs, and computes ``x @ w.T + b`` with each post-op this module
offers); callers fall back to plain ops when :func:`available` is false.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["available", "linear"]


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
