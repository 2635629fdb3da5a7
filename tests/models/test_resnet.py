"""ResNet backbones: published parameter counts, pooled features with num_classes=0."""

from __future__ import annotations

import pytest
import torch

from kernelkit.models import create_model, list_models


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_resnet18_matches_the_reference_parameter_count() -> None:
    # torchvision's resnet18 (ImageNet stem, 1000 classes) has 11,689,512 parameters
    assert _params(create_model("resnet18", num_classes=1000)) == 11_689_512


def test_resnet20_is_the_cifar_variant() -> None:
    m = create_model("resnet20", num_classes=10)
    assert round(_params(m) / 1e6, 2) == 0.27  # He et al. 2016, Table 6: 0.27M
    assert [b.conv2.out_channels for b in m.stages] == [16] * 3 + [32] * 3 + [64] * 3


@pytest.mark.parametrize(("name", "size", "dim"), [("resnet20", 32, 64), ("resnet8", 28, 64), ("resnet18", 84, 512)])
def test_num_classes_zero_gives_pooled_features(name: str, size: int, dim: int) -> None:
    assert name in list_models("resnet*")
    m = create_model(name, num_classes=0, in_chans=1).eval()
    assert m.num_features == dim
    with torch.no_grad():
        assert m(torch.randn(2, 1, size, size)).shape == (2, dim)


def test_bad_cifar_depth_is_reported() -> None:
    from kernelkit.models.resnet import _cifar_resnet

    with pytest.raises(ValueError, match="6n \\+ 2"):
        _cifar_resnet(21, 16, 3, 0)
