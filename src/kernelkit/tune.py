"""kernelkit's one path chooser: a fixed heuristic by default, measurement only when asked.

Several operations have more than one exact way to compute the same result and pick one per call:
``MixConv2d(impl="auto")`` (split-concat, one padded conv, channels-last copies, ...),
``depthwise_conv2d(strategy="auto")`` (direct, grouped backward, DFT, FFT, ...) and
``kernelkit.ntk.empirical(method="auto")`` on convolution chains (structured or Jacobian route).
Each asks :func:`choose` with its own rule (the *heuristic*) and the paths it can run.

Design (one mode switch, one cache):

* **Off by default.** :func:`choose` returns the heuristic's pick: nothing is timed, nothing is read from
  or written to disk, and the result depends only on the call's shapes, dtype and device.
* **On when asked:** ``KERNELKIT_TUNE=1`` in the environment (read at each choice; ``0``/empty: off), or
  explicitly for a block, ``with kernelkit.tune.enabled(): ...`` (``enabled(False)`` turns tuning off
  inside the block even when the variable is set; ``enabled(cache=path)`` uses another cache file).
  The setting is context-local (a ``contextvars.ContextVar``), so it never leaks out of the block.
  With tuning on a choice comes from this process's table, else from the cache file, else it is measured
  now on the call's own inputs and stored in both. ``kernelkit tune mixconv|depthwise|ntk|model`` measures a
  representative set of shapes (or one model's layers) this way and fills the cache for later runs that
  set ``KERNELKIT_TUNE=1``.
* **One cache file:** ``tune.json`` in :func:`kernelkit.utils.cache.cache_root` (``$KERNELKIT_CACHE``),
  written atomically. An entry's key is ``op|torch<version>|<device model>|threads<n>|<op key>``, so a
  choice measured on another machine, torch version or thread count is never reused. A corrupt or
  unreadable file is ignored with a warning (and replaced on the next store).
* **The measurement** (:func:`measure`): one warm-up and one timed call per path; a path already
  ``DROP_FACTOR`` x slower than the baseline (the heuristic's pick unless the op names another) is not
  timed further; then 3-7 interleaved rounds in rotating order. Each round is read on every clock
  (CUDA: wall time with ``torch.cuda.synchronize`` around the timed region; CPU with one thread:
  process CPU time; more threads: wall time and process CPU time). Another path replaces the baseline
  only if it wins by ``1 / SWITCH_MARGIN`` in the median of paired per-round ratios and in the ratio of
  the best rounds, on every clock (:func:`pick`); a near tie gets a longer duel of the two.

Under a ``TorchDispatchMode`` (e.g. FLOP counting), ``torch.compile`` tracing or TorchScript the
heuristic is used, since timing means nothing there.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import platform
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kernelkit.utils.cache import cache_root
from kernelkit.utils.io import write_json

__all__ = ["TUNE_ENV", "CACHE_FILE", "enabled", "is_enabled", "cache_path", "choose", "lookup", "record",
           "entries", "clear", "platform_key", "measure", "pick", "default_clocks"]

TUNE_ENV = "KERNELKIT_TUNE"
CACHE_FILE = "tune.json"
CACHE_VERSION = 1
SWITCH_MARGIN = 0.95  # another path must beat the baseline by >= 5% (median of per-round ratios)
DROP_FACTOR = 3.0  # a path whose first timed call is this much slower than the baseline is not timed further

_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class _Override:
    on: bool
    cache: Path | None


_OVERRIDE: contextvars.ContextVar[_Override | None] = contextvars.ContextVar("kernelkit_tune", default=None)
_LOCK = threading.RLock()
_TABLES: dict[Path, dict[str, dict[str, Any]]] = {}  # cache file -> its entries (loaded once, then added to)
_WARNED: set[str] = set()


# ---- mode ---------------------------------------------------------------------------------------


def _env_enabled() -> bool:
    value = os.environ.get(TUNE_ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{TUNE_ENV}={value!r}: expected 1 (tune: measure and cache path choices) or 0 (heuristic)")


def is_enabled() -> bool:
    """Whether choices are tuned (measured/cached) here: an enclosing :func:`enabled` block, else ``KERNELKIT_TUNE``."""
    override = _OVERRIDE.get()
    return override.on if override is not None else _env_enabled()


@contextlib.contextmanager
def enabled(on: bool = True, *, cache: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Turn tuning on (or off: ``enabled(False)``) inside the block; yields the cache file in use.

    ``cache``: a cache file to use instead of ``cache_root() / "tune.json"`` (benchmarks, tests). A nested
    block without ``cache`` keeps the enclosing block's file.
    """
    outer = _OVERRIDE.get()
    path = Path(cache) if cache is not None else (outer.cache if outer is not None else None)
    token = _OVERRIDE.set(_Override(bool(on), path))
    try:
        yield cache_path()
    finally:
        _OVERRIDE.reset(token)


def cache_path() -> Path:
    """The cache file: the enclosing ``enabled(cache=...)``'s, else ``cache_root() / "tune.json"``."""
    override = _OVERRIDE.get()
    if override is not None and override.cache is not None:
        return override.cache
    return cache_root() / CACHE_FILE


# ---- keys ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _cpu_model() -> str:
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "cpu"
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # pragma: no cover - older torch
        cap = ""
    return f"{name} ({cap})" if cap else name


def _device_model(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu:{_cpu_model()}"
    return device.type


def platform_key(device: torch.device | str = "cpu") -> str:
    """``torch<version>|<device model>|threads<n>``: the part of every cache key that names the machine."""
    return f"torch{torch.__version__}|{_device_model(device)}|threads{torch.get_num_threads()}"


def _full_key(op: str, key: str, device: torch.device | str) -> str:
    return f"{op}|{platform_key(device)}|{key}"


# ---- the cache ------------------------------------------------------------------------------------


def _warn_once(tag: str, message: str) -> None:
    if tag not in _WARNED:
        _WARNED.add(tag)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    """The valid entries of a cache file; a missing file is empty, a corrupt one is empty with a warning."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _warn_once(f"read:{path}", f"tune cache {path} is unreadable ({exc}); ignoring it (it is rewritten on "
                                   "the next measurement)")
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("entries"), dict):
        _warn_once(f"read:{path}", f"tune cache {path} has an unknown layout; ignoring it")
        return {}
    return {k: v for k, v in data["entries"].items() if isinstance(v, dict) and isinstance(v.get("choice"), str)}


def _table(path: Path) -> dict[str, dict[str, Any]]:
    with _LOCK:
        table = _TABLES.get(path)
        if table is None:
            table = _TABLES[path] = _read_file(path)
        return table


def lookup(op: str, key: str, device: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The stored entry (``{"choice": ..., "ms": {path: ms}}``) for this op key on this machine, or ``None``."""
    return _table(cache_path()).get(_full_key(op, key, device))


def record(op: str, key: str, device: torch.device | str, choice: str, seconds: Mapping[str, float]) -> None:
    """Store a choice in this process's table and in the cache file (merged with what other processes wrote)."""
    path = cache_path()
    entry = {"choice": choice, "ms": {k: round(v * 1e3, 4) for k, v in seconds.items()}}
    with _LOCK:
        table = _table(path)
        table[_full_key(op, key, device)] = entry
        try:
            merged = {**_read_file(path), **table}
            write_json(path, {"version": CACHE_VERSION, "entries": merged})
        except OSError as exc:
            _warn_once(f"write:{path}", f"tune cache {path} is not writable ({exc}); choices stay in memory")


def entries() -> dict[str, dict[str, Any]]:
    """A copy of every entry of the cache file in use (and of this process's new ones)."""
    with _LOCK:
        return dict(_table(cache_path()))


def clear(disk: bool = False) -> None:
    """Forget this process's tables and warnings (``disk=True``: also delete the cache file in use)."""
    with _LOCK:
        _TABLES.clear()
        _WARNED.clear()
        if disk:
            cache_path().unlink(missing_ok=True)


# ---- choosing -----------------------------------------------------------------------------------


def _timing_meaningless() -> bool:
    """Under a ``TorchDispatchMode`` (FLOP counters), ``torch.compile`` tracing or TorchScript."""
    if torch.compiler.is_compiling() or torch.jit.is_scripting():
        return True
    try:
        return bool(torch._C._len_torch_dispatch_stack())
    except AttributeError:  # pragma: no cover - private API moved
        return False


def choose(op: str, key: str | Callable[[], str], *, heuristic: str, candidates: Sequence[str],
           paths: Callable[[Sequence[str]], Mapping[str, Callable[[], object]]],
           device: torch.device | str = "cpu", baseline: str | None = None) -> str:
    """The path for one call of ``op``.

    Args:
        op: the operation's name (``"mixconv"``, ``"depthwise"``, ``"ntk"``): the first part of the cache key.
        key: what else decides the choice for this op (layer configuration, shapes, dtype, grad mode, ...), or a
            zero-argument callable returning it, called only when tuning is on (so the fixed rule costs nothing).
        heuristic: the op's fixed rule's pick; the answer whenever tuning is off.
        candidates: the paths that may be chosen (must contain ``heuristic`` and ``baseline``).
        paths: called only when a measurement is needed, with the candidates; returns a zero-argument
            callable per path that runs it once on the call's inputs (forward, or forward + backward).
        device: where the paths run (the cache key names its model; CUDA timings synchronize).
        baseline: the path another must beat clearly to be chosen (default: ``heuristic``).
    """
    if len(candidates) < 2 or _timing_meaningless() or not is_enabled():
        return heuristic
    baseline = heuristic if baseline is None else baseline
    key = key() if callable(key) else key
    entry = lookup(op, key, device)
    if entry is not None and entry["choice"] in candidates:
        return str(entry["choice"])
    order = [baseline, *[c for c in candidates if c != baseline]]
    fns = dict(paths(order))
    dev = torch.device(device)
    sync: Callable[[], None] = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    seconds, ratios = measure({n: fns[n] for n in order}, sync=sync, clocks=default_clocks(dev))
    choice = pick(seconds, ratios, baseline)
    record(op, key, device, choice, seconds)
    return choice


def default_clocks(device: torch.device | str = "cpu") -> tuple[Callable[[], float], ...]:
    """CUDA: wall time (the timed region is synchronized). CPU, one thread: process CPU time (its work);
    more threads: wall time, confirmed by process CPU time (time slices lost to other processes inflate
    only the wall clock)."""
    if torch.device(device).type == "cuda":
        return (time.perf_counter,)
    if torch.get_num_threads() == 1:
        return (time.process_time,)
    return (time.perf_counter, time.process_time)


def measure(fns: Mapping[str, Callable[[], object]], sync: Callable[[], None] = lambda: None,
            round_s: float = 0.003, clocks: Sequence[Callable[[], float]] = (time.perf_counter,),
            ) -> tuple[dict[str, float], dict[str, float]]:
    """Interleaved medians of seconds per call, and per path the ratio ``baseline / path``.

    The first entry of ``fns`` is the baseline. One warm-up call per path (allocations, oneDNN primitives),
    one timed call; a path whose timed call exceeds ``DROP_FACTOR`` x the baseline's is not timed further
    (reported with that single time, and no ratio). Then 3-7
    rounds, each running every remaining path ``reps`` times in a rotating order, ``sync()`` before each
    clock reading. The ratio of a path is the *smallest*, over the clocks, of the median per-round ratio
    and the ratio of the best rounds, so a path counts as faster only if every clock and both statistics
    say so.
    """
    names = list(fns)
    base = names[0]
    first: dict[str, float] = {}
    clock = clocks[0]
    for name in names:
        fns[name]()  # warm-up (it may include a nested choice being measured, e.g. MixConv's depthwise path)
        sync()
        t0 = clock()
        fns[name]()
        sync()
        first[name] = max(clock() - t0, 1e-7)
    live = [n for n in names if n == base or first[n] <= DROP_FACTOR * first[base]]
    rounds = 7 if first[base] < 0.002 else 5 if first[base] < 0.01 else 3
    per_round: dict[str, list[list[float]]] = {n: [[] for _ in clocks] for n in live}

    def play(order: list[str], n_rounds: int) -> None:
        for r in range(n_rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                reps = max(1, min(25, int(round_s / first[name])))
                sync()
                starts = [c() for c in clocks]
                for _ in range(reps):
                    fns[name]()
                sync()
                for series, c, t0 in zip(per_round[name], clocks, starts, strict=True):
                    series.append(max(c() - t0, 1e-9) / reps)

    def summary() -> tuple[dict[str, float], dict[str, float]]:
        med = {n: statistics.median(v[0]) for n, v in per_round.items()}
        b = per_round[base]
        ratio = {n: min(min(statistics.median(s / t for s, t in zip(b[i], v[i], strict=True)),
                            min(b[i]) / min(v[i]))  # medians of paired rounds AND best rounds
                        for i in range(len(clocks)))
                 for n, v in per_round.items()}
        return med, ratio

    play(live, rounds)
    med, ratio = summary()
    best = min(med, key=lambda n: (med[n], n))
    if best != base and ratio[best] <= 1 / SWITCH_MARGIN < med[base] / med[best]:
        # faster in the medians, not clearly in the paired ratios: a longer duel of the two decides
        others = {n: per_round.pop(n) for n in list(per_round) if n not in (base, best)}
        play([base, best], 2 * rounds)
        med, ratio = summary()
        per_round.update(others)
        med.update({n: statistics.median(v[0]) for n, v in others.items()})
        ratio.update({n: 0.0 for n in others})  # not in the duel: not eligible
    med.update({n: first[n] for n in names if n not in med})
    return med, ratio


def pick(seconds: Mapping[str, float], ratios: Mapping[str, float], baseline: str) -> str:
    """The fastest measured path, unless it does not beat ``baseline`` clearly in both the medians and the ratios."""
    best = min(ratios, key=lambda n: (seconds[n], n))
    if best == baseline:
        return baseline
    clearly = seconds[best] < SWITCH_MARGIN * seconds[baseline] and ratios[best] > 1 / SWITCH_MARGIN
    return best if clearly else baseline
