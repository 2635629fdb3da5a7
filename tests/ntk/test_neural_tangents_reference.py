"""Analytic kernels vs neural-tangents 0.6.5 (outputs stored by data/make_neural_tangents_reference.py,
which runs the JAX library in a separate environment)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kernelkit.ntk import analytic
from kernelkit.ntk import nn as knn

REF = np.load(Path(__file__).parent / "data" / "neural_tangents_0.6.5_reference.npz")
ACTS = {"relu": knn.ReLU, "erf": knn.Erf, "identity": knn.Identity}


def _close(k, prefix):
    for g in ("nngp", "ntk"):
        ref = REF[f"{prefix}_{g}"]
        np.testing.assert_allclose(getattr(k, g).numpy(), ref, rtol=1e-6, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_fc(act, param):
    layers = []
    for w in (16, 32, 8):
        layers += [knn.Dense(w, 1.3, 0.1, param), ACTS[act]()]
    net = knn.Sequential(*layers, knn.Dense(1, 1.3, 0.1, param))
    _close(analytic(net, torch.tensor(REF["x1"]), torch.tensor(REF["x2"])), f"fc_{act}_{param}")


@pytest.mark.parametrize("padding", ["same", "valid", "circular"])
@pytest.mark.parametrize("readout", ["flatten", "gap"])
def test_conv(padding, readout):
    pool = knn.Flatten() if readout == "flatten" else knn.GlobalAvgPool()
    net = knn.Sequential(knn.Conv2d(8, 3, padding=padding, bias_std=0.2), knn.ReLU(),
                         knn.Conv2d(8, 3, padding=padding, weight_std=1.2), knn.Erf(), pool, knn.Dense(1, bias_std=0.1))
    _close(analytic(net, torch.tensor(REF["img1"]), torch.tensor(REF["img2"])), f"conv_{padding}_{readout}")
