"""The base-session network: any registered model serves as the feature backbone of the cosine classifier."""

from __future__ import annotations

import pytest
import torch

from kernelkit.fscil import COSINE_TEMPERATURE
from kernelkit.models import list_models


@pytest.mark.parametrize("name", ["unireplknet_a"])
def test_other_model_families_serve_as_feature_extractors(name: str) -> None:
    from kernelkit.fscil.training import CosineClassifierNet, build_backbone

    if name not in list_models():
        pytest.skip(f"{name} is not registered")
    backbone, dim, repeat = build_backbone(name, in_chans=1)
    net = CosineClassifierNet(backbone, dim, 5, COSINE_TEMPERATURE, (0.5,), (0.5,), repeat).eval()
    with torch.no_grad():
        logits = net(torch.rand(2, 1, 32, 32))
    assert net.features(torch.rand(2, 1, 32, 32)).shape == (2, dim)
    assert logits.shape == (2, 5) and float(logits.abs().max()) <= COSINE_TEMPERATURE + 1e-4
