"""Former home of the convolution building blocks, kept so existing imports work.

The blocks live in :mod:`kernelkit.layers`; this module re-exports the names promised earlier.
"""

from kernelkit.layers import DilatedReparamBlock, MixConv2d, depthwise_conv2d, split_channels

__all__ = ["DilatedReparamBlock", "MixConv2d", "depthwise_conv2d", "split_channels"]
