"""The typed record every image loader returns: :class:`ImageDataset`.

Images are stored as uint8 (``N×C×H×W`` tensor, or a lazily decoded sequence of ``C×H×W`` tensors for
large JPEG sets); ``dataset[i]`` gives ``(float C×H×W in [0, 1] after the optional transform, int label)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset


class DataFormatError(ValueError):
    """A dataset file exists but is corrupt, truncated or not in the expected format."""


class LazyImages(Protocol):
    """A sequence of uint8 ``C×H×W`` tensors decoded on access (e.g. JPEGs inside a zip)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Tensor: ...

    def select(self, indices: Sequence[int]) -> LazyImages: ...


Images = Tensor | LazyImages


@dataclass(eq=False)
class ImageDataset(Dataset[tuple[Tensor, int]]):
    """Image classification data with its provenance.

    Attributes:
        images: uint8 tensor ``N×C×H×W``, or a :class:`LazyImages` sequence of uint8 ``C×H×W`` tensors.
        targets: int64 tensor ``N`` of class indices into ``classes``.
        classes: class names; ``targets`` index this list.
        source: which files (or embedded data) the images came from, for reports.
        transform: applied to the float ``C×H×W`` image in ``__getitem__``.
        class_info: per-class attributes, each a list as long as ``classes`` (e.g. ``alphabet``).
    """

    images: Images
    targets: Tensor
    classes: list[str]
    source: str
    transform: Callable[[Tensor], Tensor] | None = None
    class_info: dict[str, list[Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.targets = torch.as_tensor(self.targets, dtype=torch.long).reshape(-1)
        if isinstance(self.images, Tensor) and (self.images.dtype != torch.uint8 or self.images.dim() != 4):
            raise ValueError(f"images must be a uint8 N×C×H×W tensor, got {self.images.dtype} "
                             f"of shape {tuple(self.images.shape)}")
        if len(self.images) != len(self.targets):
            raise ValueError(f"{len(self.images)} images but {len(self.targets)} targets")
        if len(self.targets) and (int(self.targets.min()) < 0 or int(self.targets.max()) >= len(self.classes)):
            raise ValueError(f"targets must lie in [0, {len(self.classes)}), got range "
                             f"[{int(self.targets.min())}, {int(self.targets.max())}]")
        for key, values in self.class_info.items():
            if len(values) != len(self.classes):
                raise ValueError(f"class_info[{key!r}] has {len(values)} entries for {len(self.classes)} classes")

    # -- torch Dataset -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        x = self.images[index].float().div_(255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[index])

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[1:]) if isinstance(self.images, Tensor) else "lazy"
        return (f"ImageDataset(n={len(self)}, classes={len(self.classes)}, image={shape}, "
                f"source={self.source!r})")

    # -- shape facts ---------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the first image."""
        return tuple(self.images[0].shape)  # type: ignore[return-value]

    def class_counts(self) -> Tensor:
        """Number of samples of each class (length ``num_classes``)."""
        return torch.bincount(self.targets, minlength=self.num_classes)

    # -- derived datasets ----------------------------------------------------------------------
    def subset(self, indices: Sequence[int] | Tensor, source_note: str | None = None) -> ImageDataset:
        """The samples at ``indices`` (same classes, same transform)."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if len(idx) and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"subset index out of range for a dataset of {len(self)} samples")
        images: Images = self.images[idx] if isinstance(self.images, Tensor) else self.images.select(idx.tolist())
        note = f"{self.source} [{source_note}]" if source_note else self.source
        return ImageDataset(images, self.targets[idx], list(self.classes), note, self.transform,
                            {k: list(v) for k, v in self.class_info.items()})

    def subset_classes(self, classes: Sequence[int | str], relabel: bool = True) -> ImageDataset:
        """Only the samples of ``classes`` (indices or names), in the given order.

        With ``relabel`` the kept classes become ``0..k-1`` in that order; otherwise targets and the class
        list are unchanged.
        """
        ids = [self.classes.index(c) if isinstance(c, str) else int(c) for c in classes]
        bad = [c for c in ids if not 0 <= c < self.num_classes]
        if bad:
            raise ValueError(f"class indices {bad} out of range [0, {self.num_classes})")
        if len(set(ids)) != len(ids):
            raise ValueError("subset_classes got a class twice")
        keep = torch.isin(self.targets, torch.tensor(ids, dtype=torch.long))
        sub = self.subset(torch.nonzero(keep).flatten(), source_note=f"{len(ids)} of {self.num_classes} classes")
        if relabel:
            mapping = torch.full((self.num_classes,), -1, dtype=torch.long)
            mapping[torch.tensor(ids, dtype=torch.long)] = torch.arange(len(ids))
            sub.targets = mapping[sub.targets]
            sub.classes = [self.classes[c] for c in ids]
            sub.class_info = {k: [v[c] for c in ids] for k, v in self.class_info.items()}
        return sub

    def with_transform(self, transform: Callable[[Tensor], Tensor] | None) -> ImageDataset:
        """The same data (shared storage) with another per-sample transform."""
        return ImageDataset(self.images, self.targets, self.classes, self.source, transform, self.class_info)

    # -- arrays --------------------------------------------------------------------------------
    def uint8_images(self) -> Tensor:
        """All images as one uint8 ``N×C×H×W`` tensor (decodes a lazy set)."""
        if isinstance(self.images, Tensor):
            return self.images
        if len(self.images) == 0:
            raise ValueError("empty dataset has no image shape")
        return torch.stack([self.images[i] for i in range(len(self.images))])

    def tensors(self, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """``(images N×C×H×W scaled to [0, 1] as ``dtype``, targets)``; no transform applied."""
        return self.uint8_images().to(dtype).div_(255.0), self.targets.clone()

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(uint8 images N×C×H×W, int64 targets)`` as numpy arrays."""
        return self.uint8_images().numpy(), self.targets.numpy()


def stratified_split(targets: Tensor, fraction: float, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Split sample indices into ``(rest, held_out)``; each class gives ``round(fraction·n_c)`` held out.

    Reproducible for a given ``seed`` (its own generator; the global RNG is untouched). Classes with at
    least two samples keep at least one sample on each side.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    rest, held = [], []
    for c in torch.unique(targets).tolist():
        idx = torch.nonzero(targets == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        held.append(idx[:k])
        rest.append(idx[k:])
    return torch.sort(torch.cat(rest)).values, torch.sort(torch.cat(held)).values


def train_val_split(dataset: ImageDataset, val_fraction: float = 0.1,
                    seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
    """Stratified, seeded split into ``(train, val)`` ImageDatasets (sample order kept within each)."""
    train_idx, val_idx = stratified_split(dataset.targets, val_fraction, seed)
    return (dataset.subset(train_idx, f"train part of a stratified split, seed {seed}"),
            dataset.subset(val_idx, f"val part ({val_fraction:g}) of a stratified split, seed {seed}"))
