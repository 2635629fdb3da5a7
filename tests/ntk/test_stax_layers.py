"""Pooling, normalization, dropout and named activations with infinite-width rules; JAX SAME padding.

Values are checked against neural-tangents 0.6.5 (outputs stored by data/make_neural_tangents_layers_reference.py,
which runs the JAX library in a separate environment), finite layers against plain torch ops, and the kernels
against Monte-Carlo averages of wide finite networks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.ntk import analytic, core, monte_carlo
from kernelkit.ntk import nn as knn

REF = np.load(Path(__file__).parent / "data" / "neural_tangents_0.6.5_layers.npz")
IMG8, IMG_A, IMG_B = (torch.tensor(REF[k]) for k in ("img8", "img_a", "img_b"))


def _close(k, prefix, rtol=1e-6):
    for g in ("nngp", "ntk"):
        ref = REF[f"{prefix}_{g}"]
        np.testing.assert_allclose(getattr(k, g).numpy(), ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def _head() -> list[nn.Module]:
    return [knn.Conv2d(8, 3, bias_std=0.2), knn.ReLU(), knn.Conv2d(8, 3, weight_std=1.2, bias_std=0.1)]


def _tail() -> list[nn.Module]:
    return [knn.Flatten(), knn.Dense(1, bias_std=0.1)]


# ------------------------------------------------------------------------------------ SAME padding
@pytest.mark.parametrize("padding", ["same", "circular"])
def test_stride2_conv_equals_neural_tangents(padding):
    net = knn.Sequential(knn.Conv2d(8, 3, stride=2, padding=padding), knn.ReLU(), knn.Flatten(), knn.Dense(1))
    _close(analytic(net, IMG8), f"stride2_{padding}")


def test_same_padding_is_jax_same_for_every_stride():
    """Extra row/column at the bottom/right: F.conv2d on the input padded (0, 1, 0, 1) by hand."""
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    conv = knn.Conv2d(5, 3, stride=2, padding="same", bias_std=0.3).double()
    out = conv(x)
    ws, bs = conv.scales()
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2) * ws + bs * conv.bias[:, None, None]
    assert out.shape == (2, 5, 4, 4)
    torch.testing.assert_close(out, ref)
    assert core.conv_pads(8, 3, 2, "same") == (0, 1)
    assert core.conv_pads(7, 3, 2, "same") == (1, 1)
    assert core.conv_pads(8, 4, 1, "same") == (1, 2)
    assert core.conv_pads(8, 2, 2, "same") == (0, 0)


def test_symmetric_padding_is_torch_padding():
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    conv = knn.Conv2d(4, 3, stride=2, padding="symmetric", parametrization="standard").double()
    out = conv(x)
    ref = F.conv2d(x, conv.weight, stride=2, padding=1)
    torch.testing.assert_close(out, ref)
    # the two paddings give different stride-2 kernels, and the same ones at stride 1
    same, sym = (knn.Sequential(knn.Conv2d(4, 3, stride=s, padding=p), knn.ReLU(), knn.Flatten(), knn.Dense(1))
                 for s, p in ((2, "same"), (2, "symmetric")))
    assert not torch.allclose(analytic(same, IMG8).nngp, analytic(sym, IMG8).nngp)
    s1 = [knn.Sequential(knn.Conv2d(4, 3, padding=p), knn.ReLU(), knn.Flatten(), knn.Dense(1))
          for p in ("same", "symmetric")]
    torch.testing.assert_close(analytic(s1[0], IMG8).ntk, analytic(s1[1], IMG8).ntk)


# ------------------------------------------------------------------------------- neural-tangents
POOLS = {
    "avgpool_valid": lambda: knn.AvgPool2d(2, padding="valid"),
    "avgpool_same": lambda: knn.AvgPool2d(3, 2, padding="same"),
    "avgpool_circular": lambda: knn.AvgPool2d(3, 2, padding="circular"),
    "avgpool_stride1": lambda: knn.AvgPool2d(3, 1, padding="same"),
    "layernorm": knn.LayerNorm,
}
ACTS = {
    "gelu": knn.Gelu,
    "tanh": lambda: knn.Tanh(order=32),
    "sigmoid": lambda: knn.Sigmoid(order=32),
    "softplus": lambda: knn.Softplus(order=32),
}


@pytest.mark.parametrize("name", sorted(POOLS))
def test_linear_layers_equal_neural_tangents(name):
    net = knn.Sequential(*_head(), POOLS[name](), knn.ReLU(), *_tail())
    _close(analytic(net, IMG_A, IMG_B), name)


@pytest.mark.parametrize("name", sorted(ACTS))
def test_activations_equal_neural_tangents(name):
    net = knn.Sequential(*_head(), ACTS[name](), *_tail())
    _close(analytic(net, IMG_A, IMG_B), name)


def test_dropout_equals_neural_tangents():
    head = _head()
    net = knn.Sequential(*head[:2], knn.Dropout(0.2), head[2], knn.ReLU(), *_tail())
    _close(analytic(net, IMG_A), "dropout_self")
    _close(analytic(net, IMG_A, IMG_A.clone()), "dropout_self")  # equal inputs count as the same samples
    _close(analytic(net, IMG_A, IMG_B), "dropout")
    net.eval()  # identity at eval: the kernel of the network without dropout
    plain = knn.Sequential(*head, knn.ReLU(), *_tail())
    torch.testing.assert_close(analytic(net, IMG_A).ntk, analytic(plain, IMG_A).ntk)


def _attention(mechanism: str, out: int = 8, key: int = 8, val: int = 8, heads: int = 2) -> knn.GlobalSelfAttention:
    return knn.GlobalSelfAttention(out, key, val, heads, W_key_std=1.1, W_value_std=1.2, W_query_std=0.9,
                                   W_out_std=0.8, b_std=0.1, attention_mechanism=mechanism)


@pytest.mark.parametrize("mechanism", ["softmax", "identity", "abs", "relu"])
def test_self_attention_equals_neural_tangents(mechanism):
    net = knn.Sequential(_head()[0], _attention(mechanism), knn.ReLU(), *_tail())
    _close(analytic(net, IMG_A, IMG_B), f"attention_{mechanism}")


def test_self_attention_forward_equals_neural_tangents_apply():
    layer = _attention("softmax", out=5, key=4, val=3, heads=2).double()
    layer(IMG_A)  # materialize, then load neural-tangents' parameters
    with torch.no_grad():
        for name in ("key", "value", "out", "bias"):
            getattr(layer, name).copy_(torch.tensor(REF[f"attention_{name}"]))
    torch.testing.assert_close(layer(IMG_A), torch.tensor(REF["attention_apply"]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("block_size", [1, 2])
def test_wide_resnet_equals_neural_tangents(block_size):
    net = knn.wide_resnet(block_size, k=1, num_classes=1, pool=2)
    _close(analytic(net, IMG8), f"wrn_b{block_size}")
    assert net(IMG8.float()).shape == (4, 1)  # the finite network runs too


def test_cnn_gap_equals_neural_tangents():
    _close(analytic(knn.cnn_gap(3, num_classes=1, bias_std=0.1), IMG8), "cnn_gap")


# ------------------------------------------------------------------------------ finite layers
def test_finite_layers_against_torch():
    x = torch.randn(2, 4, 7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(knn.AvgPool2d(2)(x), F.avg_pool2d(x, 2))
    torch.testing.assert_close(knn.AvgPool2d(3, 2, "symmetric")(x), F.avg_pool2d(x, 3, 2, padding=1))
    # SAME: 7 -> 4 rows, pads (1, 1); 6 -> 3 columns, pads (0, 1); zeros count in the mean
    torch.testing.assert_close(knn.AvgPool2d(3, 2, "same")(x), F.avg_pool2d(F.pad(x, (0, 1, 1, 1)), 3, 2))
    torch.testing.assert_close(knn.AvgPool2d(3, 2, "circular")(x),
                               F.avg_pool2d(F.pad(x, (0, 1, 1, 1), mode="circular"), 3, 2))
    ln = F.layer_norm(x.permute(0, 2, 3, 1), (4,), eps=1e-12).permute(0, 3, 1, 2)
    torch.testing.assert_close(knn.LayerNorm()(x), ln)
    torch.testing.assert_close(knn.Gelu()(x), x * 0.5 * (1 + torch.erf(x / 2**0.5)))
    torch.testing.assert_close(knn.Softplus(2.0)(x), torch.log1p(torch.exp(2 * x)) / 2)
    drop = knn.Dropout(0.25)
    torch.manual_seed(0)
    y = drop(torch.ones(20000, dtype=torch.float64))
    assert set(torch.unique(y).tolist()) == {0.0, 4 / 3}
    assert abs(float((y == 0).double().mean()) - 0.25) < 0.02
    torch.testing.assert_close(drop.eval()(x), x)


def test_gelu_closed_form_equals_quadrature():
    g = torch.Generator().manual_seed(3)
    k11, k22 = torch.rand(50, dtype=torch.float64, generator=g) * 3, torch.rand(50, dtype=torch.float64, generator=g)
    k12 = (2 * torch.rand(50, dtype=torch.float64, generator=g) - 1) * (k11 * k22).sqrt()
    closed = core.gelu_kernel()(k11, k22, k12)
    quad = core.quadrature_kernel(F.gelu, order=96)(k11, k22, k12)
    for a, b in zip(closed, quad, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_torch_modules_map_to_the_layers():
    for torch_pool, pool in ((nn.AvgPool2d(3, 2, padding=1), knn.AvgPool2d(3, 2, "symmetric")),
                             (nn.AvgPool2d(2), knn.AvgPool2d(2))):
        nets = [knn.Sequential(*_head(), m, knn.ReLU(), *_tail()) for m in (torch_pool, pool)]
        torch.testing.assert_close(analytic(nets[0], IMG_A).ntk, analytic(nets[1], IMG_A).ntk)
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for torch_act, act in ((nn.GELU(), knn.Gelu()), (nn.Tanh(), knn.Tanh()), (nn.Sigmoid(), knn.Sigmoid()),
                           (nn.Softplus(), knn.Softplus())):
        a, b = (analytic(knn.Sequential(knn.Dense(8, bias_std=0.1), m, knn.Dense(1)), x) for m in (torch_act, act))
        torch.testing.assert_close(a.ntk, b.ntk, msg=type(torch_act).__name__)
    for torch_layer, layer in ((nn.Dropout(0.3), knn.Dropout(0.3)),
                               (nn.LayerNorm(8, eps=1e-12, elementwise_affine=False), knn.LayerNorm())):
        a, b = (analytic(knn.Sequential(knn.Dense(8, bias_std=0.1), m, knn.Dense(8), knn.ReLU(), knn.Dense(1)), x)
                for m in (torch_layer, layer))
        torch.testing.assert_close(a.ntk, b.ntk, msg=type(torch_layer).__name__)
    # different from the kernel without the layer: the mapping is not a silent identity
    plain = analytic(knn.Sequential(knn.Dense(8, bias_std=0.1), knn.Dense(8), knn.ReLU(), knn.Dense(1)), x)
    assert not torch.allclose(a.ntk, plain.ntk)


# ---------------------------------------------------------------------------------- bad input
def test_unsupported_layer_is_named_with_the_supported_list():
    net = knn.Sequential(knn.Conv2d(4, 3), knn.ReLU(), knn.Sequential(knn.Conv2d(4, 3), nn.MaxPool2d(2)),
                         knn.Flatten(), knn.Dense(1))
    with pytest.raises(knn.UnsupportedLayerError) as info:
        analytic(net, IMG_A)
    msg = str(info.value)
    assert msg.startswith("layer 2.1: no infinite-width kernel rule for layer MaxPool2d")
    assert info.value.path == "2.1"
    for name in ("AvgPool2d", "LayerNorm", "Dropout", "Gelu", "Softplus", "GlobalAvgPool", "Residual"):
        assert name in msg
    branches = knn.ParallelSum(knn.Dense(4), knn.Sequential(nn.LayerNorm(4), knn.Dense(4)))
    with pytest.raises(knn.UnsupportedLayerError, match=r"^layer 1\.branches\.1\.0: .*LayerNorm.*elementwise_affine"):
        analytic(knn.Sequential(knn.Dense(4), branches, knn.Dense(1)), torch.randn(3, 2))


def test_layer_norm_needs_gaussian_input():
    with pytest.raises(ValueError, match="LayerNorm needs Gaussian pre-activations"):
        analytic(knn.Sequential(knn.Conv2d(4, 3), knn.ReLU(), knn.LayerNorm(), knn.Flatten(), knn.Dense(1)), IMG_A)


@pytest.mark.parametrize("bad", [lambda: knn.AvgPool2d(3, padding="full"), lambda: knn.Dropout(1.0),
                                 lambda: knn.Conv2d(4, 3, padding="SAME")])
def test_bad_arguments(bad):
    with pytest.raises(ValueError):
        bad()


# ---------------------------------------------------------------------------------- Monte-Carlo
MC = {
    # the layer (built for a width) right after the input convolution (exactly Gaussian at any width) or after a
    # conv of ReLU features; the network ends in Flatten, so the empirical NNGP averages the layer's own units
    "avgpool_same": (False, lambda w: knn.AvgPool2d(3, 2, "same")),
    "avgpool_circular": (False, lambda w: knn.AvgPool2d(2, 1, "circular")),
    "layernorm": (False, lambda w: knn.LayerNorm()),
    "dropout": (True, lambda w: knn.Dropout(0.3)),
    "gelu": (False, lambda w: knn.Gelu()),
    "tanh": (False, lambda w: knn.Tanh(order=24)),
    "sigmoid": (False, lambda w: knn.Sigmoid(order=24)),
    "softplus": (False, lambda w: knn.Softplus(order=24)),
    "attention_softmax": (False, lambda w: _attention("softmax", out=w, key=w, val=w, heads=4)),
    # unnormalized weights sum over all P positions: a bias of order P/(input width), so a wider input
    "attention_relu": (False, lambda w: _attention("relu", out=w, key=w, val=w, heads=2)),
}


@pytest.mark.parametrize("name", sorted(MC))
def test_monte_carlo_converges(name):
    """At widths 32 and 256 the Monte-Carlo NNGP is within 5 standard errors of the (width-free) kernel."""
    deep, layer = MC[name]
    x = IMG_A[:, :, :4, :4]

    def net(width):
        def make():
            conv_width = 16 * width if name == "attention_relu" else width
            first = [knn.Conv2d(conv_width, 3, stride=2 if deep else 1, bias_std=0.2)]
            body = [knn.ReLU(), layer(width), knn.Conv2d(width, 3)] if deep else [layer(width)]
            return knn.Sequential(*first, *body, knn.Flatten()).double()
        return make

    exact = analytic(net(1)(), x, get="nngp").nngp
    for width in (32, 256):
        mc = monte_carlo(net(width), x, n_samples=16, get="nngp")
        err = (mc.nngp - exact).abs()
        assert (err <= 5 * mc.nngp_sem + 1e-12).all(), (width, float((err / mc.nngp_sem).max()))
        assert float(mc.nngp_sem.max()) < 0.1 * float(exact.abs().max())  # the test has power
