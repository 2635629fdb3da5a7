"""ERF: gradient maps of known receptive fields, the area-ratio analysis, the plot."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kernelkit.models.erf import (
    area_ratios,
    centre_gradient_map,
    erf_images,
    high_contribution_area_ratio,
    normalise_scores,
    plot_erf,
)


def test_centre_gradient_of_a_box_filter_is_its_support() -> None:
    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False)
    nn.init.ones_(conv.weight)
    g = centre_gradient_map(conv, torch.rand(1, 17, 17) + 0.1)
    expected = torch.zeros(17, 17)
    expected[6:11, 6:11] = 1.0
    torch.testing.assert_close(g, expected)


def test_stacked_convs_grow_the_field_like_the_kernel() -> None:
    def field(k: int, depth: int) -> int:
        net = nn.Sequential(*[nn.Conv2d(1, 1, k, padding=k // 2, bias=False) for _ in range(depth)])
        for m in net:
            nn.init.constant_(m.weight, 1.0)
        g = centre_gradient_map(net, torch.ones(1, 41, 41))
        return int((g.sum(0) > 0).sum())

    assert field(3, 2) == 5 and field(13, 2) == 25  # (k-1)·depth + 1


def test_area_ratio_of_uniform_and_point_maps() -> None:
    uniform = np.ones((21, 21))
    side, ratio = high_contribution_area_ratio(uniform, 0.5)
    assert side == 15 and ratio == 15 * 15 / 441  # smallest centred square with > 50% of the mass
    point = np.zeros((21, 21))
    point[10, 10] = 5.0
    assert high_contribution_area_ratio(point, 0.99) == (3, 9 / 441)
    assert normalise_scores(point).max() == 1.0
    r = area_ratios(np.ones((21, 21)))
    assert list(r) == ["t=20%", "t=30%", "t=50%", "t=99%"]
    assert r["t=20%"] <= r["t=30%"] <= r["t=50%"] <= r["t=99%"]


def test_erf_images_fall_back_to_generated(tmp_path) -> None:
    x, source = erf_images(2, 40, data_root=tmp_path)
    assert x.shape == (2, 3, 40, 40)
    assert "generated" in source


def test_plot_is_a_plain_figure_and_leaves_the_backend_alone() -> None:
    import matplotlib
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    fig = plot_erf({"a": np.ones((5, 5)), "b": np.zeros((5, 5))}, {"a": {"t=20%": 0.1}})
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # two heatmaps, two colour bars
    assert matplotlib.get_backend() == backend


def test_large_kernels_give_a_wider_erf_than_3x3_in_unireplknet() -> None:
    """The claim the ERF section makes: same network and images, K=13 kernels vs all kernels 3x3 (random init,
    deploy form). The large-kernel ERF is at least as wide at every threshold and clearly wider at t=99%."""
    from kernelkit.models import create_model
    from kernelkit.models.erf import generated_images, measure_erf

    x = generated_images(2, 160, seed=0)
    ratios = {}
    for lk in (None, 3):
        torch.manual_seed(0)
        net = create_model("unireplknet_a", deploy=True, large_kernel=lk).eval()
        ratios[lk] = measure_erf(net, x)[1]
    large, small = ratios[None], ratios[3]
    assert all(large[t] >= small[t] for t in large), (large, small)
    assert large["t=99%"] > 1.5 * small["t=99%"], (large, small)
