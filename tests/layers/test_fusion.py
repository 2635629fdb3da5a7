"""The re-parameterization algebra, each function checked against the layers it replaces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.layers.fusion import (
    add_branches,
    dilated_to_dense,
    fold_bn,
    fold_input_bias,
    fold_output_scale,
    pad_kernel,
)
from kernelkit.layers.reparam import DilatedReparamBlock, randomize_for_reparam_check

D = torch.float64


def _random_bn(c: int, g: torch.Generator) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(c).to(D).eval()
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(c, generator=g, dtype=D))
        bn.running_var.copy_(torch.rand(c, generator=g, dtype=D) + 0.3)
        bn.weight.copy_(torch.randn(c, generator=g, dtype=D))
        bn.bias.copy_(torch.randn(c, generator=g, dtype=D))
    return bn


@pytest.mark.parametrize("groups,bias", [(1, True), (4, False), (8, True)])
def test_fold_bn_equals_conv_then_bn(groups: int, bias: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 9, 7, generator=g, dtype=D)
    w = torch.randn(8, 8 // groups, 3, 3, generator=g, dtype=D)
    b = torch.randn(8, generator=g, dtype=D) if bias else None
    bn = _random_bn(8, g)
    want = bn(F.conv2d(x, w, b, padding=1, groups=groups))
    w2, b2 = fold_bn(w, b, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    torch.testing.assert_close(F.conv2d(x, w2, b2, padding=1, groups=groups), want)


def test_fold_bn_on_linear_weight() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 6, generator=g, dtype=D)
    w, b = torch.randn(4, 6, generator=g, dtype=D), torch.randn(4, generator=g, dtype=D)
    bn = nn.BatchNorm1d(4).to(D).eval()
    with torch.no_grad():
        bn.running_mean.normal_(generator=g)
        bn.running_var.uniform_(0.5, 2.0, generator=g)
    w2, b2 = fold_bn(w, b, bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)
    torch.testing.assert_close(F.linear(x, w2, b2), bn(F.linear(x, w, b)))


@pytest.mark.parametrize("k,r", [(3, 2), (3, 5), (5, 1), (7, 2), (5, 3)])
def test_dilated_to_dense_equals_dilated_conv(k: int, r: int) -> None:
    g = torch.Generator().manual_seed(k * 10 + r)
    x = torch.randn(1, 4, 23, 19, generator=g, dtype=D)
    w = torch.randn(4, 1, k, k, generator=g, dtype=D)
    eq = (k - 1) * r + 1
    dense = dilated_to_dense(w, r)
    assert dense.shape == (4, 1, eq, eq)
    torch.testing.assert_close(F.conv2d(x, dense, padding=eq // 2, groups=4),
                               F.conv2d(x, w, padding=eq // 2, dilation=r, groups=4))
    # the transposed-conv formulation of the paper gives the same tensor
    torch.testing.assert_close(dense, F.conv_transpose2d(w, torch.ones(1, 1, 1, 1, dtype=D), stride=r))


def test_dilated_to_dense_dense_kernel() -> None:
    w = torch.randn(6, 3, 3, 3, dtype=D)
    x = torch.randn(1, 3, 12, 12, dtype=D)
    torch.testing.assert_close(F.conv2d(x, dilated_to_dense(w, 3), padding=3), F.conv2d(x, w, padding=3, dilation=3))


def test_pad_kernel_keeps_same_output() -> None:
    x = torch.randn(2, 3, 11, 11, dtype=D)
    w = torch.randn(3, 1, 3, 3, dtype=D)
    torch.testing.assert_close(F.conv2d(x, pad_kernel(w, 9), padding=4, groups=3), F.conv2d(x, w, padding=1, groups=3))
    with pytest.raises(ValueError, match="parity"):
        pad_kernel(w, 8)
    with pytest.raises(ValueError, match="smaller"):
        pad_kernel(w, 1)


def test_add_branches_equals_sum_of_outputs() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 15, 15, generator=g, dtype=D)
    branches = [(torch.randn(2, 1, k, k, generator=g, dtype=D), torch.randn(2, generator=g, dtype=D))
                for k in (1, 3, 7)]
    want = sum(F.conv2d(x, w, b, padding=w.shape[-1] // 2, groups=2) for w, b in branches)
    w, b = add_branches(branches)
    assert w.shape[-1] == 7
    torch.testing.assert_close(F.conv2d(x, w, b, padding=3, groups=2), want)
    with pytest.raises(ValueError):
        add_branches([])


def test_fold_input_bias_and_output_scale() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 8, generator=g, dtype=D)
    w, b = torch.randn(5, 8, generator=g, dtype=D), torch.randn(5, generator=g, dtype=D)
    beta, s = torch.randn(8, generator=g, dtype=D), torch.randn(5, generator=g, dtype=D)
    torch.testing.assert_close(F.linear(x, w, fold_input_bias(w, b, beta)), F.linear(x + beta, w, b))
    torch.testing.assert_close(F.linear(x, w, fold_input_bias(w, None, beta)), F.linear(x + beta, w))
    w2, b2 = fold_output_scale(w, b, s)
    torch.testing.assert_close(F.linear(x, w2, b2), s * F.linear(x, w, b))


@pytest.mark.parametrize("kernel_size", [5, 7, 9, 11, 13, 15, 17])
def test_drb_reparameterize_equivalent(kernel_size: int) -> None:
    torch.manual_seed(kernel_size)
    block = randomize_for_reparam_check(DilatedReparamBlock(6, kernel_size), seed=kernel_size).eval()
    x = torch.randn(2, 6, 21, 18)
    with torch.no_grad():
        want = block(x)
        kernel, bias = block.equivalent_kernel_bias()  # non-destructive
        assert hasattr(block, "origin_bn")
        via_kernel = F.conv2d(x.double(), kernel, bias, padding=kernel_size // 2, groups=6)
        torch.testing.assert_close(via_kernel.float(), want, rtol=1e-5, atol=1e-5)
        block.reparameterize()
        block.reparameterize()  # idempotent
        got = block(x)
    assert [n for n, _ in block.named_parameters()] == ["lk_origin.weight", "lk_origin.bias"]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    assert (got - want).abs().max() / want.abs().max() < 1e-5


def test_drb_branch_table_and_bad_kernel() -> None:
    block = DilatedReparamBlock(4, 13)
    assert block.branches == [(5, 1), (7, 2), (3, 3), (3, 4), (3, 5)]
    for k, r in block.branches:
        assert (k - 1) * r + 1 <= 13
    with pytest.raises(ValueError, match="kernel_size"):
        DilatedReparamBlock(4, 4)


def test_drb_fast_depthwise_path_matches_plain_conv_with_gradients() -> None:
    from kernelkit.layers.reparam import use_fast_depthwise

    torch.manual_seed(0)
    block = randomize_for_reparam_check(DilatedReparamBlock(8, 13), seed=2).train()
    x = torch.randn(2, 8, 24, 24)
    results = []
    for fast in (True, False):
        xi = x.clone().requires_grad_(True)
        block.zero_grad()
        with use_fast_depthwise(fast):
            y = block(xi)
        (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
        grads = (block.lk_origin.weight.grad.clone(), block.dil_conv_k3_5.weight.grad.clone())
        results.append((y.detach(), xi.grad, *grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_fast_depthwise_is_a_constructor_argument_and_a_scoped_switch(monkeypatch) -> None:
    from kernelkit.layers import reparam

    calls: list[int] = []
    real = reparam.depthwise_conv2d
    monkeypatch.setattr(reparam, "depthwise_conv2d", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    x = torch.randn(1, 4, 12, 12)
    fast, plain = DilatedReparamBlock(4, 7).eval(), DilatedReparamBlock(4, 7, fast_depthwise=False).eval()
    plain.load_state_dict(fast.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-5)
        n = len(calls)
        assert n > 0  # only the block built with the fast path used it
        with reparam.use_fast_depthwise(False):
            fast(x)
        assert len(calls) == n
        fast(x)  # the setting is back after the block
        assert len(calls) > n
    plain.reparameterize()
    assert plain.lk_origin.fast is False  # the merged conv keeps the block's choice
