"""MixConv: mixed depthwise convolutional kernels (Tan & Le, "MixConv", arXiv 1907.09595).

The channels are split into groups; group ``t`` gets a depthwise conv with kernel ``k_t`` and the
results are concatenated in group order. This equals ONE depthwise conv whose smaller kernels are
zero-padded and centred to the largest kernel, which is what the fast paths exploit:

* ``"split"`` — split → one conv per group → concat (the reference formulation, timm/TF layout);
* ``"padded"`` — one ``F.conv2d`` with the zero-padded kernel, built differentiably from the
  per-group weights on every call (so gradients land on the per-group parameters);
* ``"padded_cl"`` — the same conv on a channels-last input (oneDNN's fast depthwise path on CPU);
* ``"depthwise"`` — ``kernelkit.conv.depthwise_conv2d`` on the padded kernel, when that module exists;
* ``"grouped"`` — for the grouped pointwise form (``depthwise=False``) with equal splits and one
  kernel size: a single conv with ``groups=g``.

``impl="auto"`` (the default) times the available paths once per (layer configuration, input shape,
dtype, device, grad mode) on first use and caches the fastest; the split path is always a candidate,
so the choice is never slower than split-concat as measured. Parameters are stored exactly as timm's
``MixedConv2d`` stores them (child modules ``"0"``, ``"1"``, ... each with a ``weight``), so timm
``mixnet_*`` state dicts load without renaming.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SplitMode = Literal["equal", "exponential"]
Impl = Literal["auto", "split", "padded", "padded_cl", "depthwise", "grouped"]
IMPLS: tuple[str, ...] = ("auto", "split", "padded", "padded_cl", "depthwise", "grouped")

__all__ = ["MixConv2d", "split_channels", "pad_kernel", "embed_kernel", "use_impl", "clear_impl_cache",
           "impl_cache"]


def split_channels(total: int, groups: int, mode: SplitMode = "equal") -> list[int]:
    """Partition ``total`` channels into ``groups`` non-empty groups, in group order.

    * ``"equal"``: each group gets ``total // groups``; the whole remainder goes to the FIRST group
      (the rule of the TF and timm reference code): ``split_channels(10, 3) == [4, 3, 3]``.
    * ``"exponential"``: group ``i`` (1-based) gets ``total // 2**i`` for ``i < groups`` and the last
      group takes the rest (reproduces the paper's 32 → (16, 8, 4, 4) example).

    Raises ``ValueError`` when an argument is invalid or a group would be empty.
    """
    if isinstance(total, bool) or not isinstance(total, int) or total < 1:
        raise ValueError(f"split_channels: total must be a positive int, got {total!r}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"split_channels: groups must be a positive int, got {groups!r}")
    if groups > total:
        raise ValueError(f"split_channels: cannot split {total} channels into {groups} non-empty groups")
    if mode == "equal":
        sizes = [total // groups] * groups
        sizes[0] += total - sum(sizes)
    elif mode == "exponential":
        sizes = [total // 2 ** (i + 1) for i in range(groups - 1)]
        sizes.append(total - sum(sizes))
    else:
        raise ValueError(f"split_channels: mode must be 'equal' or 'exponential', got {mode!r}")
    if min(sizes) < 1:
        raise ValueError(f"split_channels: the {mode} split of {total} channels into {groups} groups "
                         f"leaves an empty group ({sizes})")
    return sizes


def pad_kernel(weight: Tensor, size: int) -> Tensor:
    """Zero-pad a ``(..., k, k)`` kernel (odd ``k``) to ``(..., size, size)``, centred. Differentiable."""
    k = weight.shape[-1]
    if k == size:
        return weight
    if (size - k) % 2 or size < k:
        raise ValueError(f"cannot centre a {k}x{k} kernel in {size}x{size}")
    p = (size - k) // 2
    return F.pad(weight, (p, p, p, p))


def embed_kernel(weight: Tensor, dilation: int, size: int) -> Tensor:
    """The dense ``size x size`` kernel equal to ``weight`` applied with ``dilation``, centred.

    A ``k x k`` kernel at dilation ``d`` touches a ``d(k-1)+1`` window; its taps go on a stride-``d``
    grid, the rest are zeros. Built with differentiable ops.
    """
    if dilation == 1:
        return pad_kernel(weight, size)
    k = weight.shape[-1]
    span = dilation * (k - 1) + 1
    dense = weight.new_zeros(*weight.shape[:-2], span, span)
    dense[..., ::dilation, ::dilation] = weight  # autograd routes the gradient back to ``weight``
    return pad_kernel(dense, size)


def _parse_kernel_sizes(kernel_sizes: int | Sequence[int]) -> tuple[int, ...]:
    ks = (kernel_sizes,) if isinstance(kernel_sizes, int) else tuple(kernel_sizes)
    if not ks:
        raise ValueError("MixConv2d: kernel_sizes is empty; give at least one odd kernel size")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(f"MixConv2d: kernel sizes must be odd positive ints (centred 'same' padding), got {k!r} "
                             f"in {ks}")
    return ks


# ---- path choice --------------------------------------------------------------------------------

_CACHE: dict[tuple, str] = {}
_LOCK = threading.Lock()
_FORCED = threading.local()


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Force every ``MixConv2d`` whose ``impl`` is ``"auto"`` to use ``impl`` inside the block.

    E.g. ``with use_impl("split"): count_macs(model, ...)`` counts the nominal arithmetic (the padded
    paths multiply the zero taps too). Paths a layer does not have fall back to ``"split"``.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown MixConv impl {impl!r}; expected one of {IMPLS}")
    old = getattr(_FORCED, "impl", None)
    _FORCED.impl = impl
    try:
        yield
    finally:
        _FORCED.impl = old


def clear_impl_cache() -> None:
    """Forget the measured path choices (they are re-measured on next use)."""
    with _LOCK:
        _CACHE.clear()


def impl_cache() -> dict[tuple, str]:
    """A copy of the measured choices: key (layer config, shape, dtype, device, grad) → path."""
    with _LOCK:
        return dict(_CACHE)


def _depthwise_fn() -> Callable[..., Tensor] | None:
    try:
        return importlib.import_module("kernelkit.conv.depthwise").depthwise_conv2d  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def _dispatch_mode_active() -> bool:
    """True under a ``TorchDispatchMode`` (e.g. ``FlopCounterMode``), where timing means nothing."""
    try:
        return bool(torch._C._len_torch_dispatch_stack())
    except AttributeError:  # pragma: no cover - private API moved
        return False


SWITCH_MARGIN = 0.95  # another path must beat split-concat by 5% in the measurement to be chosen
TINY_NUMEL = 8192  # below this many input elements: no timing, one padded conv (per-call overhead dominates)


def _time_paths(fns: dict[str, Callable[[], object]], budget_s: float = 0.12) -> dict[str, float]:
    """Best-of-rounds seconds per call for each path, rounds interleaved so load noise hits all alike."""
    for fn in fns.values():  # warm-up: allocations, oneDNN primitive creation
        fn()
    start = time.perf_counter()
    for fn in fns.values():
        fn()
    once = max(time.perf_counter() - start, 1e-6)
    rounds = 5
    reps = max(1, min(20, int(budget_s / rounds / once)))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / reps)
    return best


# ---- the module ---------------------------------------------------------------------------------


class MixConv2d(nn.Module):
    """Mixed depthwise conv (``depthwise=True``) or grouped pointwise conv (``depthwise=False``).

    Args:
        in_channels: input channels.
        out_channels: output channels (default ``in_channels``; must equal it when depthwise).
        kernel_sizes: one odd kernel size per group, e.g. ``(3, 5, 7)``; an int means one group.
        stride: the same stride for every group.
        dilated: replace a ``k x k`` group (``k > 3``, stride 1 only) by a 3x3 kernel at dilation
            ``(k - 1) // 2``, as the TF reference's ``dilated`` flag does.
        split: ``"equal"`` (remainder to the first group) or ``"exponential"``; see :func:`split_channels`.
        depthwise: depthwise groups (``groups = channels`` per group) or dense per-group convs.
        bias: a bias per output channel.
        impl: ``"auto"`` (measure and pick), or force one path (see the module docstring).

    Parameters live in child convs ``"0"``, ``"1"``, ... (timm's ``MixedConv2d`` layout).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None,
                 kernel_sizes: int | Sequence[int] = (3, 5, 7), stride: int = 1, dilated: bool = False,
                 split: SplitMode = "equal", depthwise: bool = True, bias: bool = False, impl: Impl = "auto"):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MixConv2d: {name} must be a positive int, got {value!r}")
        ks = _parse_kernel_sizes(kernel_sizes)
        if depthwise and out_channels != in_channels:
            raise ValueError(f"MixConv2d: a depthwise MixConv keeps the channel count (channel multiplier 1); "
                             f"got in_channels={in_channels}, out_channels={out_channels}")
        if len(ks) > min(in_channels, out_channels):
            raise ValueError(f"MixConv2d: {len(ks)} kernel groups {ks} need at least {len(ks)} channels, "
                             f"got in={in_channels}, out={out_channels}")
        if impl not in IMPLS:
            raise ValueError(f"MixConv2d: unknown impl {impl!r}; expected one of {IMPLS}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_sizes, self.stride, self.dilated, self.split = ks, stride, dilated, split
        self.depthwise, self.impl = depthwise, impl
        self.in_splits = split_channels(in_channels, len(ks), split)
        self.out_splits = split_channels(out_channels, len(ks), split)
        self.dilations = tuple((k - 1) // 2 if dilated and stride == 1 and k > 3 else 1 for k in ks)
        for i, (k, d, cin, cout) in enumerate(zip(ks, self.dilations, self.in_splits, self.out_splits, strict=True)):
            kk = 3 if d > 1 else k
            self.add_module(str(i), nn.Conv2d(cin, cout, kk, stride=stride, padding=d * (kk - 1) // 2, dilation=d,
                                              groups=cin if depthwise else 1, bias=bias))
        self.max_kernel = max(ks)
        self._has_bias = bias

    # -- helpers --
    def convs(self) -> list[nn.Conv2d]:
        return [self._modules[str(i)] for i in range(len(self.kernel_sizes))]  # type: ignore[misc]

    def padded_weight(self) -> Tensor:
        """The single ``(C, 1, K, K)`` depthwise kernel equal to this MixConv (differentiable)."""
        if not self.depthwise:
            raise ValueError("padded_weight: only a depthwise MixConv is one depthwise conv")
        return torch.cat([embed_kernel(c.weight, d, self.max_kernel)
                          for c, d in zip(self.convs(), self.dilations, strict=True)], 0)

    def padded_bias(self) -> Tensor | None:
        return torch.cat([c.bias for c in self.convs()]) if self._has_bias else None  # type: ignore[misc]

    def available_impls(self) -> list[str]:
        """Paths this layer can run (``"split"`` always first)."""
        if not self.depthwise:
            uniform = len({*self.in_splits}) == len({*self.out_splits}) == len({*self.kernel_sizes}) == 1
            return ["split", "grouped"] if uniform and len(self.kernel_sizes) > 1 else ["split"]
        if len(self.kernel_sizes) == 1 and not self.dilated:
            return ["split", "padded_cl"]
        paths = ["split", "padded", "padded_cl"]
        if _depthwise_fn() is not None:
            paths.append("depthwise")
        return paths

    # -- the paths --
    def forward_split(self, x: Tensor) -> Tensor:
        if len(self.kernel_sizes) == 1:
            return self.convs()[0](x)
        xs = torch.split(x, self.in_splits, dim=1)
        return torch.cat([conv(xi) for conv, xi in zip(self.convs(), xs, strict=True)], dim=1)

    def forward_padded(self, x: Tensor, channels_last: bool = False) -> Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, self.padded_weight(), self.padded_bias(), self.stride, (self.max_kernel - 1) // 2,
                        1, self.in_channels)

    def forward_depthwise(self, x: Tensor) -> Tensor:
        fn = _depthwise_fn()
        if fn is None:
            raise RuntimeError("MixConv2d impl 'depthwise' needs kernelkit.conv.depthwise, which is not available")
        return fn(x, self.padded_weight(), self.padded_bias(), stride=self.stride, padding=(self.max_kernel - 1) // 2)

    def forward_grouped(self, x: Tensor) -> Tensor:
        convs = self.convs()
        weight = torch.cat([c.weight for c in convs], 0)
        bias = self.padded_bias()
        k = self.kernel_sizes[0]
        return F.conv2d(x, weight, bias, self.stride, (k - 1) // 2, 1, len(convs))

    def run(self, x: Tensor, impl: str) -> Tensor:
        """Run one named path (for tests and benchmarks)."""
        if impl == "split":
            return self.forward_split(x)
        if impl == "padded":
            return self.forward_padded(x)
        if impl == "padded_cl":
            if len(self.kernel_sizes) == 1 and self.depthwise:
                return self.convs()[0](x.contiguous(memory_format=torch.channels_last))
            return self.forward_padded(x, channels_last=True)
        if impl == "depthwise":
            return self.forward_depthwise(x)
        if impl == "grouped":
            return self.forward_grouped(x)
        raise ValueError(f"unknown MixConv impl {impl!r}; expected one of {IMPLS[1:]}")

    # -- choice --
    def _config_key(self) -> tuple:
        return (tuple(self.in_splits), tuple(self.out_splits), self.kernel_sizes, self.dilations, self.stride,
                self.depthwise, self._has_bias)

    def _needs_grad(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))

    def choose_impl(self, x: Tensor) -> str:
        """The path for this input: forced, cached, or measured now (then cached)."""
        forced = getattr(_FORCED, "impl", None)
        paths = self.available_impls()
        wanted = self.impl if self.impl != "auto" else forced
        if wanted not in (None, "auto"):
            if wanted not in paths:
                if self.impl != "auto":
                    raise ValueError(f"MixConv2d impl {wanted!r} is not available for this layer; available: {paths}")
                return "split"
            return wanted
        if len(paths) == 1 or _dispatch_mode_active() or torch.jit.is_scripting():
            return "split"
        if torch.compiler.is_compiling():
            return paths[1]
        if x.numel() < TINY_NUMEL and "padded" in paths:
            return "padded"
        grad = self._needs_grad(x)
        key = (self._config_key(), tuple(x.shape), x.dtype, x.device.type, x.is_contiguous(), grad)
        with _LOCK:
            hit = _CACHE.get(key)
        if hit is None:
            hit = self._measure(x, paths, grad)
            with _LOCK:
                _CACHE[key] = hit
        return hit

    def _measure(self, x: Tensor, paths: list[str], grad: bool) -> str:
        probe = x.detach().clone().requires_grad_(grad and x.requires_grad)
        params = [p for p in self.parameters() if p.requires_grad]

        def make(impl: str) -> Callable[[], object]:
            if not grad:
                def fwd() -> object:
                    with torch.no_grad():
                        return self.run(probe, impl)
                return fwd

            def fwd_bwd() -> object:
                out = self.run(probe, impl)
                inputs = ([probe] if probe.requires_grad else []) + params
                return torch.autograd.grad(out, inputs, torch.ones_like(out))
            return fwd_bwd

        times = _time_paths({p: make(p) for p in paths})
        best = min(times, key=times.__getitem__)
        # keep split-concat unless another path is clearly faster: a noisy near-tie must not make it slower
        return best if times[best] < SWITCH_MARGIN * times["split"] else "split"

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MixConv2d expects (N, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        return self.run(x, self.choose_impl(x))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_sizes={self.kernel_sizes}, splits={self.in_splits}"
                f"{'' if self.out_splits == self.in_splits else f'->{self.out_splits}'}, stride={self.stride}, "
                f"depthwise={self.depthwise}{', dilated=True' if self.dilated else ''}, impl={self.impl!r}")
