"""scikit-learn's bundled digits (UCI optical recognition of handwritten digits test set): 1,797 8×8 images.

Embedded with scikit-learn, so it needs no data root; pixel values 0..16 are scaled to 0..255.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from kernelkit.data.catalog import register_dataset
from kernelkit.data.dataset import ImageDataset


@register_dataset("digits", embedded=True, how_to="Ships with scikit-learn (sklearn.datasets.load_digits).")
def load_digits(root: str | os.PathLike[str] | None = None) -> ImageDataset:
    """The 1,797 digits as 1×8×8 images, 10 classes; ``dataset[i]`` gives ``x/16`` within 1/510 (uint8 storage).

    ``root`` is accepted for a uniform loader signature and ignored (the data ship with scikit-learn).
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    raw = np.asarray(bunch.images)  # (1797, 8, 8) float64 in 0..16
    if raw.shape[1:] != (8, 8) or raw.min() < 0 or raw.max() > 16:
        raise ValueError(f"unexpected scikit-learn digits array {raw.dtype} {raw.shape}")
    pixels = np.rint(raw * (255.0 / 16.0)).astype(np.uint8)
    return ImageDataset(
        images=torch.from_numpy(pixels).unsqueeze(1),
        targets=torch.from_numpy(np.asarray(bunch.target, dtype=np.int64)),
        classes=[str(d) for d in range(10)],
        source="scikit-learn load_digits (embedded copy of the UCI optical digits, 8×8, values 0..16 scaled to 0..255)",
    )
