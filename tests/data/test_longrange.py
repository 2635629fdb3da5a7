"""The generated long-range task and the training command."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from kernelkit.data.pathfinder import (
    LongRangeNet,
    PathfinderConfig,
    marker_pair_dataset,
    matched_width,
    param_count,
    pathfinder_dataset,
    pathfinder_sample,
)


def _connected(mask: torch.Tensor, a: tuple[int, int], b: tuple[int, int]) -> bool:
    """8-connected flood fill on the curve channel (brute force)."""
    h, w = mask.shape
    seen, stack = {a}, [a]
    while stack:
        y, x = stack.pop()
        if (y, x) == b:
            return True
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                q = (y + dy, x + dx)
                if 0 <= q[0] < h and 0 <= q[1] < w and q not in seen and mask[q] > 0:
                    seen.add(q)
                    stack.append(q)
    return False


def test_dataset_is_seeded_and_balanced() -> None:
    x1, y1 = pathfinder_dataset(40, seed=3)
    x2, y2 = pathfinder_dataset(40, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (40, 2, 32, 32) and int(y1.sum()) == 20
    assert not torch.equal(x1, pathfinder_dataset(40, seed=4)[0])


def test_positive_markers_lie_on_one_curve() -> None:
    cfg = PathfinderConfig(paths=1)  # a single curve: positives must be connected end to end
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        img = pathfinder_sample(cfg, 1, g)
        ys, xs = torch.nonzero(img[1] > 0, as_tuple=True)
        marks = sorted({(int(y), int(x)) for y, x in zip(ys, xs, strict=True)})
        on_curve = [p for p in marks if img[0][p] > 0]
        assert _connected(img[0], on_curve[0], on_curve[-1])


def test_equal_depth_models_have_matched_parameters() -> None:
    large = LongRangeNet(13, 24, 2)
    w = matched_width(3, param_count(large), 2)
    small = LongRangeNet(3, w, 2)
    assert abs(param_count(small) - param_count(large)) / param_count(large) < 0.1
    assert large(torch.zeros(2, 2, 64, 64)).shape == (2, 2)


def test_marker_pair_task_geometry() -> None:
    x, y = marker_pair_dataset(30, seed=1)
    assert x.shape == (30, 2, 64, 64) and int(y.sum()) == 15
    for img, label in zip(x, y, strict=True):
        ya, xa = [int(v.min()) for v in torch.nonzero(img[0], as_tuple=True)]
        yb, xb = [int(v.min()) for v in torch.nonzero(img[1], as_tuple=True)]
        assert (xb > xa) == bool(label) and abs(xb - xa) >= 24
        assert min(xa, ya, xb, yb) >= 12 and max(xa, ya, xb, yb) + 2 <= 64 - 12


def test_train_command_on_generated_task(tmp_path) -> None:
    from kernelkit.apps.cli.convnet import app

    res = CliRunner().invoke(app, ["train", "--model", "unireplknet_a", "--data", "pathfinder", "--limit", "40",
                                   "--max-steps", "2", "--batch-size", "16", "--epochs", "1", "--device", "cpu",
                                   "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    out = json.loads((tmp_path / "run" / "results.json").read_text())["sections"]["train"]
    assert out["reparam_rel_err"] < 1e-4
    bad = CliRunner().invoke(app, ["train", "--data", "imagenet", "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2 and "imagenet" in bad.output


def test_torus_pairs_have_the_drawn_distances() -> None:
    from kernelkit.data.pathfinder import TorusPairConfig, torus_distance, torus_pair_dataset

    cfg = TorusPairConfig()
    x, y = torus_pair_dataset(60, cfg, seed=5)
    assert x.shape == (60, 1, 24, 24) and int(y.sum()) == 30
    assert torch.equal(x, torus_pair_dataset(60, cfg, seed=5)[0])
    for img, label in zip(x, y, strict=True):
        pts = [tuple(p) for p in torch.nonzero(img[0]).tolist()]
        assert len(pts) == 2
        lo, hi = cfg.near if label == 1 else cfg.far
        assert lo <= torus_distance(pts[0], pts[1], 24) <= hi
    with pytest.raises(ValueError, match="increasing ranges"):
        TorusPairConfig(size=16, near=(5, 9), far=(8, 8))


def test_torus_net_receptive_field_is_exact() -> None:
    from kernelkit.data.pathfinder import TorusNet, receptive_field

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
    from kernelkit.data.pathfinder import (
        TorusNet,
        TorusPairConfig,
        receptive_field,
        small_rf_ceiling,
        torus_pair_dataset,
    )
    from kernelkit.layers.reparam import randomize_for_reparam_check

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
    assert small_rf_ceiling(cfg, 3, 2) == 0.5 and small_rf_ceiling(cfg, 13, 2) == 1.0
    # K=5 resolves the near pairs (distance <= 8 < 9) but not the far ones: all far pairs look alike, so
    # predicting "far" there and resolving every near pair is still perfect
    assert small_rf_ceiling(cfg, 5, 2) == 1.0
    # near 3-6 with R=5: half the near pairs (5, 6) and all far pairs look alike → predict "far" there:
    # 0.25 (resolved near) + 0.5 (far) = 0.75
    assert small_rf_ceiling(TorusPairConfig(24, (3, 6), (7, 12)), 3, 2) == pytest.approx(0.75)
