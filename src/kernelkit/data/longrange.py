"""A long-range spatial task generated in code, with no shortcut: two dots on a torus.

Each sample is a ``size × size`` image holding two single-pixel dots on a torus (wrap-around
coordinates); the label says whether their wrap-around Chebyshev distance is small (``near``) or large
(``far``). A translation-invariant network on the torus (circular padding, stride 1, global pooling:
:class:`kernelkit.models.torusnet.TorusNet`) sees an image only through the displacement of the dots,
so one whose receptive field cannot hold both dots is at chance: :func:`small_rf_ceiling` gives the
best accuracy a receptive field allows. This is the setting where large kernels beat small ones at
equal depth.

Everything is seeded; no files are read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.data import TensorDataset


@dataclass(frozen=True)
class TorusPairConfig:
    """Two single-pixel dots on a ``size × size`` torus; label 1 iff their wrap-around Chebyshev distance ≤ ``near[1]``.

    Positive distances are drawn uniformly from ``near``, negative ones from ``far`` (inclusive ranges).
    With circular padding, stride 1 and global average pooling a network is exactly translation-invariant
    on the torus, so the only information in an image is the displacement between the dots, and a network
    whose receptive field (side ``R``) cannot hold both dots (distance ≥ ``R``) computes the same output
    for every such image: when every distance is ≥ ``R`` its accuracy ceiling is chance.
    """

    size: int = 24
    near: tuple[int, int] = (5, 8)
    far: tuple[int, int] = (9, 12)

    def __post_init__(self) -> None:
        lo, hi = self.near
        flo, fhi = self.far
        if not 1 <= lo <= hi < flo <= fhi <= self.size // 2:
            raise ValueError(f"need 1 <= near <= far <= size//2 as increasing ranges, got near={self.near}, "
                             f"far={self.far}, size={self.size}")


def torus_distance(a: tuple[int, int], b: tuple[int, int], size: int) -> int:
    """Chebyshev (L∞) distance between two pixels of a ``size × size`` torus."""
    dy, dx = abs(a[0] - b[0]) % size, abs(a[1] - b[1]) % size
    return max(min(dy, size - dy), min(dx, size - dx))


def torus_pair_sample(cfg: TorusPairConfig, label: int, g: torch.Generator) -> torch.Tensor:
    """One ``(1, size, size)`` image with two dots at wrap-around distance drawn from ``near`` (1) or ``far`` (0)."""
    lo, hi = cfg.near if label == 1 else cfg.far
    r = int(torch.randint(lo, hi + 1, (1,), generator=g))
    other = int(torch.randint(-r, r + 1, (1,), generator=g))
    sign = 1 if float(torch.rand(1, generator=g)) < 0.5 else -1
    dy, dx = (sign * r, other) if float(torch.rand(1, generator=g)) < 0.5 else (other, sign * r)
    ay, ax = torch.randint(0, cfg.size, (2,), generator=g).tolist()
    img = torch.zeros(1, cfg.size, cfg.size)
    img[0, ay, ax] = 1.0
    img[0, (ay + dy) % cfg.size, (ax + dx) % cfg.size] = 1.0
    return img


def torus_pair_dataset(n: int, cfg: TorusPairConfig = TorusPairConfig(), seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` balanced samples ``(images (n, 1, S, S), labels (n,))``; the same seed gives the same data."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 2)[torch.randperm(n, generator=g)]
    return torch.stack([torus_pair_sample(cfg, int(y), g) for y in labels]), labels


def receptive_field(kernel_size: int, depth: int) -> int:
    """Receptive-field side of ``depth`` stride-1 K×K convolutions after a 1×1 stem
    (:class:`kernelkit.models.torusnet.TorusNet`)."""
    return 1 + (kernel_size - 1) * depth


def small_rf_ceiling(cfg: TorusPairConfig, kernel_size: int, depth: int) -> float:
    """Best accuracy any :class:`~kernelkit.models.torusnet.TorusNet` of this kernel and depth can reach on ``cfg``
    (balanced classes).

    Pairs at distance < R (receptive-field side) may be classified perfectly; all pairs at distance ≥ R
    give one and the same output, so the best it can do there is to predict the class more common among
    them. Distances are uniform within each class's range.
    """
    r = receptive_field(kernel_size, depth)

    def unseen(lo: int, hi: int) -> float:  # fraction of a class's distances the net cannot resolve
        return sum(1 for d in range(lo, hi + 1) if d >= r) / (hi - lo + 1)

    u_pos, u_neg = unseen(*cfg.near), unseen(*cfg.far)
    return 0.5 * (1 - u_pos) + 0.5 * (1 - u_neg) + 0.5 * max(u_pos, u_neg)


def torus_pairs(n: int, cfg: TorusPairConfig = TorusPairConfig(), seed: int = 0) -> TensorDataset:
    """:func:`torus_pair_dataset` as a map-style dataset of ``(image, label)`` pairs (for ``train.Trainer``)."""
    return TensorDataset(*torus_pair_dataset(n, cfg, seed))
