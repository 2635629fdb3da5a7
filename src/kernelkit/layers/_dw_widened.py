"""The ``direct_widened`` depthwise strategy: ``F.conv2d`` with the kernel one zero tap wider on each side.

oneDNN's channels-last depthwise forward on AVX-512 CPUs (its ``brdgmm_dw`` implementation) is much slower for
kernel widths 12 and 13 than for widths 14 and 15, although those do more work; ``kernelkit bench
depthwise_conv`` has rows that measure it. A zero column on each side of the kernel, with one more column of
input padding on each side, gives the same output: every extra product is ``0 · x``, so for finite inputs the
numbers are identical (an ``inf`` or ``nan`` one column beyond a window's reach would now reach that output).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from kernelkit.layers._dw_geometry import Geometry
from kernelkit.layers._dw_spectral import direct_conv
from kernelkit.utils.derived_weights import derived, plain_eager_call

__all__ = ["CHANNELS_LAST_DIRECT_MAX_TAPS", "SLOW_CHANNELS_LAST_WIDTHS", "avx512", "onednn_channels_last",
           "widen", "widened_conv"]

#: Kernel widths at which oneDNN's channels-last depthwise forward on AVX-512 is slower than at the next two.
SLOW_CHANNELS_LAST_WIDTHS = (12, 13)
#: Taps per axis up to which oneDNN's channels-last forward beats the spectral strategies (near 31 they tie).
CHANNELS_LAST_DIRECT_MAX_TAPS = 29

_CAPABILITY = torch.backends.cpu.get_cpu_capability()  # read once: a constant for torch.compile


def avx512() -> bool:
    """Whether torch's CPU kernels run at an AVX-512 capability level (where the slow widths were measured)."""
    return _CAPABILITY.startswith("AVX512")


def onednn_channels_last(x: torch.Tensor, geo: Geometry) -> bool:
    """Whether oneDNN's channels-last forward is the fixed rule's pick: a float32 channels-last CPU input, an
    undilated kernel of at most :data:`CHANNELS_LAST_DIRECT_MAX_TAPS` taps per axis, AVX-512. (On NCHW input
    torch's depthwise forward slows sharply beyond 13 taps; on channels-last input it does not.)"""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and not geo.dilated and avx512()
            and max(geo.h.kernel, geo.w.kernel) <= CHANNELS_LAST_DIRECT_MAX_TAPS
            and x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1 and x.is_contiguous(memory_format=torch.channels_last))


def widen(x: torch.Tensor, geo: Geometry) -> bool:
    """Whether the forward should be the widened conv: oneDNN's channels-last forward at a slow kernel width."""
    return onednn_channels_last(x, geo) and geo.w.kernel in SLOW_CHANNELS_LAST_WIDTHS


def widened_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry) -> torch.Tensor:
    """:func:`direct_conv` with a zero column on each side of the kernel and the width padding grown to match."""
    d = geo.w.dilation
    wider = dataclasses.replace(geo.w, kernel=geo.w.kernel + 2, pad_before=geo.w.pad_before + d,
                                pad_after=geo.w.pad_after + d)
    return direct_conv(x, _wider_kernel(weight), bias, dataclasses.replace(geo, w=wider))


def _wider_kernel(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` with a zero column on each side; in plain eager inference a copy kept while ``weight`` is unchanged
    (:mod:`kernelkit.utils.derived_weights`), elsewhere made by ``F.pad`` (traceable, differentiable)."""
    if plain_eager_call(weight):
        cached = derived(weight, "depthwise_width_plus_2", lambda w: F.pad(w, (1, 1)))
        if cached is not None:
            return cached
    return F.pad(weight, (1, 1))
