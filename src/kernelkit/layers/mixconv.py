"""MixConv: mixed depthwise convolutional kernels (Tan & Le, "MixConv", arXiv 1907.09595).

The channels are split into groups; group ``t`` gets a depthwise conv with kernel ``k_t`` and the
results are concatenated in group order. This equals ONE depthwise conv whose smaller kernels are
zero-padded and centred to the largest kernel, which is what the fast paths exploit:

* ``"split"`` — split → one conv per group → concat (the reference formulation, timm/TF layout);
* ``"padded"`` — one ``F.conv2d`` with the zero-padded kernel, built differentiably from the
  per-group weights on every call when autograd needs it (so gradients land on the per-group
  parameters), otherwise built once and reused until a weight changes;
* ``"split_cl"`` / ``"padded_cl"`` — the same on a channels-last copy of the input (oneDNN's fast
  depthwise kernels on CPU; torch's NCHW depthwise *backward* is 2-4x slower than its channels-last
  one); the output is then channels-last too;
* ``"depthwise"`` — ``kernelkit.layers.depthwise_conv2d`` on the padded kernel, when that module exists;
* ``"grouped"`` — for the grouped pointwise form (``depthwise=False``) with equal splits and one
  kernel size: a single conv with ``groups=g``.

``impl="auto"`` (the default) picks a path per (layer configuration, input shape, dtype, device, memory
format, grad mode, threads, torch version): from a short interleaved measurement on first use, kept in
memory and in a small JSON file under the user cache dir (``~/.cache/kernelkit/mixconv_paths.json``;
``KERNELKIT_CACHE_DIR`` moves it, ``=off`` disables it), so later processes measure nothing. The split
path is always a candidate and another path is taken only when it beats split-concat clearly in the
measurement. ``KERNELKIT_MIXCONV_AUTO=heuristic`` (or ``impl="heuristic"``, ``use_impl("heuristic")``)
decides by a fixed rule with no timing, for reproducible CI runs. The measurement sees the process's allocator
state: with glibc's default settings fresh page faults can dominate large-batch calls (see
:mod:`kernelkit.utils.allocator`, which the ``kernelkit`` command applies). Parameters are stored exactly as timm's
``MixedConv2d`` stores them (child modules ``"0"``, ``"1"``, ... each with a ``weight``), so timm
``mixnet_*`` state dicts load without renaming.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernelkit.utils.io import write_json

SplitMode = Literal["equal", "exponential"]
Impl = Literal["auto", "heuristic", "split", "split_cl", "padded", "padded_cl", "depthwise", "grouped"]
IMPLS: tuple[str, ...] = ("auto", "heuristic", "split", "split_cl", "padded", "padded_cl", "depthwise", "grouped")
PATHS: tuple[str, ...] = IMPLS[2:]

__all__ = ["MixConv2d", "split_channels", "pad_kernel", "embed_kernel", "use_impl", "clear_impl_cache",
           "impl_cache", "choice_mode", "cache_path", "heuristic_impl", "fresh_choices", "measured_choice"]


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


# ---- path choice ----------------------------------------------------------------------------------
#
# ``impl="auto"`` resolves a path per *choice key*: the layer configuration, the input shape, dtype,
# device and memory format, grad mode, the torch thread count, the torch version and the CPU's
# vector capability. Resolution order: a forced path (``use_impl`` / ``impl=...``) → the in-process
# table → the on-disk JSON cache → a short measurement (or, in ``heuristic`` mode, a fixed rule with no
# timing). The measurement (``_time_paths``): one warm-up call per path, a path whose first timed call
# is already ``DROP_FACTOR`` x slower than split-concat is dropped (torch's NCHW depthwise backward can
# be 10-200x a forward), then 3-7 interleaved rounds in rotating order. A path replaces split-concat
# only when it wins by ``1 / SWITCH_MARGIN`` in the median of the paired per-round ratios AND in the
# ratio of the best rounds, on the wall clock AND on process CPU time (one thread: CPU time only);
# a near tie gets a longer two-path duel. So the chosen path is never slower than split-concat *in
# the measurement*; on a loaded machine, where the clocks disagree, split-concat is kept.
# Measured cost (MixNet-S, 2 threads, machine under load): first forward 1.4 s at batch 1, 4.9 s at
# batch 32 (eval, 224²), 4.5-5.9 s in training mode; with the on-disk cache 0.2-1.1 s.

CHOICE_ENV = "KERNELKIT_MIXCONV_AUTO"  # "measure" (default) or "heuristic" (deterministic, no timing)
CACHE_DIR_ENV = "KERNELKIT_CACHE_DIR"  # folder of the on-disk cache; "off" disables the file
CACHE_FILE = "mixconv_paths.json"
CACHE_VERSION = 1
SWITCH_MARGIN = 0.95  # another path must beat split-concat by >= 5% (median of per-round ratios)
DROP_FACTOR = 3.0  # a path whose first timed call is this much slower than split-concat is not timed further
TINY_NUMEL = 8192  # below this many input elements: no timing, one padded conv (per-call overhead dominates)

_CACHE: dict[str, str] = {}
_DISK: dict[str, dict[str, Any]] | None = None  # loaded lazily, once per process
_LOCK = threading.RLock()
_FORCED = threading.local()
_WARNED: set[str] = set()
_GENERATION = [0]  # bumped by clear_impl_cache: invalidates the per-layer memos


@contextlib.contextmanager
def use_impl(impl: str) -> Iterator[None]:
    """Force every ``MixConv2d`` whose ``impl`` is ``"auto"`` to use ``impl`` inside the block.

    E.g. ``with use_impl("split"): count_macs(model, ...)`` counts the nominal arithmetic (the padded
    paths multiply the zero taps too). ``use_impl("heuristic")`` picks by the fixed rule without timing.
    Paths a layer does not have fall back to ``"split"``.
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown MixConv impl {impl!r}; expected one of {IMPLS}")
    old = getattr(_FORCED, "impl", None)
    _FORCED.impl = impl
    try:
        yield
    finally:
        _FORCED.impl = old


def choice_mode() -> str:
    """``"measure"`` or ``"heuristic"``, from the ``KERNELKIT_MIXCONV_AUTO`` environment variable."""
    mode = os.environ.get(CHOICE_ENV, "measure").strip().lower() or "measure"
    if mode not in ("measure", "heuristic"):
        raise ValueError(f"{CHOICE_ENV}={mode!r}: expected 'measure' or 'heuristic'")
    return mode


def cache_path() -> Path | None:
    """The on-disk choice cache: ``$KERNELKIT_CACHE_DIR`` (``"off"``: none), else the user cache dir."""
    env = os.environ.get(CACHE_DIR_ENV)
    if env is not None and env.strip().lower() in ("off", "none", "0", ""):
        return None
    if env:
        base = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "kernelkit"
    return base / CACHE_FILE


def _warn_once(tag: str, message: str) -> None:
    if tag not in _WARNED:
        _WARNED.add(tag)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _disk_entries() -> dict[str, dict[str, Any]]:
    global _DISK
    if _DISK is None:
        _DISK = {}
        path = cache_path()
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict) and data.get("version") == CACHE_VERSION:
                    _DISK = {k: v for k, v in data.get("entries", {}).items()
                             if isinstance(v, dict) and isinstance(v.get("impl"), str)}
            except (OSError, ValueError) as exc:
                _warn_once("read", f"MixConv path cache {path} is unreadable ({exc}); it will be rewritten")
    return _DISK


def _store(key: str, impl: str, times: dict[str, float]) -> None:
    """Remember a measured choice in memory and (merged with what other processes wrote) on disk."""
    _CACHE[key] = impl
    entries = _disk_entries()
    entries[key] = {"impl": impl, "ms": {k: round(v * 1e3, 4) for k, v in times.items()}}
    path = cache_path()
    if path is None:
        return
    try:
        merged: dict[str, Any] = {}
        if path.exists():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(old, dict) and old.get("version") == CACHE_VERSION:
                    merged.update(old.get("entries", {}))
            except ValueError:
                pass
        merged.update(entries)
        write_json(path, {"version": CACHE_VERSION, "entries": merged})
    except OSError as exc:
        _warn_once("write", f"MixConv path cache {path} is not writable ({exc}); choices stay in memory")


def clear_impl_cache(disk: bool = False) -> None:
    """Forget the path choices of this process (``disk=True``: delete the on-disk cache file too)."""
    global _DISK
    with _LOCK:
        _CACHE.clear()
        _DISK = None
        _GENERATION[0] += 1
        path = cache_path()
        if disk and path is not None:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def fresh_choices(mode: str = "measure") -> Iterator[Path]:
    """Inside the block, path choices start empty and go to a temporary cache file (benchmarks, tests).

    ``mode``: ``"measure"`` or ``"heuristic"``. The previous environment and choices are restored after.
    """
    import tempfile

    if mode not in ("measure", "heuristic"):
        raise ValueError(f"fresh_choices: mode must be 'measure' or 'heuristic', got {mode!r}")
    saved = {k: os.environ.get(k) for k in (CACHE_DIR_ENV, CHOICE_ENV)}
    with tempfile.TemporaryDirectory(prefix="kernelkit-mixconv-") as tmp:
        os.environ[CACHE_DIR_ENV] = tmp
        os.environ[CHOICE_ENV] = mode
        clear_impl_cache()
        try:
            yield Path(tmp) / CACHE_FILE
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            clear_impl_cache()


def measured_choice(key: str) -> dict[str, Any] | None:
    """The cached record of one choice key (``{"impl": ..., "ms": {path: ms}}``) or ``None``."""
    with _LOCK:
        return _disk_entries().get(key)


def impl_cache() -> dict[str, str]:
    """A copy of this process's choices: choice key → path."""
    with _LOCK:
        return dict(_CACHE)


def _depthwise_fn() -> Callable[..., Tensor] | None:
    try:
        return importlib.import_module("kernelkit.layers.depthwise").depthwise_conv2d  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def _depthwise_direct_max() -> int:
    """Kernel sizes up to which ``depthwise_conv2d``'s no-grad forward is plain ``F.conv2d``."""
    try:
        return int(importlib.import_module("kernelkit.layers.depthwise").DIRECT_MAX_TAPS)
    except (ImportError, AttributeError):
        return 0


def _dispatch_mode_active() -> bool:
    """True under a ``TorchDispatchMode`` (e.g. ``FlopCounterMode``), where timing means nothing."""
    try:
        return bool(torch._C._len_torch_dispatch_stack())
    except AttributeError:  # pragma: no cover - private API moved
        return False


def _memory_format(x: Tensor) -> str:
    if x.is_contiguous():
        return "nchw"
    return "nhwc" if x.is_contiguous(memory_format=torch.channels_last) else "strided"


def _platform_tag(x: Tensor) -> str:
    if x.device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(x.device)}"
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # pragma: no cover - older torch
        cap = "cpu"
    return f"{x.device.type}:{cap}"


def heuristic_impl(paths: Sequence[str], x: Tensor, grad: bool, kernel_sizes: Sequence[int]) -> str:
    """The fixed no-timing rule (CPU measurements of ``benchmarks/mixconv.py`` and MixNet-S layers, 1-2 threads).

    * pointwise groups and single kernels: split-concat (the conv itself);
    * no grad: one zero-padded depthwise conv, except on big NCHW activations (> 8M elements, where
      torch's large-kernel NCHW kernel measured 0.3x split-concat);
    * grad on an NCHW CPU input: split-concat on a channels-last copy (torch's NCHW depthwise backward
      is the slow part: 2-4x);
    * otherwise split-concat.
    """
    if not any(p in paths for p in ("padded", "split_cl")) or len(kernel_sizes) == 1:
        return "split"
    nchw_cpu = _memory_format(x) == "nchw" and x.device.type == "cpu"
    if not grad:
        return "padded" if "padded" in paths and (not nchw_cpu or x.numel() <= 8 * 2 ** 20) else "split"
    return "split_cl" if nchw_cpu and "split_cl" in paths else "split"


def _time_paths(fns: dict[str, Callable[[], object]], sync: Callable[[], None] = lambda: None,
                round_s: float = 0.003, clocks: Sequence[Callable[[], float]] = (time.perf_counter,),
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Interleaved medians of seconds per call, and the per-round ratio ``split / path``.

    One warm-up call per path (allocations, oneDNN primitives), one timed call; a path whose timed
    call exceeds ``DROP_FACTOR`` x split-concat's (or whose warm-up alone exceeds twice that) is not
    timed further (reported with that single time). Then 3-7 rounds, each running every remaining
    path ``reps`` times in a rotating order. Every round is read on each of ``clocks`` (the first gives
    the medians); the returned ratio of a path is the *smallest*, over the clocks, of the median
    per-round ratio and the ratio of the best rounds (the least disturbed ones), so a path counts as
    faster only if every clock and both statistics say so. With wall time and process CPU time,
    time slices lost to other processes on a loaded machine inflate only the wall clock, and a
    disagreement keeps split-concat.
    """
    first: dict[str, float] = {}
    clock = clocks[0]
    for name, fn in fns.items():  # "split" comes first
        t0 = clock()
        fn()  # warm-up
        sync()
        warm = clock() - t0
        if name != "split" and warm > 2 * DROP_FACTOR * first["split"]:
            first[name] = warm  # hopeless even allowing for first-call overhead: no second call
            continue
        t0 = clock()
        fn()
        sync()
        first[name] = max(clock() - t0, 1e-7)
    live = [n for n in fns if n == "split" or first[n] <= DROP_FACTOR * first["split"]]
    rounds = 7 if first["split"] < 0.002 else 5 if first["split"] < 0.01 else 3
    per_round: dict[str, list[list[float]]] = {n: [[] for _ in clocks] for n in live}

    def play(names: list[str], n_rounds: int) -> None:
        for r in range(n_rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                reps = max(1, min(25, int(round_s / first[name])))
                starts = [c() for c in clocks]
                for _ in range(reps):
                    fns[name]()
                sync()
                for series, c, t0 in zip(per_round[name], clocks, starts, strict=True):
                    series.append(max(c() - t0, 1e-9) / reps)

    def summary() -> tuple[dict[str, float], dict[str, float]]:
        med = {n: statistics.median(v[0]) for n, v in per_round.items()}
        split = per_round["split"]
        ratio = {n: min(min(statistics.median(s / t for s, t in zip(split[i], v[i], strict=True)),
                            min(split[i]) / min(v[i]))  # medians of paired rounds AND best rounds
                        for i in range(len(clocks)))
                 for n, v in per_round.items()}
        return med, ratio

    play(live, rounds)
    med, ratio = summary()
    best = min(med, key=lambda n: (med[n], n))
    if best != "split" and ratio[best] <= 1 / SWITCH_MARGIN < med["split"] / med[best]:
        # faster in the medians, not clearly in the paired ratios: a longer duel of the two decides
        others = {n: per_round.pop(n) for n in list(per_round) if n not in ("split", best)}
        play(["split", best], 2 * rounds)
        med, ratio = summary()
        per_round.update(others)
        med.update({n: statistics.median(v[0]) for n, v in others.items()})
        ratio.update({n: 0.0 for n in others})  # not in the duel: not eligible
    med.update({n: first[n] for n in fns if n not in med})
    return med, ratio


def pick_from_measurement(times: dict[str, float], ratios: dict[str, float]) -> str:
    """The fastest path, unless it does not beat split-concat clearly in both the medians and the ratios."""
    best = min(ratios, key=lambda n: (times[n], n))
    if best == "split":
        return "split"
    clearly = times[best] < SWITCH_MARGIN * times["split"] and ratios[best] > 1 / SWITCH_MARGIN
    return best if clearly else "split"


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
        if torch.is_grad_enabled() and any(w.requires_grad for w in weights):
            return build()
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
        paths = ["split", "split_cl", "padded", "padded_cl"]
        if _depthwise_fn() is not None:
            paths.append("depthwise")
        return paths

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
        fn = _depthwise_fn()
        if fn is None:
            raise RuntimeError("MixConv2d impl 'depthwise' needs kernelkit.layers.depthwise, which is not available")
        return fn(x, self.padded_weight(), self.padded_bias(), stride=self.stride, padding=(self.max_kernel - 1) // 2)

    def forward_grouped(self, x: Tensor) -> Tensor:
        convs = self.convs()
        weight = self._weight_for_call("grouped", lambda: torch.cat([c.weight for c in convs], 0))
        bias = self.padded_bias()
        k = self.kernel_sizes[0]
        return F.conv2d(x, weight, bias, self.stride, (k - 1) // 2, 1, len(convs))

    def run(self, x: Tensor, impl: str) -> Tensor:
        """Run one named path (for tests and benchmarks)."""
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

    # -- choice --
    def _config_key(self) -> str:
        return (f"in{self.in_splits}out{self.out_splits}k{list(self.kernel_sizes)}d{list(self.dilations)}"
                f"s{self.stride}{'dw' if self.depthwise else 'pw'}{'b' if self._has_bias else ''}").replace(" ", "")

    def _needs_grad(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in self.parameters()))

    def choice_key(self, x: Tensor, grad: bool) -> str:
        """The key a path choice is cached under (in memory and on disk)."""
        return "|".join((f"torch{torch.__version__}", _platform_tag(x), f"threads{torch.get_num_threads()}",
                         self._config_key(), "x".join(map(str, x.shape)), str(x.dtype).removeprefix("torch."),
                         _memory_format(x), "grad" if grad else "nograd"))

    def choose_impl(self, x: Tensor) -> str:
        """The path for this input: forced, cached (memory, then disk), or decided now (then cached)."""
        forced = getattr(_FORCED, "impl", None)
        paths = self.available_impls()
        wanted = self.impl if self.impl != "auto" else forced
        if wanted not in (None, "auto", "heuristic"):
            if wanted not in paths:
                if self.impl != "auto":
                    raise ValueError(f"MixConv2d impl {wanted!r} is not available for this layer; available: {paths}")
                return "split"
            return wanted
        if len(paths) == 1 or _dispatch_mode_active() or torch.jit.is_scripting():
            return "split"
        grad = self._needs_grad(x)
        if torch.compiler.is_compiling() or wanted == "heuristic" or choice_mode() == "heuristic":
            return heuristic_impl(paths, x, grad, self.kernel_sizes)
        if x.numel() < TINY_NUMEL and "padded" in paths:
            return "padded"
        fmt = _memory_format(x)
        memo_key = (_GENERATION[0], tuple(x.shape), x.dtype, x.device, fmt, grad, torch.get_num_threads())
        memo: dict[tuple, str] = self.__dict__.setdefault("_choice_memo", {})
        hit = memo.get(memo_key)
        if hit is not None:
            return hit
        if fmt == "nhwc":  # the *_cl paths would only repeat their plain twins
            paths = [p for p in paths if not p.endswith("_cl")]
        if not grad and "depthwise" in paths and self.max_kernel <= _depthwise_direct_max():
            paths.remove("depthwise")  # it runs the very same F.conv2d as "padded" here, plus argument checks
        if len(paths) == 1:
            return paths[0]
        key = self.choice_key(x, grad)
        with _LOCK:
            hit = _CACHE.get(key)
            if hit is None:
                entry = _disk_entries().get(key)
                if entry is not None and entry["impl"] in paths:
                    hit = _CACHE[key] = entry["impl"]
        if hit is None:
            times, ratios = self._measure(x, paths, grad)
            hit = pick_from_measurement(times, ratios)
            with _LOCK:
                _store(key, hit, times)
        memo[memo_key] = hit
        return hit

    def _measure(self, x: Tensor, paths: list[str], grad: bool) -> tuple[dict[str, float], dict[str, float]]:
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

        cuda = x.device.type == "cuda"
        sync = (lambda: torch.cuda.synchronize(x.device)) if cuda else (lambda: None)
        # one CPU thread: its CPU time is the work; more threads: wall time, confirmed by process CPU time
        clocks: tuple[Callable[[], float], ...] = (
            (time.perf_counter,) if cuda else (time.process_time,) if torch.get_num_threads() == 1
            else (time.perf_counter, time.process_time))
        return _time_paths({p: make(p) for p in paths}, sync, clocks=clocks)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MixConv2d expects (N, {self.in_channels}, H, W) input, got {tuple(x.shape)}")
        return self.run(x, self.choose_impl(x))

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_sizes={self.kernel_sizes}, splits={self.in_splits}"
                f"{'' if self.out_splits == self.in_splits else f'->{self.out_splits}'}, stride={self.stride}, "
                f"depthwise={self.depthwise}{', dilated=True' if self.dilated else ''}, impl={self.impl!r}")
