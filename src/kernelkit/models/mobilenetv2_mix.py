"""MobileNetV2-style network whose depthwise kernel set is a parameter (the MixConv paper's ablation).

Every depthwise conv of MobileNetV2 (Sandler et al. 2018) is replaced by a ``MixConv2d`` with the same
kernel set — ``(3,)`` is plain MobileNetV2, ``(9,)`` a single 9x9, ``(3, 5, 7, 9)`` MixConv3579 — and
nothing else changes (widths, expansion 6, ReLU, no SE), as in the paper's Fig. 4/5 ablation.
``width`` scales channels by the reference rounding rule; ``depth`` scales the repeats of each row
(at least one); ``small_input=True`` uses stride 1 in the stem and the first stride-2 row (CIFAR-sized
inputs), which keeps 4x4 maps at the end of a 32x32 input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from kernelkit.layers.mixconv import _parse_kernel_sizes
from kernelkit.models._registry import register_model
from kernelkit.models.mixnet import BlockSpec, build_stages, init_weights, round_width

# MobileNetV2 rows: expansion t, out channels c, repeats n, stride s (Sandler et al., Table 2)
MOBILENETV2_ROWS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)

__all__ = ["MobileNetV2Mix", "mobilenetv2_mix", "mobilenetv2_mix_stages", "MOBILENETV2_ROWS"]


def mobilenetv2_mix_stages(kernel_sizes: Sequence[int], width: float = 1.0, depth: float = 1.0,
                           small_input: bool = False) -> tuple[tuple[BlockSpec, ...], ...]:
    """Block table of the network: one stage per MobileNetV2 row, depthwise kernels ``kernel_sizes`` everywhere."""
    ks = _parse_kernel_sizes(tuple(kernel_sizes))
    stages = []
    for i, (t, c, n, s) in enumerate(MOBILENETV2_ROWS):
        stride = 1 if small_input and i == 1 else s
        reps = max(1, math.ceil(n * depth))
        kind: Literal["ds", "ir"] = "ds" if t == 1 else "ir"
        stages.append((BlockSpec(kind, reps, ks, round_width(c, width), stride, t, act="relu"),))
    return tuple(stages)


class MobileNetV2Mix(nn.Module):
    """Stem conv → MobileNetV2 inverted residuals with MixConv depthwise → 1x1 head → pool → classifier.

    ``num_classes=0`` returns pooled ``num_features`` features.
    """

    def __init__(self, kernel_sizes: Sequence[int] = (3,), num_classes: int = 1000, in_chans: int = 3,
                 width: float = 1.0, depth: float = 1.0, small_input: bool = False, head: int = 1280,
                 drop_rate: float = 0.2, impl: str = "auto"):
        super().__init__()
        if num_classes < 0 or in_chans < 1 or width <= 0 or depth <= 0:
            raise ValueError(f"MobileNetV2Mix: need num_classes >= 0, in_chans >= 1, width > 0, depth > 0; got "
                             f"{num_classes}, {in_chans}, {width}, {depth}")
        self.kernel_sizes = tuple(kernel_sizes)
        stem = round_width(32, width)
        self.conv_stem = nn.Conv2d(in_chans, stem, 3, 1 if small_input else 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act1 = nn.ReLU(inplace=True)
        self.stages_spec = mobilenetv2_mix_stages(kernel_sizes, width, depth, small_input)
        self.blocks, self.feature_info = build_stages(stem, self.stages_spec, impl)
        last = int(self.feature_info[-1]["num_chs"])
        self.num_features = max(head, round_width(head, width)) if width > 1 else head
        self.conv_head = nn.Conv2d(last, self.num_features, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(self.num_features)
        self.act2 = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(drop_rate)
        self.classifier: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        init_weights(self)
        if isinstance(self.classifier, nn.Linear):  # MobileNetV2's classifier init: N(0, 0.01), zero bias
            nn.init.normal_(self.classifier.weight, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.act1(self.bn1(self.conv_stem(x)))
        x = self.act2(self.bn2(self.conv_head(self.blocks(x))))
        return self.classifier(self.dropout(x.mean((2, 3))))


@register_model
def mobilenetv2_mix(kernel_sizes: Sequence[int] = (3,), num_classes: int = 1000, in_chans: int = 3,
                    width: float = 1.0, depth: float = 1.0, small_input: bool = False, head: int = 1280,
                    drop_rate: float = 0.2, impl: str = "auto") -> MobileNetV2Mix:
    """MobileNetV2 with every depthwise conv a MixConv over ``kernel_sizes`` (``(3,)`` = MobileNetV2)."""
    return MobileNetV2Mix(kernel_sizes, num_classes, in_chans, width, depth, small_input, head, drop_rate, impl)
