"""The cheaper paths of the analytic kernels give the values of the plain computation: mirrored blocks of a
symmetric kernel, one self-covariance for identical inputs, the tap sums of the convolution rule and the
correlation of the ReLU rule at zero variance."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from kernelkit.ntk import analytic, core
from kernelkit.ntk import nn as knn


def _x(n: int, seed: int, size: int = 5) -> torch.Tensor:
    return torch.randn(n, 2, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _conv_net(readout: bool) -> knn.Sequential:
    layers = [knn.Conv2d(3, 3, bias_std=0.2), knn.ReLU(), knn.Conv2d(3, 3, stride=2), knn.ReLU(),
              knn.Conv2d(2, 3, padding="circular", weight_std=1.3)]
    return knn.Sequential(*layers, knn.GlobalAvgPool(), knn.Dense(1)) if readout else knn.Sequential(*layers)


@pytest.mark.parametrize("readout", [True, False])
def test_mirrored_blocks_equal_the_computed_ones(readout):
    """``x2 = x1``: blocks below the diagonal are mirror images (sample axes and position sets swapped) of the
    blocks above it. Reference: the same kernel as the first columns of a rectangular kernel, where every block
    is computed (``x2`` has other rows too, so it is not ``x1``)."""
    x, extra = _x(7, 1), _x(2, 2)
    net = _conv_net(readout)
    mirrored = analytic(net, x, batch_size=3)
    computed = analytic(net, x, torch.cat([x, extra]), batch_size=3)
    if not readout:
        assert mirrored.ntk.shape == (7, 7, 3, 3, 3, 3)
    for get in ("nngp", "ntk"):
        torch.testing.assert_close(mirrored.get(get), computed.get(get)[:, :7], rtol=1e-13, atol=1e-15)
    k = mirrored.nngp  # the lower blocks are filled: symmetric with positions swapped
    perm = (1, 0, 4, 5, 2, 3) if not readout else (1, 0)
    torch.testing.assert_close(k, k.permute(*perm), rtol=1e-13, atol=1e-15)


def test_identical_inputs_share_one_self_covariance_with_unchanged_values():
    x = _x(3, 3)
    shared = core.input_kernel(x, x, same_inputs=True)
    separate = core.input_kernel(x, x.clone(), same_inputs=False)
    assert shared.cov2 is shared.cov1 and separate.cov2 is not separate.cov1
    net = knn.Sequential(knn.Conv2d(3, 3, bias_std=0.1), knn.ReLU(), knn.AvgPool2d(2, 1), knn.Conv2d(3, 2),
                         knn.Erf(), knn.Flatten(), knn.Dense(4), knn.ReLU())
    a, b = net.kernel(shared), net.kernel(separate)
    assert a.cov2 is a.cov1  # kept as one tensor through conv, affine, nonlinearities, pooling and readout
    for name in ("nngp", "ntk", "cov1", "cov2"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


def _shift_sum_reference(t: torch.Tensor, k: tuple[int, int], stride: int, padding: str) -> torch.Tensor:
    """Mean over taps of ``t[p·s + δ − before, p'·s + δ − before]`` per axis, by padding both position sets
    explicitly and looping over output positions (plain torch, no shared code besides the pad amounts)."""
    h, w = t.shape[-2:]
    (top, bottom), (left, right) = (core.conv_pads(h, k[0], stride, padding),
                                    core.conv_pads(w, k[1], stride, padding))
    flat = t.reshape(-1, h, w, h, w)
    mode = "circular" if padding == "circular" else "constant"
    # pad the second position set (last two axes), then the first (moved last)
    flat = F.pad(flat.reshape(-1, h, w), (left, right, top, bottom), mode=mode).reshape(
        flat.shape[0], h, w, h + top + bottom, w + left + right)
    flat = flat.permute(0, 3, 4, 1, 2).reshape(-1, h, w)
    padded = F.pad(flat, (left, right, top, bottom), mode=mode)
    hp, wp = h + top + bottom, w + left + right
    padded = padded.reshape(-1, hp, wp, hp, wp).permute(0, 3, 4, 1, 2)  # (B, H', W', H', W') first set first
    oh, ow = (hp - k[0]) // stride + 1, (wp - k[1]) // stride + 1
    out = torch.zeros(padded.shape[0], oh, ow, oh, ow, dtype=t.dtype)
    for i, j, i2, j2 in itertools.product(range(oh), range(ow), range(oh), range(ow)):
        for a, b in itertools.product(range(k[0]), range(k[1])):
            out[:, i, j, i2, j2] += padded[:, i * stride + a, j * stride + b, i2 * stride + a, j2 * stride + b]
    return (out / (k[0] * k[1])).reshape(*t.shape[:-4], oh, ow, oh, ow)


@pytest.mark.parametrize("padding", ["same", "valid", "circular", "symmetric"])
@pytest.mark.parametrize(("kernel_size", "stride"), [((3, 3), 1), ((3, 2), 2), ((1, 4), 1), ((5, 3), 3)])
def test_conv_tap_sums_match_an_explicit_loop(padding, kernel_size, stride):
    g = torch.Generator().manual_seed(4)
    t = torch.randn(2, 3, 5, 6, 5, 6, dtype=torch.float64, generator=g)
    ours = core._shift_sum(t, kernel_size, stride, padding)
    torch.testing.assert_close(ours, _shift_sum_reference(t, kernel_size, stride, padding), rtol=1e-14, atol=1e-15)


def test_relu_correlation_is_zero_where_a_variance_vanishes():
    x = _x(3, 5)
    x[1] = 0.0  # a zero image: no bias, so its covariances are exactly zero after the first conv
    net = knn.Sequential(knn.Conv2d(3, 3), knn.ReLU(), knn.Conv2d(3, 3), knn.ReLU(), knn.GlobalAvgPool(),
                         knn.Dense(1))
    k = analytic(net, x)
    assert torch.isfinite(k.ntk).all() and torch.isfinite(k.nngp).all()
    assert (k.nngp[1] == 0).all() and (k.ntk[1] == 0).all()
    rest = analytic(net, x[[0, 2]])  # the other entries do not depend on the zero image
    torch.testing.assert_close(k.ntk[[0, 2]][:, [0, 2]], rest.ntk, rtol=1e-14, atol=0)
