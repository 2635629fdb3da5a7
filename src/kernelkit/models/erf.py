"""Effective receptive field (ERF), as measured in the RepLKNet / UniRepLKNet papers.

For each image, the gradient of the centre pixel of the last-stage feature map (summed over channels
after ReLU) with respect to the input is taken, ReLU'd and summed over input channels; the maps are
summed over images. The "high-contribution area ratio" at threshold t is the area of the smallest
centred square holding a fraction > t of the (log-scaled, max-normalised) total, divided by the image
area: a larger ratio means a larger ERF.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.data.stats import IMAGENET_MEAN, IMAGENET_STD

if TYPE_CHECKING:
    from matplotlib.figure import Figure

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)


def centre_gradient_map(features: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor) -> torch.Tensor:
    """``ReLU(Σ_c ∂ Σ_k ReLU(f_k[centre]) / ∂x_c)`` for one image ``(C, H, W)`` → ``(H, W)``."""
    x = image[None].detach().clone().requires_grad_(True)
    out = features(x)  # (1, K, h, w)
    h, w = out.shape[-2:]
    F.relu(out[:, :, h // 2, w // 2]).sum().backward()
    assert x.grad is not None
    return F.relu(x.grad[0].sum(0)).detach()


def erf_scores(features: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
               progress: Callable | None = None) -> torch.Tensor:
    """Contribution scores summed over ``images`` ``(N, C, H, W)`` → ``(H, W)``."""
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    items = range(len(images))
    for i in progress(items) if progress else items:
        total += centre_gradient_map(features, images[i]).double()
    return total


def normalise_scores(scores: torch.Tensor | np.ndarray) -> np.ndarray:
    """``log10(s + 1)`` rescaled to max 1 (the papers' analysis; makes models comparable)."""
    data = np.log10(np.asarray(scores, dtype=np.float64) + 1)
    peak = data.max()
    return data / peak if peak > 0 else data


def high_contribution_area_ratio(data: np.ndarray, threshold: float) -> tuple[int, float]:
    """Side and area ratio of the smallest centred square whose sum exceeds ``threshold`` of the total.

    Squares of side 2i+1 (i ≥ 1) around the centre are tried in order; if none qualifies, the whole
    map counts (ratio 1.0).
    """
    h, w = data.shape
    total = float(data.sum())
    if total <= 0:
        return 0, 0.0
    for i in range(1, min(h, w) // 2):
        area = data[h // 2 - i:h // 2 + i + 1, w // 2 - i:w // 2 + i + 1].sum()
        if area / total > threshold:
            side = 2 * i + 1
            return side, side * side / (h * w)
    return min(h, w), 1.0


def area_ratios(scores: torch.Tensor | np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> dict[str, float]:
    """``{"t=20%": ratio, ...}`` for the normalised scores."""
    data = normalise_scores(scores)
    return {f"t={round(t * 100)}%": high_contribution_area_ratio(data, t)[1] for t in thresholds}


def last_stage_features(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function giving the last feature map of a UniRepLKNet-style model (``forward_features(x)``, or the
    last entry when it returns a list)."""
    ff = getattr(model, "forward_features", None)
    if ff is None:
        raise TypeError(f"{type(model).__name__} has no forward_features(); cannot measure its ERF")

    def features(x: torch.Tensor) -> torch.Tensor:
        out = ff(x)
        return out[-1] if isinstance(out, (list, tuple)) else out

    return features


def measure_erf(model: nn.Module, images: torch.Tensor,
                progress: Callable[[range], Iterable[int]] | None = None,
                ) -> tuple[np.ndarray, dict[str, float]]:
    """ERF of ``model``'s last stage over ``images``: the max-normalised heatmap and the area ratios per threshold."""
    scores = erf_scores(last_stage_features(model), images, progress=progress).cpu()
    return normalise_scores(scores), area_ratios(scores)


def generated_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Smooth random colour fields in [0, 1] ``(n, 3, size, size)`` (fallback when no real images are present)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=g)
    fine = torch.rand(n, 3, size // 4, size // 4, generator=g)
    img = 0.7 * F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)
    img = img + 0.3 * F.interpolate(fine, size=size, mode="bilinear", align_corners=False)
    return img.clamp(0, 1)


def erf_images(n: int, size: int, data_root: str | Path | None = None, seed: int = 0) -> tuple[torch.Tensor, str]:
    """``n`` normalised images ``(n, 3, size, size)`` and a sentence saying where they came from.

    Real CIFAR-10 test JPEGs (``<data root>/cifar10_jpg/cifar10_jpg_test.zip``, evenly spread over the
    classes, bilinearly resized) when present, otherwise :func:`generated_images`.
    """
    from kernelkit.data.root import DataNotFoundError

    try:
        from kernelkit.data.imagefolder import load_cifar10_jpg

        ds = load_cifar10_jpg(root=data_root, lazy=True)
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
        raw = torch.stack([ds[int(i)][0] for i in idx])
        source = f"{n} real CIFAR-10 test images (32×32, from {ds.source}), resized to {size}×{size}"
    except (DataNotFoundError, FileNotFoundError, ImportError):
        raw = generated_images(n, size, seed)
        source = f"{n} generated smooth random images ({size}×{size}); CIFAR-10 JPEGs not found in the data root"
    img = F.interpolate(raw.float(), size=size, mode="bilinear", align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (img - mean) / std, source


def plot_erf(maps: dict[str, np.ndarray], ratios: dict[str, dict[str, float]] | None = None) -> Figure:
    """Side-by-side heatmaps of normalised ERF scores; returns a :class:`matplotlib.figure.Figure`
    (no pyplot state: the caller's matplotlib backend is left alone)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(maps), 4))
    axes = fig.subplots(1, len(maps), squeeze=False)
    for ax, (name, data) in zip(axes[0], maps.items(), strict=True):
        im = ax.imshow(data, cmap="RdYlGn", vmin=0, vmax=1)
        title = name
        if ratios and name in ratios:
            title += "\n" + ", ".join(f"{k}: {v:.3f}" for k, v in ratios[name].items())
        ax.set_title(title, fontsize=8)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
