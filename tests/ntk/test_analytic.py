"""Analytic kernels vs the closed forms of the spec (independent numpy recursion) and basic properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kernelkit.ntk import analytic
from kernelkit.ntk import nn as knn


# ----------------------------------------------------------------------------- independent reference
def _relu_pair(k11, k22, k12):
    rho = np.clip(k12 / np.sqrt(k11 * k22), -1, 1)
    th = np.arccos(rho)
    e = np.sqrt(k11 * k22) / (2 * np.pi) * (np.sin(th) + (np.pi - th) * rho)
    return e, (np.pi - th) / (2 * np.pi)


def _erf_pair(k11, k22, k12):
    p = (1 + 2 * k11) * (1 + 2 * k22)
    return 2 / np.pi * np.arcsin(2 * k12 / np.sqrt(p)), 4 / np.pi / np.sqrt(p - 4 * k12**2)


def _identity_pair(k11, k22, k12):
    return k12, np.ones_like(k12)


def reference_fc(x1, x2, widths, pair, w_std, b_std, param):
    """Prop. 1 / Thm. 1 of the paper written out directly (spec §1), numpy float64."""
    n0 = x1.shape[1]
    bv = 0.0 if b_std is None else b_std**2
    one = 0.0 if b_std is None else 1.0
    k12 = w_std**2 * x1 @ x2.T / n0 + bv
    k11 = w_std**2 * (x1 * x1).sum(1) / n0 + bv
    k22 = w_std**2 * (x2 * x2).sum(1) / n0 + bv
    ntk = k12.copy() if param == "ntk" else x1 @ x2.T + one
    for width in widths:  # hidden layers: nonlinearity then Dense
        e12, d12 = pair(k11[:, None], k22[None, :], k12)
        e11, _ = pair(k11, k11, k11)
        e22, _ = pair(k22, k22, k22)
        k12, k11, k22 = w_std**2 * e12 + bv, w_std**2 * e11 + bv, w_std**2 * e22 + bv
        ntk = k12 + w_std ** 2 * d12 * ntk if param == "ntk" else width * e12 + w_std ** 2 * d12 * ntk + one
    return k12, ntk


ACTS = {"relu": (knn.ReLU, _relu_pair), "erf": (knn.Erf, _erf_pair), "identity": (knn.Identity, _identity_pair)}


def _fc(widths, act, w_std, b_std, param, out=1):
    layers = []
    for w in widths:
        layers += [knn.Dense(w, w_std, b_std, param), ACTS[act][0]()]
    return knn.Sequential(*layers, knn.Dense(out, w_std, b_std, param))


@pytest.mark.parametrize("act", sorted(ACTS))
@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("b_std", [None, 0.1])
def test_fc_matches_closed_form(act, param, b_std):
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=(7, 5)), rng.normal(size=(4, 5))
    widths, w_std = [16, 32, 8], 1.3
    net = _fc(widths, act, w_std, b_std, param)
    k = analytic(net, torch.tensor(x1), torch.tensor(x2))
    nngp, ntk = reference_fc(x1, x2, widths, ACTS[act][1], w_std, b_std, param)
    assert k.nngp.dtype == torch.float64
    np.testing.assert_allclose(k.nngp.numpy(), nngp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(k.ntk.numpy(), ntk, rtol=1e-10, atol=1e-12)


def test_leaky_relu_and_abs_match_quadrature():
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    for layer, fn in ((knn.LeakyReLU(0.2), lambda t: torch.nn.functional.leaky_relu(t, 0.2)),
                      (knn.Abs(), torch.abs)):
        closed = analytic(knn.Sequential(knn.Dense(8, bias_std=0.3), layer, knn.Dense(1)), x)
        quad = analytic(knn.Sequential(knn.Dense(8, bias_std=0.3), knn.Elementwise(fn, order=200), knn.Dense(1)), x)
        # Gauss-Hermite converges slowly at a kink: compare loosely, the closed form is checked by Monte Carlo
        np.testing.assert_allclose(closed.nngp, quad.nngp, rtol=2e-3, atol=2e-3)
        np.testing.assert_allclose(closed.ntk, quad.ntk, rtol=2e-2, atol=2e-2)


def test_quadrature_matches_erf_closed_form():
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))

    def net(act):
        return knn.Sequential(knn.Dense(8, 1.5, 0.2), act, knn.Dense(8, 1.5, 0.2), act, knn.Dense(1))

    closed = analytic(net(knn.Erf()), x)
    quad = analytic(net(knn.Elementwise(torch.erf, order=192)), x)
    np.testing.assert_allclose(closed.nngp, quad.nngp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(closed.ntk, quad.ntk, rtol=1e-10, atol=1e-12)


def test_erf_parameters_and_torch_activations():
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    closed = analytic(knn.Sequential(knn.Dense(4), knn.Erf(0.7, 1.8, 0.3), knn.Dense(1)), x)
    quad = analytic(knn.Sequential(knn.Dense(4), knn.Elementwise(lambda t: 0.7 * torch.erf(1.8 * t) + 0.3, order=192),
                                   knn.Dense(1)), x)
    np.testing.assert_allclose(closed.ntk, quad.ntk, rtol=1e-9)
    np.testing.assert_allclose(closed.nngp, quad.nngp, rtol=1e-9)
    tanh_net = torch.nn.Sequential(knn.Dense(4), torch.nn.Tanh(), knn.Dense(1))
    quad_tanh = analytic(knn.Sequential(knn.Dense(4), knn.Elementwise(torch.tanh), knn.Dense(1)), x)
    np.testing.assert_allclose(analytic(tanh_net, x).ntk, quad_tanh.ntk, rtol=1e-12)


def test_psd_symmetric_ntk_above_nngp_and_depth_one():
    x = torch.randn(20, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for act in ACTS:
        k = analytic(_fc([32, 32], act, 1.0, 0.1, "ntk"), x)
        for m in (k.nngp, k.ntk):
            assert torch.allclose(m, m.T, atol=1e-12)
            assert torch.linalg.eigvalsh(m).min() > -1e-10
        assert (k.ntk.diagonal() >= k.nngp.diagonal() - 1e-12).all()
    one = analytic(knn.Sequential(knn.Dense(1, 1.2, 0.3)), x)
    torch.testing.assert_close(one.ntk, one.nngp, rtol=0, atol=0)
    torch.testing.assert_close(one.nngp, 1.44 * x @ x.T / 6 + 0.09)


def test_conv_flatten_equals_dense_for_1x1_images():
    """A conv net on 1x1 images is the fully connected net: an independent check of the conv rule."""
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    # circular padding on a 1x1 image: every tap sees the one pixel
    conv = knn.Sequential(knn.Conv2d(8, 3, padding="circular", bias_std=0.2), knn.ReLU(),
                          knn.Conv2d(8, 1, bias_std=0.2), knn.ReLU(), knn.Flatten(), knn.Dense(1, bias_std=0.2))
    fc = _fc([8, 8], "relu", 1.0, 0.2, "ntk")
    a, b = analytic(conv, x[:, :, None, None]), analytic(fc, x)
    torch.testing.assert_close(a.ntk, b.ntk, rtol=1e-12, atol=1e-12)


def _conv_brute_nngp(x, ksize, padding):
    """First conv layer covariance by explicit patch extraction (no weight sharing needed: one layer)."""
    import torch.nn.functional as F

    kh = ksize
    pad = ((kh - 1) // 2, kh - 1 - (kh - 1) // 2)
    if padding == "same":
        xp = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    elif padding == "circular":
        xp = F.pad(x, (pad[0], pad[1], pad[0], pad[1]), mode="circular")
    else:
        xp = x
    patches = F.unfold(xp, kh)  # (N, C*k*k, L)
    c = x.shape[1] * kh * kh
    return torch.einsum("ncp,mcq->nmpq", patches, patches) / c


@pytest.mark.parametrize("padding", ["same", "valid", "circular"])
def test_conv_first_layer_and_gap_by_brute_force(padding):
    x = torch.randn(3, 2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    net = knn.Sequential(knn.Conv2d(4, 3, padding=padding), knn.GlobalAvgPool())
    k = analytic(net, x)
    brute = _conv_brute_nngp(x, 3, padding)  # (N, N, L, L)
    torch.testing.assert_close(k.nngp, brute.mean((2, 3)), rtol=1e-12, atol=1e-12)
    flat = analytic(knn.Sequential(knn.Conv2d(4, 3, padding=padding), knn.Flatten()), x)
    torch.testing.assert_close(flat.nngp, brute.diagonal(dim1=2, dim2=3).mean(-1), rtol=1e-12, atol=1e-12)


def test_batching_gives_identical_kernels():
    x = torch.randn(11, 2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    net = knn.Sequential(knn.Conv2d(4, 3, bias_std=0.1), knn.Erf(), knn.Conv2d(4, 3, stride=2), knn.ReLU(),
                         knn.GlobalAvgPool(), knn.Dense(1))
    full, part = analytic(net, x), analytic(net, x, batch_size=4)
    torch.testing.assert_close(full.ntk, part.ntk, rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(full.nngp, part.nngp, rtol=1e-13, atol=1e-14)
    only = analytic(net, x, x[:3], get="ntk")
    assert only.nngp is None and only.ntk.shape == (11, 3)
    for get in ("ntk", "nngp"):  # one kernel requested, several blocks (every block must be kept)
        blocked = analytic(net, x, get=get, batch_size=3).get(get)
        torch.testing.assert_close(blocked, full.get(get), rtol=1e-13, atol=1e-14)


def test_residual_rule():
    x = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    net = knn.Sequential(knn.Dense(8, bias_std=0.1), knn.Residual(knn.ReLU(), knn.Dense(8, bias_std=0.1)),
                         knn.ReLU(), knn.Dense(1))
    plain = knn.Sequential(knn.Dense(8, bias_std=0.1))
    branch = knn.Sequential(knn.Dense(8, bias_std=0.1), knn.ReLU(), knn.Dense(8, bias_std=0.1))
    k_res = analytic(knn.Sequential(*list(net)[:2]), x)
    a, b = analytic(plain, x), analytic(branch, x)
    torch.testing.assert_close(k_res.nngp, a.nngp + b.nngp)
    torch.testing.assert_close(k_res.ntk, a.ntk + b.ntk)
    assert analytic(net, x).ntk.shape == (6, 6)
    with pytest.raises(ValueError, match="correlated"):
        analytic(knn.Sequential(knn.Dense(8), knn.ParallelSum(knn.ReLU(), knn.Erf())), x)


def test_errors_are_clear():
    x = torch.randn(4, 3, dtype=torch.float64)
    net = _fc([8], "relu", 1.0, None, "ntk")
    with pytest.raises(ValueError, match="mismatched feature"):
        analytic(net, x, torch.randn(4, 5))
    bad = x.clone()
    bad[1, 2] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        analytic(net, bad)
    with pytest.raises(ValueError, match="2-D"):
        analytic(net, torch.randn(4, 3, 2, 2))
    with pytest.raises(ValueError, match="2-D"):
        net(torch.randn(4, 3, 2))
    net(x.float())  # materializes in_features = 3
    with pytest.raises(ValueError, match="expects 3 input features, got 5"):
        analytic(net, torch.randn(4, 5))
    with pytest.raises(knn.UnsupportedLayerError, match="BatchNorm1d"):
        analytic(torch.nn.Sequential(knn.Dense(4), torch.nn.BatchNorm1d(4)), x)
    with pytest.raises(knn.UnsupportedLayerError, match="Linear.*Dense"):
        analytic(torch.nn.Sequential(torch.nn.Linear(3, 4)), x)
    with pytest.raises(ValueError, match="Gaussian"):
        analytic(knn.Sequential(knn.Dense(4), knn.ReLU(), knn.ReLU()), x)
    with pytest.raises(ValueError, match="parametrization"):
        knn.Dense(3, parametrization="mup")
