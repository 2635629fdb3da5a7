"""TorusNet: a UniRepLKNet-style network that is exactly translation-invariant on a torus.

Circular padding, stride 1 and global average pooling: the network of the two-dots-on-a-torus task
(:mod:`kernelkit.data.longrange`), where only the kernel size (the receptive field) decides whether
the task can be solved.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.layers.depthwise import depthwise_conv2d
from kernelkit.utils.counting import count_params

__all__ = ["CircularDepthwise", "TorusBlock", "TorusNet", "matched_torus_width"]


class CircularDepthwise(nn.Module):
    """Depthwise K×K conv with circular (torus) padding, through :func:`kernelkit.layers.depthwise_conv2d`."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"circular depthwise conv needs an odd kernel size, got {kernel_size}")
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.trunc_normal_(self.weight, std=0.02)
        self.pad = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        return depthwise_conv2d(F.pad(x, (p, p, p, p), mode="circular"), self.weight, self.bias, padding=0)


class TorusBlock(nn.Module):
    """UniRepLKNet-style block on the torus: circular depthwise K×K → BN → pointwise FFN (×4, GELU) → residual."""

    def __init__(self, width: int, kernel_size: int):
        super().__init__()
        self.dwconv = CircularDepthwise(width, kernel_size)
        self.norm = nn.BatchNorm2d(width)
        self.ffn = nn.Sequential(nn.Conv2d(width, 4 * width, 1), nn.GELU(), nn.Conv2d(4 * width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(self.norm(self.dwconv(x)))


class TorusNet(nn.Module):
    """1×1 stem → ``depth`` :class:`TorusBlock` (stride 1) → global average pool → LN → linear.

    Translation-equivariant on the torus up to the pooling, which makes it invariant; receptive field
    :func:`kernelkit.data.longrange.receptive_field` ``(kernel_size, depth)``. The network of the
    long-range task in :mod:`kernelkit.data.longrange`.
    """

    def __init__(self, kernel_size: int, width: int = 16, depth: int = 2, in_chans: int = 1, num_classes: int = 2):
        super().__init__()
        self.kernel_size, self.depth = kernel_size, depth
        self.stem = nn.Conv2d(in_chans, width, 1)
        self.blocks = nn.Sequential(*[TorusBlock(width, kernel_size) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.stem(x)).mean((-2, -1))))


def matched_torus_width(kernel_size: int, target_params: int, depth: int = 2) -> int:
    """The :class:`TorusNet` width whose parameter count is closest to ``target_params``."""
    return min(range(4, 257), key=lambda w: abs(count_params(TorusNet(kernel_size, w, depth)) - target_params))
