"""End to end: the official CIFAR-100 protocol on generated files in the real format, base training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kernelkit.fscil import TeenConfig
from kernelkit.fscil.data import load_digits_fscil, load_fscil_dataset
from kernelkit.fscil.pipeline import FeatureCache, default_methods, run_methods, train_base_model
from kernelkit.fscil.training import BaseTrainConfig, extract_features
from kernelkit.models import register_model
from tests.conftest import SHARED_DATA, needs_data
from tests.fscil._cifar import cifar_labels_from_splits, write_cifar100


class _Pool(nn.Module):
    """A parameter-free feature extractor (4x4 average pooling), so the protocol test stays cheap."""

    def __init__(self, in_chans: int) -> None:
        super().__init__()
        self.num_features = in_chans * 16
        self.pool = nn.AdaptiveAvgPool2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).flatten(1)


@register_model
def fscil_test_pool(num_classes: int = 0, in_chans: int = 3) -> nn.Module:
    assert num_classes == 0
    return _Pool(in_chans)


@needs_data("fscil_index_list/cifar100/session_9.txt")
def test_official_cifar100_protocol_end_to_end(tmp_path: Path) -> None:
    split = SHARED_DATA / "fscil_index_list" / "cifar100"  # type: ignore[operator]
    train_labels = cifar_labels_from_splits(split)
    write_cifar100(tmp_path, train_labels)
    data = load_fscil_dataset("cifar100", tmp_path, split_dir=split, val_fraction=0.1)
    assert len(data.train) == 50_000 and len(data.test) == 10_000
    assert np.array_equal(data.train.labels, train_labels)  # rows kept in file order
    net, _ = train_base_model(data, data.plan, "fscil_test_pool", BaseTrainConfig(epochs=0), tmp_path / "base",
                              image_size=32)
    cache = FeatureCache(net, data.train)
    test = extract_features(net, data.test, batch_size=1000)
    results = run_methods(data.plan, data.train.labels, cache, test,
                          default_methods(16.0, TeenConfig.tau, TeenConfig.alpha, ["prototype", "teen"]))
    for r in results.values():
        assert [s["num_test"] for s in r.sessions] == [6000 + 500 * t for t in range(9)]
        assert [s["classes"] for s in r.sessions] == [60 + 5 * t for t in range(9)]
        assert r.sessions[0]["acc"] > 0.9  # class patterns are separable: far above chance (1/60)
        assert r.sessions[-1]["new_acc"] > 0.5
    # validation rows were held out of the base prototypes; only plan rows were featurised
    assert len(cache._rows) == 30_000 - len(data.val_rows) + 8 * 25


def test_base_training_selects_on_validation_and_resumes(tmp_path: Path) -> None:
    data = load_digits_fscil(seed=0, image_size=8)
    cfg = BaseTrainConfig(epochs=2, batch_size=64, lr=0.05, augment="omniglot")
    net, summary = train_base_model(data, data.plan, "resnet8", cfg, tmp_path / "base", image_size=8,
                                    backbone_kwargs={"width": 4})
    assert summary["val_rows"] == len(data.val_rows) > 0
    assert summary["best_val_acc"] == pytest.approx(max(h["val_acc"] for h in summary["history"]))
    assert summary["val_head_acc"] == pytest.approx(summary["best_val_acc"])  # best weights were loaded
    again, summary2 = train_base_model(data, data.plan, "resnet8", cfg, tmp_path / "base", image_size=8,
                                       backbone_kwargs={"width": 4})
    assert summary2["val_head_acc"] == pytest.approx(summary["val_head_acc"])  # resumed, not retrained
    for a, b in zip(net.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _write_cub(root: Path, split: Path) -> None:
    """A miniature CUB_200_2011 (3 classes x 7 images, 2x2-pixel JPEGs) with its own split files."""
    from PIL import Image

    folder = root / "cub200" / "CUB_200_2011"
    lines, labels, splits, sessions = [], [], [], {1: [], 2: []}
    k = 0
    for c, name in enumerate(["001.A", "002.B", "003.C"], start=1):
        (folder / "images" / name).mkdir(parents=True)
        for j in range(7):
            k += 1
            rel = f"{name}/img_{j}.jpg"
            Image.new("RGB", (6, 4), color=(40 * c, 10 * j, 0)).save(folder / "images" / rel)
            lines.append(f"{k} {rel}")
            labels.append(f"{k} {c}")
            is_train = j < 6
            splits.append(f"{k} {int(is_train)}")
            if is_train and (c < 3 or j < 5):
                sessions[1 if c < 3 else 2].append(f"CUB_200_2011/images/{rel}")
    for name, rows in (("images.txt", lines), ("image_class_labels.txt", labels), ("train_test_split.txt", splits)):
        (folder / name).write_text("\n".join(rows) + "\n")
    split.mkdir()
    for t, rows in sessions.items():
        (split / f"session_{t}.txt").write_text("\n".join(rows) + "\n")


def test_cub_layout_loads_and_plans(tmp_path: Path) -> None:
    _write_cub(tmp_path, tmp_path / "split")
    data = load_fscil_dataset("cub200", tmp_path, split_dir=tmp_path / "split", val_fraction=0.0)
    assert [s.classes for s in data.plan.sessions] == [(0, 1), (2,)]
    assert len(data.plan.sessions[0].train_indices) == 12 and len(data.plan.sessions[1].train_indices) == 5
    assert len(data.plan.test_indices(0)) == 2 and len(data.plan.test_indices(1)) == 3
    x, y = data.train[0]
    assert x.shape == (3, 224, 224) and 0.0 <= float(x.min()) <= float(x.max()) <= 1.0 and y == 0
