"""Infinite-width NNGP and NTK of a network built from :mod:`kernelkit.ntk.nn` layers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kernelkit.ntk import core
from kernelkit.ntk.nn import layer_kernel

__all__ = ["Kernels", "analytic", "check_inputs"]

GETS = ("nngp", "ntk")


@dataclass
class Kernels:
    """Kernel matrices ``(N1, N2)`` (``None`` when not requested)."""

    nngp: Tensor | None = None
    ntk: Tensor | None = None

    def get(self, name: str) -> Tensor:
        value = getattr(self, name)
        if value is None:
            raise KeyError(f"kernel {name!r} was not computed")
        return value


def check_inputs(x1: Tensor, x2: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Validate kernel inputs: tensors with a batch axis, finite values, matching feature shapes."""
    out: list[Tensor | None] = []
    for name, x in (("x1", x1), ("x2", x2)):
        if x is None:
            out.append(None)
            continue
        if not isinstance(x, Tensor):
            x = torch.as_tensor(x)
        if x.dim() < 2:
            raise ValueError(f"{name} must have a batch axis and features, got shape {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise ValueError(f"{name} is empty")
        if x.is_floating_point() and not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{name} contains {bad} NaN/inf value(s)")
        out.append(x)
    a, b = out
    assert a is not None
    if b is not None and a.shape[1:] != b.shape[1:]:
        raise ValueError(f"x1 and x2 have mismatched feature shapes {tuple(a.shape[1:])} vs {tuple(b.shape[1:])}")
    return a, b


def _blocks(n: int, size: int | None) -> list[slice]:
    if size is None or size >= n:
        return [slice(0, n)]
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _auto_block(x1: Tensor, n2: int) -> int:
    """Default block size: a block's position-pair tensor holds about 1/64 of the whole kernel's entries, kept
    between 2¹⁷ and 2²⁰ (memory bounded for any N, a small fraction of it for small kernels, and blocks large
    enough that the self-covariances recomputed per block stay a small part of the work); the blocks are then
    evened out (``N = 16`` in blocks of 4, not 5, 5, 5, 1)."""
    n1, positions = x1.shape[0], math.prod(x1.shape[2:])
    entries = min(max(n1 * n2 * positions**2 // 64, 2**17), 2**20)
    size = max(1, int(math.sqrt(entries) / positions))
    return -(-n1 // -(-n1 // size))


def _mirror(block: Tensor) -> Tensor:
    """The block ``(c, r)`` of a symmetric kernel from its block ``(r, c)``: swap the two sample axes and the two
    position sets (``K(x', x)_{p'p} = K(x, x')_{pp'}``)."""
    d = (block.dim() - 2) // 2
    return block.permute(1, 0, *range(2 + d, 2 + 2 * d), *range(2, 2 + d))


def analytic(model: nn.Module, x1: Tensor, x2: Tensor | None = None, get: str | Sequence[str] = GETS,
             batch_size: int | None = None, dtype: torch.dtype = torch.float64) -> Kernels:
    """Infinite-width kernels of ``model`` between ``x1`` and ``x2`` (default ``x2 = x1``).

    Args:
        model: a :mod:`kernelkit.ntk.nn` network (plain ``nn.Sequential`` of such layers and of torch
            activations also works); any other layer raises an error naming it.
        x1, x2: ``(N, features)`` or ``(N, C, H, W)`` inputs.
        get: ``"nngp"``, ``"ntk"`` or both.
        batch_size: compute ``batch_size × batch_size`` blocks to bound memory (results are identical); by
            default a block holds about 1/64 of the kernel's position pairs, at least 2¹⁷ and at most 2²⁰
            (362 to 1024 samples for fully connected inputs). When ``x2``
            is ``x1`` only the blocks on and above the diagonal are computed; the others are their mirror
            images.
        dtype: computation dtype (float64 by default).

    Returns:
        :class:`Kernels` with ``.nngp`` and ``.ntk`` of shape ``(N1, N2)`` (plus spatial axes if the model
        ends without a readout).
    """
    gets = (get,) if isinstance(get, str) else tuple(get)
    for g in gets:
        if g not in GETS:
            raise ValueError(f"get must be among {GETS}, got {g!r}")
    x1, x2 = check_inputs(x1, x2)
    x1 = x1.to(dtype)
    x2_ = x1 if x2 is None else x2.to(dtype)
    same = x2 is None or (x2_.shape == x1.shape and torch.equal(x2_, x1))  # neural-tangents' x1_is_x2
    want_ntk = "ntk" in gets
    if batch_size is None:
        batch_size = _auto_block(x1, x2_.shape[0])
    rows, cols = _blocks(x1.shape[0], batch_size), _blocks(x2_.shape[0], batch_size)
    nngp: Tensor | None = None
    ntk: Tensor | None = None
    allocated = False
    with torch.no_grad():
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                if same and j < i:  # the mirror image of block (j, i), filled when that block was computed
                    continue
                k = layer_kernel(model, core.input_kernel(x1[r], x2_[c], compute_ntk=want_ntk,
                                                          same_inputs=same and r == c))
                if not allocated:
                    allocated = True
                    shape = (x1.shape[0], x2_.shape[0], *k.nngp.shape[2:])
                    nngp = k.nngp.new_empty(shape) if "nngp" in gets else None
                    ntk = k.nngp.new_empty(shape) if want_ntk else None
                for out, block in ((nngp, k.nngp), (ntk, k.ntk)):
                    if out is None or block is None:
                        continue
                    out[r, c] = block
                    if same and j > i:
                        out[c, r] = _mirror(block)
    return Kernels(nngp=nngp, ntk=ntk)
