"""MixConv: mixed depthwise convolutional kernels (Tan & Le, "MixConv", arXiv 1907.09595).

The channels are split into groups; group ``t`` gets a depthwise conv with kernel ``k_t`` and the
results are concatenated in group order. This equals ONE depthwise conv whose smaller kernels are
zero-padded and centred to the largest kernel, which is what the fast paths exploit:

* ``"split"`` — split → one conv per group → concat (the reference formulation, timm/TF layout);
* ``"padded"`` — one ``F.conv2d`` with the zero-padded kernel, built differentiably from the
  per-group weights on every call when autograd needs it (so gradients land on the per-group
  parameters), otherwise built once and reused until a weight changes;
* ``"split_cl"`` / ``"padded_cl"`` — the same on a channels-last copy of the input (oneDNN's fast
  depthwise kernels on CPU; torch's NCHW depthwise *backward* is the slow part of its CPU path);
  the output is then channels-last too;
* ``"depthwise"`` — :func:`kernelkit.layers.depthwise.depthwise_conv2d` on the padded kernel;
* ``"grouped"`` — for the grouped pointwise form (``depthwise=False``) with equal splits and one
  kernel size: a single conv with ``groups=g``.

``impl="auto"`` (the default) asks :mod:`kernelkit.tune`: by default a fixed rule (:func:`heuristic_impl`,
no timing, nothing on disk), so results are reproducible; with tuning on (``KERNELKIT_TUNE=1`` or
``with kernelkit.tune.enabled():``) a path measured per (layer configuration, input shape, dtype, device,
memory format, grad mode, threads, torch version) on first use, kept in the tuner's cache; another path
replaces split-concat only when it beats it clearly in the measurement. ``impl="heuristic"`` always uses
the fixed rule; ``with use_impl(...)`` forces a path on every ``"auto"`` layer in a block. Parameters are
stored exactly as timm's ``MixedConv2d`` stores them (child modules ``"0"``, ``"1"``, ... each with a
``weight``), so timm ``mixnet_*`` state dicts load without renaming.

With the PyTorch toolchain every path is plain torch code (``torch.split``/``cat``, ``F.conv2d``, the padded
kernel built with ``F.pad``) or :func:`~kernelkit.layers.depthwise.depthwise_conv2d` (see its module for
compile/export/autocast/CUDA):

* **torch.compile** (``fullgraph=True`` works): ``"auto"`` takes the fixed rule and reads no context
  variable, so ``use_impl`` blocks apply in eager mode only (a layer's own ``impl=`` argument always applies);
  the padded kernel is rebuilt inside the graph instead of cached on the module;
* **torch.export / ONNX:** the same standard graph (split/concat or one padded conv);
* **autocast:** every path is ``F.conv2d``, cast by autocast's rules;
* **FlopCounterMode:** ``"auto"`` takes ``"split"``, the nominal arithmetic of the per-group kernels (a
  forced padded path counts the zero taps it multiplies);
* **CUDA and the meta device:** the same paths on cuDNN / shapes only, nothing CPU-specific.

TensorFlow "SAME" padding (``tf_same=True``, the layout of TF-trained weights such as timm's ``tf_mixnet_*``):
TF pads ``total = max((ceil(i/s) - 1)·s + (k-1)·d + 1 - i, 0)`` with ``total // 2`` before, asymmetric for
stride 2 on even sizes (:func:`tf_same_padding`). At stride 1 an odd kernel gets the symmetric padding of the
ordinary paths. At stride > 1 the input is padded once for the largest kernel span and every path runs its
convs unpadded; a smaller group sees its own TF padding by dropping the extra zero border: with
``r = (ceil(i/s)-1)·s + 1 - i`` (the same for every kernel) TF pads ``(k-1)·d/2 + floor(r/2)`` before and
``(k-1)·d/2 + ceil(r/2)`` after, so two groups' paddings differ by the same amount on both sides — which is
also why the centred zero-padded kernel of the padded paths stays exact. Needs ``(k-1)·d >= s-1`` (no clamp
at 0). :class:`TfSameConv2d` is a plain conv with the same padding.
"""

from __future__ import annotations

import contextlib
import contextvars
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernelkit import tune
from kernelkit.layers.depthwise import DIRECT_MAX_TAPS, depthwise_conv2d
from kernelkit.layers.padding import tf_same_padding

SplitMode = Literal["equal", "exponential"]
Impl = Literal["auto", "heuristic", "split", "split_cl", "padded", "padded_cl", "depthwise", "grouped"]
IMPLS: tuple[str, ...] = ("auto", "heuristic", "split", "split_cl", "padded", "padded_cl", "depthwise", "grouped")
PATHS: tuple[str, ...] = IMPLS[2:]
TUNE_OP = "mixconv"  # the tuner's name for MixConv path choices
TINY_NUMEL = 8192  # below this many input elements nothing is measured (per-call overhead dominates): heuristic

__all__ = ["MixConv2d", "TfSameConv2d", "split_channels", "pad_kernel", "embed_kernel", "use_impl", "heuristic_impl",
           "fresh_choices", "tf_same_padding", "pad_tf_same"]


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


def pad_tf_same(x: Tensor, kernel_size: int, stride: int = 1, dilation: int = 1) -> Tensor:
    """``x`` (N, C, H, W) zero-padded for an unpadded conv to give TensorFlow "SAME" output."""
    top, bottom = tf_same_padding(int(x.shape[-2]), kernel_size, stride, dilation)
    left, right = tf_same_padding(int(x.shape[-1]), kernel_size, stride, dilation)
    return F.pad(x, (left, right, top, bottom)) if top or bottom or left or right else x


def _check_tf_same(kernel_size: int, stride: int, dilation: int, where: str) -> None:
    if kernel_size % 2 == 0 or (kernel_size - 1) * dilation < stride - 1:
        raise ValueError(f"{where}: TF 'SAME' padding is implemented for odd kernels with (k-1)*dilation >= "
                         f"stride-1, got kernel {kernel_size}, stride {stride}, dilation {dilation}")


class TfSameConv2d(nn.Conv2d):
    """``nn.Conv2d`` (square kernel, odd size) with TensorFlow "SAME" padding; parameters as ``nn.Conv2d``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, bias: bool = True):
        _check_tf_same(kernel_size, stride, dilation, "TfSameConv2d")
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(pad_tf_same(x, self.kernel_size[0], self.stride[0], self.dilation[0]))


def _parse_kernel_sizes(kernel_sizes: int | Sequence[int]) -> tuple[int, ...]:
    ks = (kernel_sizes,) if isinstance(kernel_sizes, int) else tuple(kernel_sizes)
    if not ks:
        raise ValueError("MixConv2d: kernel_sizes is empty; give at least one odd kernel size")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(f"MixConv2d: kernel sizes must be odd positive ints (centred 'same' padding), got {k!r} "
                             f"in {ks}")
    return ks


# ---- path choice ----------------------------------------------------------------------------------

_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("kernelkit_mixconv_impl", default=None)


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Force every ``MixConv2d`` whose ``impl`` is ``"auto"`` to use ``impl`` inside the block.

    E.g. ``with use_impl("split"): count_macs(model, ...)`` counts the nominal arithmetic (the padded
    paths multiply the zero taps too). ``use_impl("heuristic")`` picks by the fixed rule even when tuning
    is on. Paths a layer does not have fall back to ``"split"``.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown MixConv impl {impl!r}; expected one of {IMPLS}")
    token = _FORCED.set(impl)
    try:
        yield
    finally:
        _FORCED.reset(token)


@contextlib.contextmanager
def fresh_choices(mode: str = "measure") -> Iterator[Path]:
    """Inside the block, ``"auto"`` choices are made fresh, as on a first run (benchmarks).

    ``mode="measure"``: tuning on with a private, empty cache file (yielded; deleted after the block);
    ``"heuristic"``: tuning off. Nothing outside the block changes.
    """
    if mode not in ("measure", "heuristic"):
        raise ValueError(f"fresh_choices: mode must be 'measure' or 'heuristic', got {mode!r}")
    with tempfile.TemporaryDirectory(prefix="kernelkit-tune-") as tmp, \
            tune.enabled(mode == "measure", cache=Path(tmp) / tune.CACHE_FILE) as path:
        yield path


def _dispatch_mode_active() -> bool:
    """True under a ``TorchDispatchMode`` (e.g. ``FlopCounterMode``)."""
    try:
        return bool(torch._C._len_torch_dispatch_stack())
    except AttributeError:  # pragma: no cover - private API moved
        return False


def _memory_format(x: Tensor) -> str:
    if x.is_contiguous():
        return "nchw"
    return "nhwc" if x.is_contiguous(memory_format=torch.channels_last) else "strided"


def heuristic_impl(paths: Sequence[str], x: Tensor, grad: bool, kernel_sizes: Sequence[int]) -> str:
    """The fixed no-timing rule (from CPU runs of ``kernelkit bench mixconv`` and MixNet-S layers).

    * pointwise groups and single kernels: split-concat (the conv itself);
    * no grad: one zero-padded depthwise conv, except on big NCHW CPU activations (> 8M elements, where
      torch's large-kernel NCHW kernel lost to split-concat);
    * grad on an NCHW CPU input: split-concat on a channels-last copy (torch's NCHW depthwise backward
      is the slow part);
    * otherwise split-concat.
    """
    if not any(p in paths for p in ("padded", "split_cl")) or len(kernel_sizes) == 1:
        return "split"
    nchw_cpu = _memory_format(x) == "nchw" and x.device.type == "cpu"
    if not grad:
        return "padded" if "padded" in paths and (not nchw_cpu or x.numel() <= 8 * 2 ** 20) else "split"
    return "split_cl" if nchw_cpu and "split_cl" in paths else "split"


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
        impl: ``"auto"`` (the tuner's choice: the fixed rule unless tuning is on), ``"heuristic"`` (always the
            fixed rule), or force one path (see the module docstring).
        tf_same: TensorFlow "SAME" padding (asymmetric for stride 2 on even sizes) on every path.

    Parameters live in child convs ``"0"``, ``"1"``, ... (timm's ``MixedConv2d`` layout).
    """

    def __init__(self, in_channels: int, out_channels: int | None = None,
                 kernel_sizes: int | Sequence[int] = (3, 5, 7), stride: int = 1, dilated: bool = False,
                 split: SplitMode = "equal", depthwise: bool = True, bias: bool = False, impl: Impl = "auto",
                 tf_same: bool = False):
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
        if tf_same:
            for k, d in zip(ks, self.dilations, strict=True):
                _check_tf_same(3 if d > 1 else k, stride, d, "MixConv2d")
        self.tf_same = tf_same
        self.max_kernel = max(ks)
        self._has_bias = bias

    # -- helpers --
    def convs(self) -> list[nn.Conv2d]:
        return [self._modules[str(i)] for i in range(len(self.kernel_sizes))]  # type: ignore[misc]

    def padded_weight(self) -> Tensor:
        """The single ``(C, 1, K, K)`` depthwise kernel equal to this MixConv.

        Differentiable when autograd needs it; otherwise (no grad, inference) built once and reused
        until a weight changes (in place: its version counter; replaced/moved: its storage).
        """
        if not self.depthwise:
            raise ValueError("padded_weight: only a depthwise MixConv is one depthwise conv")
        return self._weight_for_call("padded", lambda: torch.cat(
            [embed_kernel(c.weight, d, self.max_kernel) for c, d in zip(self.convs(), self.dilations, strict=True)]))

    def _weight_for_call(self, name: str, build: Callable[[], Tensor]) -> Tensor:
        """``build()`` when autograd needs it; else a copy kept until a weight changes (version or storage)."""
        weights = [c.weight for c in self.convs()]
        if torch.compiler.is_compiling() or (torch.is_grad_enabled() and any(w.requires_grad for w in weights)):
            return build()  # traced: the compiler sees the build (and may fold it); no cache on the module
        try:  # dtype/device moves change the storage, in-place updates bump the version counter
            key = (torch.is_inference_mode_enabled(), *[(w._version, w.data_ptr()) for w in weights])
        except RuntimeError:  # weights created in inference mode have no version counter: no reuse
            return build()
        cache: dict[str, tuple[tuple, Tensor]] = self.__dict__.setdefault("_weight_cache", {})
        hit = cache.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]
        with torch.no_grad():
            weight = build()
        cache[name] = (key, weight)
        return weight

    def padded_bias(self) -> Tensor | None:
        return torch.cat([c.bias for c in self.convs()]) if self._has_bias else None  # type: ignore[misc]

    def available_impls(self) -> list[str]:
        """Paths this layer can run (``"split"`` always first)."""
        if not self.depthwise:
            uniform = len({*self.in_splits}) == len({*self.out_splits}) == len({*self.kernel_sizes}) == 1
            return ["split", "grouped"] if uniform and len(self.kernel_sizes) > 1 else ["split"]
        if len(self.kernel_sizes) == 1 and not self.dilated:
            return ["split", "padded_cl"]
        return ["split", "split_cl", "padded", "padded_cl", "depthwise"]

    # -- the paths --
    def forward_split(self, x: Tensor, channels_last: bool = False) -> Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
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
        return depthwise_conv2d(x, self.padded_weight(), self.padded_bias(), stride=self.stride,
                                padding=(self.max_kernel - 1) // 2)

    def forward_grouped(self, x: Tensor) -> Tensor:
        convs = self.convs()
        weight = self._weight_for_call("grouped", lambda: torch.cat([c.weight for c in convs], 0))
        bias = self.padded_bias()
        k = self.kernel_sizes[0]
        return F.conv2d(x, weight, bias, self.stride, (k - 1) // 2, 1, len(convs))

    def run(self, x: Tensor, impl: str) -> Tensor:
        """Run one named path (for tests and benchmarks)."""
        if self.tf_same and self.stride > 1:
            return self._run_tf_same(x, impl)
        if impl == "split":
            return self.forward_split(x)
        if impl == "split_cl":
            return self.forward_split(x, channels_last=True)
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

    def _run_tf_same(self, x: Tensor, impl: str) -> Tensor:
        """A path with TF "SAME" padding at stride > 1: pad once for the largest span, convs unpadded."""
        if impl not in PATHS:
            raise ValueError(f"unknown MixConv impl {impl!r}; expected one of {IMPLS[1:]}")
        spans = [d * (k - 1) + 1 for k, d in zip(self.kernel_sizes, self.dilations, strict=True)]
        span = max(spans)
        x = pad_tf_same(x, span, self.stride)
        if impl.endswith("_cl"):
            x = x.contiguous(memory_format=torch.channels_last)
        if impl in ("padded", "padded_cl") and self.depthwise:
            return F.conv2d(x, self.padded_weight(), self.padded_bias(), self.stride, 0, 1, self.in_channels)
        if impl == "depthwise":
            return depthwise_conv2d(x, self.padded_weight(), self.padded_bias(), stride=self.stride, padding=0)
        xs = torch.split(x, self.in_splits, dim=1) if len(spans) > 1 else (x,)
        outs = []
        for conv, d, xi, s in zip(self.convs(), self.dilations, xs, spans, strict=True):
            c = (span - s) // 2  # this group's extra zero border
            xi = xi[..., c:xi.shape[-2] - c, c:xi.shape[-1] - c] if c else xi
            outs.append(F.conv2d(xi, conv.weight, conv.bias, self.stride, 0, d, conv.groups))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    # -- choice --
    def _config_key(self) -> str:
        return (f"in{self.in_splits}out{self.out_splits}k{list(self.kernel_sizes)}d{list(self.dilations)}"
                f"s{self.stride}{'dw' if self.depthwise else 'pw'}{'b' if self._has_bias else ''}").replace(" ", "")

    def _needs_grad(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))

    def choice_key(self, x: Tensor, grad: bool) -> str:
        """This layer's part of the tuner's key (``kernelkit.tune`` adds torch version, device model, threads)."""
        return "|".join((self._config_key(), "x".join(map(str, x.shape)), str(x.dtype).removeprefix("torch."),
                         _memory_format(x), "grad" if grad else "nograd"))

    def choose_impl(self, x: Tensor) -> str:
        """The path for this input: forced (``impl=...``, :func:`use_impl`), else the tuner's choice."""
        compiling = torch.compiler.is_compiling()  # traced code reads no context variable: use_impl is eager-only
        forced = None if compiling else _FORCED.get()
        paths = self.available_impls()
        wanted = self.impl if self.impl != "auto" else forced
        if wanted not in (None, "auto", "heuristic"):
            if wanted not in paths:
                if self.impl != "auto":
                    raise ValueError(f"MixConv2d impl {wanted!r} is not available for this layer; available: {paths}")
                return "split"
            return wanted
        if len(paths) == 1 or (not compiling and _dispatch_mode_active()) or torch.jit.is_scripting():
            return "split"  # under a FLOP counter: the nominal arithmetic
        grad = self._needs_grad(x)
        heuristic = heuristic_impl(paths, x, grad, self.kernel_sizes)
        if wanted == "heuristic" or x.numel() < TINY_NUMEL:
            return heuristic
        if _memory_format(x) == "nhwc":  # the *_cl paths would only repeat their plain twins
            paths = [p for p in paths if not p.endswith("_cl")]
        if not grad and "depthwise" in paths and self.max_kernel <= DIRECT_MAX_TAPS:
            paths.remove("depthwise")  # it runs the very same F.conv2d as "padded" here, plus argument checks
        return tune.choose(TUNE_OP, lambda: self.choice_key(x, grad), heuristic=heuristic, baseline="split",
                           candidates=paths, device=x.device, paths=lambda names: self._path_calls(x, names, grad))

    def _path_calls(self, x: Tensor, paths: Sequence[str], grad: bool) -> Mapping[str, Callable[[], object]]:
        """One call per path on a copy of ``x``: the forward (no grad) or forward + backward (grad)."""
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

        return {p: make(p) for p in paths}

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MixConv2d expects (N, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        return self.run(x, self.choose_impl(x))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_sizes={self.kernel_sizes}, splits={self.in_splits}"
                f"{'' if self.out_splits == self.in_splits else f'->{self.out_splits}'}, stride={self.stride}, "
                f"depthwise={self.depthwise}{', dilated=True' if self.dilated else ''}"
                f"{', tf_same=True' if self.tf_same else ''}, impl={self.impl!r}")
