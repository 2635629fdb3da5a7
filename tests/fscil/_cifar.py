"""A generated CIFAR-100 in the real python format whose rows agree with the official FSCIL split files.

The official files fix which train rows belong to which session (``session_1.txt``: 60 classes x 500
rows, class by class; ``session_t.txt``: 5 classes x 5 rows). Labels are assigned so that every
listed row has the class its position implies and every class has 500 train / 100 test rows; the
images are class-dependent colour patterns plus noise, so features separate the classes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def cifar_labels_from_splits(split_dir: Path) -> np.ndarray:
    labels = np.full(50_000, -1, dtype=np.int64)
    base = np.loadtxt(split_dir / "session_1.txt", dtype=np.int64)
    labels[base] = np.arange(len(base)) // 500
    for t in range(2, 10):
        rows = np.loadtxt(split_dir / f"session_{t}.txt", dtype=np.int64)
        labels[rows] = 60 + 5 * (t - 2) + np.arange(len(rows)) // 5
    free = np.flatnonzero(labels < 0)
    counts = np.bincount(labels[labels >= 0], minlength=100)
    fill = np.concatenate([np.full(500 - counts[c], c) for c in range(100)])
    labels[free] = np.random.default_rng(0).permutation(fill)
    return labels


def write_cifar100(root: Path, train_labels: np.ndarray, seed: int = 0) -> Path:
    """``<root>/cifar-100-python/{train,test,meta}`` with 3x32x32 images (the real layout)."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, size=(100, 3, 4, 4))
    test_labels = rng.permutation(np.repeat(np.arange(100), 100))

    def images(labels: np.ndarray) -> np.ndarray:
        noisy = np.clip(patterns[labels] + rng.integers(-40, 41, size=(len(labels), 3, 4, 4)), 0, 255)
        big = noisy.astype(np.uint8).repeat(8, axis=2).repeat(8, axis=3)  # N x 3 x 32 x 32
        return np.ascontiguousarray(big).reshape(len(labels), 3072)

    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, labels in (("train", train_labels), ("test", test_labels)):
        d = {b"data": images(labels), b"fine_labels": labels.tolist(), b"coarse_labels": (labels // 5).tolist(),
             b"filenames": [b"x.png"] * len(labels), b"batch_label": b"generated"}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder
