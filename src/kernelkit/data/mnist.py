"""MNIST from the official IDX files (gzip as published, or uncompressed).

IDX format: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
int32, then the data in C order (big-endian for multi-byte types).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from kernelkit.data._files import locate, read_bytes
from kernelkit.data.catalog import register_dataset
from kernelkit.data.dataset import DataFormatError, ImageDataset

IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_HOW_TO = (
    f"Download the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from {MNIST_URL} (mirror of "
    "http://yann.lecun.com/exdb/mnist/) into <data root>/mnist/, gzipped as downloaded or uncompressed."
)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode one IDX blob into an array; a bad magic number or wrong size raises DataFormatError."""
    if len(data) < 4:
        raise DataFormatError(f"{name}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataFormatError(f"{name}: bad IDX magic number 0x{data[:4].hex()} (expected 0x0000TTNN with "
                              f"type TT in {sorted(hex(t) for t in IDX_TYPES)}); not an IDX file")
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DataFormatError(f"{name}: IDX header declares {ndim} dimensions but the file is {len(data)} bytes")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise DataFormatError(f"{name}: IDX file {kind}: header says shape {shape} ({expected} bytes in all), "
                              f"file has {len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


@register_dataset("mnist", files=("mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-labels-idx1-ubyte.gz"),
                  how_to=MNIST_HOW_TO)
def load_mnist(split: str = "test", root: str | os.PathLike[str] | None = None) -> ImageDataset:
    """MNIST ``split`` ("train": 60,000 or "test": 10,000 images, 1×28×28) from ``<root>/mnist/``."""
    if split not in MNIST_FILES:
        raise ValueError(f"MNIST split must be 'train' or 'test', got {split!r}")
    arrays = []
    paths = []
    for stem in MNIST_FILES[split]:
        how = MNIST_HOW_TO
        if split == "train":
            how = ("The MNIST training set needs train-images-idx3-ubyte(.gz); a data root holding only the "
                   "test set (t10k-*) can serve split='test'. " + MNIST_HOW_TO)
        path = locate((f"mnist/{stem}.gz", f"mnist/{stem}"), how, root)
        paths.append(path)
        arrays.append(parse_idx(read_bytes(path), str(path)))
    images, labels = arrays
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(f"{paths[0]}: expected uint8 images N×H×W, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataFormatError(f"{paths[1]}: expected uint8 labels N, got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataFormatError(f"{paths[0]} has {len(images)} images but {paths[1]} has {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DataFormatError(f"{paths[1]}: label {int(labels.max())} outside 0..9")
    return ImageDataset(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        targets=torch.from_numpy(labels.astype(np.int64)),
        classes=[str(d) for d in range(10)],
        source=f"MNIST {split} split, IDX files {paths[0]} and {paths[1]}",
    )
