"""ResNets used by few-shot class-incremental learning.

* CIFAR ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2):
  a 3x3 stem, three stages of ``n`` basic blocks with ``w, 2w, 4w`` channels (16/32/64 for
  ResNet-20), depth ``6n + 2``; downsampling shortcuts are 1x1 conv + BN. TEEN/CEC use ResNet-20
  on CIFAR-100.
* ResNet-18 with the ImageNet stem (7x7/2 conv + 3x3/2 max-pool), as TEEN uses on miniImageNet
  (84x84) and CUB-200.

``num_classes=0`` returns the globally pooled features (``model.num_features`` wide).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from kernelkit.models._registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_chs != out_chs:
            self.shortcut = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs))

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet(nn.Module):
    """Stem, stages of basic blocks, global average pooling, optional linear head."""

    def __init__(self, stem: nn.Module, stem_chs: int, widths: list[int], blocks: list[int],
                 num_classes: int = 0) -> None:
        super().__init__()
        self.stem = stem
        layers, chs = [], stem_chs
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(chs, w, stride=2 if (i > 0 and j == 0) else 1))
                chs = w
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = chs
        self.head: nn.Module = nn.Linear(chs, num_classes) if num_classes > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features ``(N, num_features)``."""
        return self.pool(self.stages(self.stem(x))).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


def _cifar_resnet(depth: int, width: int, in_chans: int, num_classes: int) -> ResNet:
    if (depth - 2) % 6 != 0 or depth < 8:
        raise ValueError(f"CIFAR ResNet depth must be 6n + 2 (8, 14, 20, 32, ...), got {depth}")
    n = (depth - 2) // 6
    stem = nn.Sequential(nn.Conv2d(in_chans, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
    return ResNet(stem, width, [width, 2 * width, 4 * width], [n, n, n], num_classes)


# CIFAR variants as data: name -> depth (6n + 2; n basic blocks per stage).
CIFAR_RESNET_DEPTHS: dict[str, int] = {
    "resnet8": 8,  # one block per stage: a small backbone for CPU runs and tests
    "resnet20": 20,  # 16/32/64 channels, 64 features: TEEN's CIFAR-100 backbone
    "resnet32": 32,
}


def _cifar_variant(name: str, depth: int) -> Callable[..., ResNet]:
    def builder(num_classes: int = 0, in_chans: int = 3, width: int = 16) -> ResNet:
        return _cifar_resnet(depth, width, in_chans, num_classes)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = f"ResNet-{depth}, CIFAR variant (stage widths width, 2·width, 4·width)."
    return builder


for _name, _depth in CIFAR_RESNET_DEPTHS.items():
    globals()[_name] = register_model(_cifar_variant(_name, _depth))


@register_model
def resnet18(num_classes: int = 0, in_chans: int = 3) -> ResNet:
    """ResNet-18 with the ImageNet stem (7x7/2 conv, 3x3/2 max-pool), 512 features."""
    stem = nn.Sequential(nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1))
    return ResNet(stem, 64, [64, 128, 256, 512], [2, 2, 2, 2], num_classes)
