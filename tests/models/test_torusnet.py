"""TorusNet: exact receptive field, translation invariance on the torus, parameter matching."""

from __future__ import annotations

import torch

from kernelkit.data.longrange import TorusPairConfig, receptive_field, torus_pair_dataset
from kernelkit.layers.reparam import randomize_for_reparam_check
from kernelkit.models.torusnet import TorusNet, matched_torus_width
from kernelkit.utils.counting import count_params


def test_torus_net_receptive_field_is_exact() -> None:
    for k, depth in ((3, 2), (5, 1), (13, 1)):
        net = TorusNet(k, 8, depth).eval()
        x = torch.zeros(1, 1, 24, 24, requires_grad=True)
        feats = net.blocks(net.stem(x))
        feats[0, :, 12, 12].sum().backward()
        rows = torch.nonzero(x.grad[0, 0].abs().sum(1)).flatten()
        assert int(rows.max() - rows.min()) + 1 == receptive_field(k, depth)


def test_small_receptive_field_cannot_tell_far_pairs_apart() -> None:
    """Circular padding + stride 1 + global pooling: all pairs farther apart than the receptive field give one
    output (the no-shortcut argument); a receptive field covering the pair does distinguish them."""
    cfg = TorusPairConfig()
    x, _ = torus_pair_dataset(24, cfg, seed=0)
    torch.manual_seed(0)
    spread = {}
    for k in (3, 13):  # float64, weights far from the near-zero init, random BN statistics
        net = randomize_for_reparam_check(TorusNet(k, 8, 2)).eval().double()
        for p in net.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.3)
        with torch.no_grad():
            out = net(x.double())
        spread[k] = ((out - out[:1]).abs().max() / out.abs().max()).item()
    assert receptive_field(3, 2) <= cfg.near[0]
    assert spread[3] < 1e-12 and spread[13] > 1e-6, spread


def test_matched_width_equalises_parameters() -> None:
    target = count_params(TorusNet(13, 16, 2))
    w = matched_torus_width(3, target, 2)
    assert abs(count_params(TorusNet(3, w, 2)) - target) / target < 0.05
    assert TorusNet(13, 16, 2)(torch.zeros(2, 1, 24, 24)).shape == (2, 2)
