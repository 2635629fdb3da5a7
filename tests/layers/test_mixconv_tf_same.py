"""TensorFlow "SAME" padding of MixConv2d and TfSameConv2d against the closed form: ``F.pad`` with
``total = max((ceil(i/s) - 1)·s + (k-1)·d + 1 - i, 0)``, ``total // 2`` before, then an unpadded conv."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kernelkit.layers.mixconv import MixConv2d, TfSameConv2d, tf_same_padding


def _closed_form_pad(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _tf_conv(x: torch.Tensor, weight: torch.Tensor, stride: int, dilation: int, groups: int) -> torch.Tensor:
    k = weight.shape[-1]
    top, bottom = _closed_form_pad(x.shape[-2], k, stride, dilation)
    left, right = _closed_form_pad(x.shape[-1], k, stride, dilation)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), weight, None, stride, 0, dilation, groups)


def test_padding_amounts() -> None:
    assert tf_same_padding(224, 3, 2) == (0, 1)  # asymmetric: the extra row goes after
    assert tf_same_padding(225, 3, 2) == (1, 1)
    assert tf_same_padding(224, 5, 2) == (1, 2)
    assert tf_same_padding(224, 1, 2) == (0, 0)  # clamped at 0
    for size in range(1, 40):
        for k in (1, 3, 5, 7, 9, 11):
            for s in (1, 2, 3):
                for d in (1, 2):
                    assert tf_same_padding(size, k, s, d) == _closed_form_pad(size, k, s, d)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_tf_same_conv_equals_closed_form(stride: int, dilation: int) -> None:
    torch.manual_seed(0)
    for k in (3, 5, 7):
        conv = TfSameConv2d(4, 6, k, stride, dilation=dilation, groups=2, bias=False).double()
        for h, w in ((7, 8), (10, 9), (12, 12), (13, 11)):
            x = torch.randn(2, 4, h, w, dtype=torch.float64)
            want = _tf_conv(x, conv.weight, stride, dilation, 2)
            got = conv(x)
            assert got.shape == (2, 6, math.ceil(h / stride), math.ceil(w / stride))
            torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def _mixconv_reference(m: MixConv2d, x: torch.Tensor) -> torch.Tensor:
    """Per group: the closed-form TF padding of that group's own kernel, then an unpadded conv."""
    outs = []
    for conv, d, xi in zip(m.convs(), m.dilations, torch.split(x, m.in_splits, dim=1), strict=True):
        outs.append(_tf_conv(xi, conv.weight, m.stride, d, conv.groups))
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize(("kernels", "stride", "dilated", "depthwise"), [
    ((3, 5, 7), 2, False, True),
    ((3, 5, 7, 9, 11), 2, False, True),
    ((3, 5, 7, 9), 1, True, True),
    ((3, 5), 3, False, True),
    ((1, 1), 1, False, False),
])
def test_mixconv_tf_same_every_path_equals_closed_form(kernels: tuple[int, ...], stride: int, dilated: bool,
                                                        depthwise: bool) -> None:
    torch.manual_seed(0)
    channels = 10
    m = MixConv2d(channels, channels, kernels, stride, dilated=dilated, depthwise=depthwise, tf_same=True).double()
    for size in ((16, 16), (15, 17), (14, 9)):
        x = torch.randn(2, channels, *size, dtype=torch.float64)
        want = _mixconv_reference(m, x)
        assert want.shape[-2:] == tuple(math.ceil(s / stride) for s in size)
        for impl in m.available_impls():
            torch.testing.assert_close(m.run(x, impl), want, rtol=1e-10, atol=1e-10, msg=impl)
        torch.testing.assert_close(m(x), want, rtol=1e-10, atol=1e-10)


def test_tf_same_changes_stride_two_on_even_sizes_only() -> None:
    torch.manual_seed(0)
    sym = MixConv2d(6, 6, (3, 5), stride=2).double()
    tf = MixConv2d(6, 6, (3, 5), stride=2, tf_same=True).double()
    tf.load_state_dict(sym.state_dict())
    odd = torch.randn(1, 6, 15, 15, dtype=torch.float64)
    even = torch.randn(1, 6, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(tf(odd), sym(odd), rtol=0, atol=0)
    assert tf(even).shape == sym(even).shape and not torch.allclose(tf(even), sym(even))
    assert "tf_same=True" in repr(tf)


def test_unsupported_tf_same_configurations_raise() -> None:
    with pytest.raises(ValueError, match="TF 'SAME'"):
        MixConv2d(4, 4, (1, 3), stride=2, depthwise=False, tf_same=True)  # a 1x1 at stride 2 needs no crop
    with pytest.raises(ValueError, match="TF 'SAME'"):
        TfSameConv2d(4, 4, 2)
