"""The generated long-range task (two dots on a torus): geometry, seeding, the receptive-field ceiling."""

from __future__ import annotations

import pytest
import torch

from kernelkit.data.longrange import (
    TorusPairConfig,
    small_rf_ceiling,
    torus_distance,
    torus_pair_dataset,
    torus_pairs,
)


def test_torus_pairs_have_the_drawn_distances() -> None:
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


def test_map_style_dataset_and_ceilings() -> None:
    ds = torus_pairs(10, TorusPairConfig(), seed=5)
    x, y = ds[3]
    want_x, want_y = torus_pair_dataset(10, TorusPairConfig(), seed=5)
    assert len(ds) == 10 and torch.equal(x, want_x[3]) and int(y) == int(want_y[3])
    cfg = TorusPairConfig()
    assert small_rf_ceiling(cfg, 3, 2) == 0.5 and small_rf_ceiling(cfg, 13, 2) == 1.0
    # K=5 resolves the near pairs (distance <= 8 < 9) but not the far ones: all far pairs look alike, so
    # predicting "far" there and resolving every near pair is still perfect
    assert small_rf_ceiling(cfg, 5, 2) == 1.0
    # near 3-6 with R=5: half the near pairs (5, 6) and all far pairs look alike → predict "far" there:
    # 0.25 (resolved near) + 0.5 (far) = 0.75
    assert small_rf_ceiling(TorusPairConfig(24, (3, 6), (7, 12)), 3, 2) == pytest.approx(0.75)
