"""Analytic kernels vs Monte-Carlo averages of finite networks.

With one hidden layer (any width) the expected NNGP and NTK of the finite network equal the
infinite-width values exactly (the readout averages i.i.d. hidden units), so the Monte-Carlo mean is
unbiased and the tolerance is purely statistical: 5 standard errors of the sample mean per entry.
"""

from __future__ import annotations

import pytest
import torch

from kernelkit.ntk import analytic, monte_carlo
from kernelkit.ntk import nn as knn

N_SAMPLES = 32
Z = 5.0


def _assert_within(mc, exact):
    for name in ("nngp", "ntk"):
        est, sem, ref = getattr(mc, name), getattr(mc, f"{name}_sem"), getattr(exact, name)
        err = (est - ref).abs()
        assert (err <= Z * sem + 1e-9).all(), (name, float((err / (sem + 1e-12)).max()))


HIDDEN = {
    "relu": knn.ReLU,
    "erf": knn.Erf,
    "leaky": lambda: knn.LeakyReLU(0.2),
    "abs": knn.Abs,
    "identity": knn.Identity,
    "tanh_quadrature": lambda: knn.Elementwise(torch.tanh),
}


@pytest.mark.parametrize("act", sorted(HIDDEN))
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_fc_one_hidden_layer(act, param):
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def make():
        return knn.Sequential(knn.Dense(64, 1.4, 0.3, param), HIDDEN[act](), knn.Dense(16, 1.1, 0.2, param)).double()

    mc = monte_carlo(make, x, n_samples=N_SAMPLES)
    _assert_within(mc, analytic(make(), x))


@pytest.mark.parametrize(("padding", "readout"), [("same", "flatten"), ("valid", "gap"), ("circular", "gap")])
def test_conv_one_hidden_layer(padding, readout):
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def make():
        pool = knn.Flatten() if readout == "flatten" else knn.GlobalAvgPool()
        return knn.Sequential(knn.Conv2d(8, 3, padding=padding, bias_std=0.2), knn.ReLU(), pool,
                              knn.Dense(8, bias_std=0.1)).double()

    mc = monte_carlo(make, x, n_samples=N_SAMPLES)
    _assert_within(mc, analytic(make(), x))


def test_residual_one_hidden_layer():
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def make():
        return knn.Sequential(knn.Dense(64, bias_std=0.1), knn.Residual(knn.Erf(), knn.Dense(64, bias_std=0.1)),
                              knn.Dense(16)).double()

    mc = monte_carlo(make, x, n_samples=N_SAMPLES)
    _assert_within(mc, analytic(make(), x))


def test_wide_deep_net_close_to_limit():
    """Depth 3 has an O(1/width) finite-width bias; at width 512 it is well below 5% of the kernel."""
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def make():
        return knn.Sequential(knn.Dense(512, bias_std=0.1), knn.ReLU(), knn.Dense(512, bias_std=0.1), knn.ReLU(),
                              knn.Dense(4, bias_std=0.1)).double()

    mc = monte_carlo(make, x, n_samples=16)
    ref = analytic(make(), x)
    assert ((mc.ntk - ref.ntk).abs() <= Z * mc.ntk_sem + 0.05 * ref.ntk.abs().max()).all()
