"""Base-session training (cosine classifier with temperature) and frozen-feature extraction.

The recipe follows TEEN's base session: a backbone plus a bias-free cosine head, logits
``temperature * cos(f(x), W_c)``, cross entropy over the base classes, SGD with Nesterov momentum and
a cosine learning-rate schedule, with the dataset's augmentations applied per batch as tensor
transforms. Unlike the official code, the checkpoint is selected on a held-out validation split of
the base training data, never on the test set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from kernelkit.fscil.core import COSINE_TEMPERATURE, l2_normalize


@dataclass
class BaseTrainConfig:
    """Base-session hyperparameters (TEEN CIFAR-100 defaults except the epoch count)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    temperature: float = COSINE_TEMPERATURE
    augment: str = "cifar"  # cifar | imagenet | omniglot | none
    seed: int = 0
    checkpoint_every: int = 0  # optimizer steps between checkpoints (0: epoch ends)


class CosineClassifierNet(nn.Module):
    """Input normalisation, a feature backbone, and a bias-free cosine head over the base classes."""

    mean: Tensor
    std: Tensor

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, temperature: float,
                 mean: Sequence[float], std: Sequence[float], repeat_channels: int = 1) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.temperature = temperature
        self.repeat_channels = repeat_channels
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1))
        self.weight = nn.Parameter(torch.empty(num_classes, num_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def features(self, x: Tensor) -> Tensor:
        """Pooled backbone features ``(N, num_features)`` of images in [0, 1]."""
        x = (x - self.mean) / self.std
        if self.repeat_channels > 1:
            x = x.repeat(1, self.repeat_channels, 1, 1)
        return self.backbone(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.temperature * l2_normalize(self.features(x)) @ l2_normalize(self.weight).T


def build_backbone(name: str, in_chans: int, **kwargs: Any) -> tuple[nn.Module, int, int]:
    """Any registered ``kernelkit.models`` model as a feature extractor (``num_classes=0``).

    Returns ``(backbone, num_features, repeat_channels)``; models without an ``in_chans`` argument
    get grey images repeated to 3 channels.
    """
    from kernelkit.models import create_model

    repeat = 1
    try:
        model = create_model(name, num_classes=0, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        if "in_chans" not in str(exc):
            raise
        model = create_model(name, num_classes=0, **kwargs)
        repeat = 3 if in_chans == 1 else 1
    num_features = getattr(model, "num_features", None)
    if not isinstance(num_features, int):
        with torch.no_grad():
            model.eval()
            num_features = int(model(torch.zeros(2, in_chans * repeat, 32, 32)).shape[-1])
    return model, num_features, repeat


class AutoAugmentPerImage:
    """AutoAugment (kornia's published ``cifar10`` / ``imagenet`` policies), one sub-policy drawn per image.

    kornia draws one sub-policy per call; TEEN's ``CIFAR10Policy`` / ``ImageNetPolicy`` draw one per image,
    so the batch is augmented image by image. Randomness comes from torch's global RNG (checkpointed by the
    trainer, so a resumed run augments identically).
    """

    def __init__(self, policy: str) -> None:
        from kornia.augmentation.auto import AutoAugment

        if policy not in ("cifar10", "imagenet"):
            raise ValueError(f"unknown AutoAugment policy {policy!r}; expected cifar10 or imagenet")
        self.policy = policy
        self.augment = AutoAugment(policy=policy)

    def __call__(self, x: Tensor) -> Tensor:
        batch = x.unsqueeze(0) if x.dim() == 3 else x
        if batch.shape[1] != 3:
            raise ValueError(f"AutoAugment expects RGB images (N, 3, H, W), got shape {tuple(x.shape)}")
        out = torch.cat([self.augment(img.unsqueeze(0)) for img in batch]).clamp_(0.0, 1.0)
        return out[0] if x.dim() == 3 else out


def base_augmentation(kind: str, image_size: int) -> Callable[[Tensor], Tensor] | None:
    """Per-batch training augmentation on images in [0, 1] (tensor transforms).

    ``cifar``: TEEN's CIFAR recipe: random crop (pad 4), horizontal flip, CIFAR10 AutoAugment policy,
    Cutout (1 hole, half the image side). ``imagenet``: random resized crop, flip, ImageNet AutoAugment
    policy (TEEN's miniImageNet recipe). ``omniglot``: random shift (pad 2) only: flipping changes a
    character. ``none``: no augmentation.
    """
    from kernelkit.data.transforms import Compose, Cutout, RandomCrop, RandomHorizontalFlip, RandomResizedCrop

    if kind == "cifar":
        pad = max(1, image_size // 8)
        return Compose([RandomCrop(image_size, padding=pad), RandomHorizontalFlip(), AutoAugmentPerImage("cifar10"),
                        Cutout(image_size // 2)])
    if kind == "imagenet":
        return Compose([RandomResizedCrop(image_size), RandomHorizontalFlip(), AutoAugmentPerImage("imagenet")])
    if kind == "omniglot":
        return RandomCrop(image_size, padding=max(1, image_size // 14))
    if kind == "none":
        return None
    raise ValueError(f"unknown augmentation {kind!r}; expected cifar, imagenet, omniglot or none")


class RelabeledSubset(Dataset):
    """Rows of a dataset with labels mapped to ``0..K-1`` (the base classes' head indices)."""

    def __init__(self, dataset: Any, rows: np.ndarray, classes: Sequence[int]) -> None:
        self.dataset, self.rows = dataset, np.asarray(rows, dtype=np.int64)
        self.index = {int(c): i for i, c in enumerate(classes)}
        missing = {int(dataset.labels[r]) for r in self.rows} - set(self.index)
        if missing:
            raise ValueError(f"rows contain labels {sorted(missing)[:5]} that are not among the given classes")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x, y = self.dataset[int(self.rows[i])]
        return x, self.index[int(y)]


def train_base(net: CosineClassifierNet, train_set: Dataset, val_set: Dataset | None, cfg: BaseTrainConfig,
               out_dir: str | Path, image_size: int, section: Any = None, quiet: bool = True,
               device: str | torch.device = "cpu") -> dict[str, Any]:
    """Train ``net`` on the base session with the foundation trainer and load the best-on-validation weights.

    Resumable: re-running with the same ``out_dir`` continues from its last checkpoint.
    Returns a summary: ``history``, ``best_val_acc``, ``checkpoint``.
    """
    augment = base_augmentation(cfg.augment, image_size)

    def batch_transform(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return (augment(x) if augment is not None else x), y

    from kernelkit.train import TrainConfig, Trainer

    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, optimizer="sgd", lr=cfg.lr,
                       momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay,
                       schedule="cosine", checkpoint_every=cfg.checkpoint_every, seed=cfg.seed)
    trainer = Trainer(net, train_set, tcfg, Path(out_dir), val_set=val_set, batch_transform=batch_transform,
                      device=str(device), section=section, quiet=quiet)
    result = trainer.fit()
    best = result.best_checkpoint
    if best is not None and val_set is not None:
        _load_weights(net, best)
    history = [dict(h) for h in result.history]
    val_accs = [h["val_acc"] for h in history if h.get("val_acc") is not None]
    return {"history": history, "best_val_acc": max(val_accs) if val_accs else None,
            "checkpoint": str(best) if best else None, "config": asdict(cfg)}


def _load_weights(net: nn.Module, path: Path) -> None:
    from kernelkit.utils.checkpoint import load_tensors

    net.load_state_dict(load_tensors(path))


@torch.no_grad()
def extract_features(net: CosineClassifierNet, dataset: Dataset, rows: np.ndarray | None = None,
                     batch_size: int = 256, device: str | torch.device = "cpu") -> Tensor:
    """Features of ``dataset`` rows (all when ``rows`` is None) with the network in eval mode: ``(N, D)``."""
    from torch.utils.data import Subset

    was_training = net.training
    net.eval()
    data = Subset(dataset, [int(r) for r in rows]) if rows is not None else dataset
    out = []
    for x, _ in DataLoader(data, batch_size=batch_size, shuffle=False):
        out.append(net.features(x.to(device)).float().cpu())
    net.train(was_training)
    if not out:
        return torch.zeros(0, net.num_features)
    return torch.cat(out)


def evaluate_head(net: CosineClassifierNet, dataset: Dataset, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> float:
    """Top-1 accuracy of the trained cosine head on a relabelled dataset."""
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size):
            correct += int((net(x.to(device)).argmax(1).cpu() == y).sum())
            total += len(y)
    return correct / max(1, total)
