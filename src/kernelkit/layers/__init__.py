"""Convolution building blocks: fast large-kernel depthwise conv, Dilated Reparam Block, MixConv.

Names are resolved lazily from the modules that define them, so importing ``kernelkit.conv`` is
cheap and each building block lives in one small module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "depthwise_conv2d": "kernelkit.layers.depthwise",
    "DilatedReparamBlock": "kernelkit.layers.reparam",
    "MixConv2d": "kernelkit.layers.mixconv",
    "split_channels": "kernelkit.layers.mixconv",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kernelkit.layers' has no attribute {name!r}")
