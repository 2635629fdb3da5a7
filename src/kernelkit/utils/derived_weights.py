"""Inference copies of parameters in another layout (oneDNN-packed, channels-last), made once and reused.

A fast inference path may want a weight in a layout other than the parameter's: oneDNN's blocked GEMM
layout, or a channels-last conv kernel. Making that copy on every call costs a pass over the weight, which
at batch 1 is a large part of a layer's time. :func:`derived` makes the copy once per parameter and hands
the same copy back while the parameter is unchanged.

- The copy is keyed by the parameter object and a name for the layout. It is made again when the parameter's
  version counter (bumped by every in-place change: ``load_state_dict``, optimizer steps, ``copy_``), data
  pointer, shape, strides or dtype differ from when it was made.
- Nothing is stored on modules, so ``state_dict``, ``deepcopy`` and pickling see only the parameters. An entry
  goes when its parameter is garbage-collected, or with :func:`clear`.
- Inference tensors (made under ``torch.inference_mode``) have no version counter, so their changes cannot
  be seen. :func:`derived` returns ``None`` for them, and the caller uses the parameter as it is.
- The copies hold as much memory again as the parameters they copy; :func:`cached_bytes` says how much.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

import torch

__all__ = ["cached_bytes", "clear", "derived", "plain_eager_call"]

_Key = tuple[int, str]
_Stamp = tuple[int, int, tuple[int, ...], tuple[int, ...], torch.dtype]

_entries: dict[_Key, tuple[_Stamp, torch.Tensor]] = {}
_watched: set[int] = set()
_lock = threading.Lock()


def _stamp(t: torch.Tensor) -> _Stamp:
    return t._version, t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype


def _forget(ident: int) -> None:
    with _lock:
        _watched.discard(ident)
        for key in [k for k in _entries if k[0] == ident]:
            del _entries[key]


def derived(param: torch.Tensor, layout: str, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """``make(param)`` for the name ``layout``, made once and reused while ``param`` is unchanged.

    ``None`` for inference tensors and tensors without storage (meta, fake), whose changes cannot be tracked:
    use ``param`` itself then. ``make`` runs without autograd; its result must not alias ``param``.
    """
    if param.is_inference() or param.device.type == "meta" or not _has_storage(param):
        return None
    ident = id(param)
    key = (ident, layout)
    stamp = _stamp(param)
    with _lock:
        hit = _entries.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    with torch.no_grad():
        copy = make(param.detach())
    with _lock:
        _entries[key] = (stamp, copy)
        if ident not in _watched:
            _watched.add(ident)
            weakref.finalize(param, _forget, ident)
    return copy


def plain_eager_call(*tensors: torch.Tensor | None) -> bool:
    """An eager call that no tool observes: not compiling, exporting or tracing, no dispatch mode (FLOP counter,
    fake tensors), no functorch transform, and no autograd graph to record. Only such calls may use a copy
    from :func:`derived` in place of a parameter: everywhere else the parameter itself must appear."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing() \
            or torch._C._len_torch_dispatch_stack() or torch._C._are_functorch_transforms_active():
        return False
    return not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors))


def _has_storage(t: torch.Tensor) -> bool:
    try:
        t.data_ptr()
    except RuntimeError:  # fake tensors, functorch wrappers
        return False
    return type(t) in (torch.Tensor, torch.nn.Parameter)


def clear() -> int:
    """Drop every cached copy; returns how many there were."""
    with _lock:
        n = len(_entries)
        _entries.clear()
    return n


def cached_bytes() -> int:
    """Memory held by the cached copies (oneDNN-packed copies counted at their logical size)."""
    with _lock:
        return sum(t.numel() * t.element_size() for _, t in _entries.values())
