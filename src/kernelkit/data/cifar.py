"""CIFAR-10 and CIFAR-100 from the official python pickles, unpickled without running arbitrary code.

The official files (``cifar-10-batches-py/``, ``cifar-100-python/``) are Python 2 pickles of dicts with
bytes keys holding lists, bytes and one uint8 numpy array ``data`` (N×3072, channel-major 3×32×32).
:class:`SafeUnpickler` resolves only the numpy callables that rebuild arrays; any other global is refused.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kernelkit.data._files import locate, read_bytes
from kernelkit.data.catalog import register_dataset
from kernelkit.data.dataset import DataFormatError, ImageDataset


def _numpy_core(name: str) -> Any:
    try:
        from numpy._core import multiarray as ma  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma  # type: ignore[no-redef]
    if name == "_frombuffer":
        try:
            from numpy._core.numeric import _frombuffer  # type: ignore[attr-defined]
        except ImportError:  # pragma: no cover - numpy 1.x
            from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
        return _frombuffer
    return getattr(ma, name)


# (module, name) -> resolver; the only globals a pickled numpy array (and protocol-2 bytes) needs.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_core("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_core("_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_core("_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_core("_frombuffer"),
    ("_codecs", "encode"): lambda: __import__("codecs").encode,  # how protocol 2 stores bytes from Python 3
}


class RefusedGlobalError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (it could run arbitrary code)."""


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the numpy array reconstruction callables."""

    def find_class(self, module: str, name: str) -> Any:
        resolver = _ALLOWED.get((module, name))
        if resolver is None:
            raise RefusedGlobalError(f"refusing to load global {module}.{name}: only numpy arrays, dicts, "
                                         "lists, numbers and strings are allowed in dataset pickles")
        return resolver()


def safe_load_pickle(path: Path) -> dict[str, Any]:
    """Load a dataset pickle (dict) with :class:`SafeUnpickler`; bytes keys become str."""
    data = read_bytes(path)
    try:
        obj = SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedGlobalError as exc:
        raise DataFormatError(f"{path}: cannot unpickle safely ({exc})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            OverflowError) as exc:
        raise DataFormatError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc}); "
                              "download it again") from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _field(d: dict[str, Any], key: str, path: Path) -> Any:
    if key not in d:
        raise DataFormatError(f"{path}: missing key {key!r} (has {sorted(d)}); not a CIFAR python pickle")
    return d[key]


def _names(values: Any, key: str, path: Path) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, (bytes, str)) for v in values):
        raise DataFormatError(f"{path}: {key!r} must be a list of strings")
    return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]


def _images(d: dict[str, Any], path: Path) -> np.ndarray:
    data = _field(d, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(f"{path}: 'data' must be a uint8 array N×3072 (3×32×32 per row), got {desc}")
    return data.reshape(-1, 3, 32, 32)


def _labels(d: dict[str, Any], key: str, n: int, num_classes: int, path: Path) -> np.ndarray:
    labels = np.asarray(_field(d, key, path))
    if labels.ndim != 1 or len(labels) != n or not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{path}: {key!r} must be {n} integer labels, got {labels.dtype} {labels.shape}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataFormatError(f"{path}: {key!r} has labels outside 0..{num_classes - 1}")
    return labels.astype(np.int64)


CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_HOW_TO = ("Download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and extract it into the "
                  f"data root, giving <data root>/{CIFAR10_DIR}/ with data_batch_1..5, test_batch and batches.meta.")
CIFAR100_DIR = "cifar-100-python"
CIFAR100_HOW_TO = ("Download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and extract it into the "
                   f"data root, giving <data root>/{CIFAR100_DIR}/ with train, test and meta.")


@register_dataset("cifar10", files=tuple(f"{CIFAR10_DIR}/{f}" for f in
                                         [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]),
                  how_to=CIFAR10_HOW_TO)
def load_cifar10(split: str = "train", root: str | os.PathLike[str] | None = None) -> ImageDataset:
    """CIFAR-10 ``split`` ("train": data_batch_1..5 in order, 50,000 images; "test": 10,000), 3×32×32."""
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-10 split must be 'train' or 'test', got {split!r}")
    meta_path = locate((f"{CIFAR10_DIR}/batches.meta",), CIFAR10_HOW_TO, root)
    classes = _names(_field(safe_load_pickle(meta_path), "label_names", meta_path), "label_names", meta_path)
    if len(classes) != 10:
        raise DataFormatError(f"{meta_path}: expected 10 label names, got {len(classes)}")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    images, labels, paths = [], [], []
    for name in names:
        path = locate((f"{CIFAR10_DIR}/{name}",), CIFAR10_HOW_TO, root)
        d = safe_load_pickle(path)
        x = _images(d, path)
        images.append(x)
        labels.append(_labels(d, "labels", len(x), 10, path))
        paths.append(path.name)
    return ImageDataset(
        images=torch.from_numpy(np.concatenate(images)),
        targets=torch.from_numpy(np.concatenate(labels)),
        classes=classes,
        source=f"CIFAR-10 {split} split, python pickles {meta_path.parent}/{{{', '.join(paths)}}}",
    )


@register_dataset("cifar100", files=tuple(f"{CIFAR100_DIR}/{f}" for f in ("train", "test", "meta")),
                  how_to=CIFAR100_HOW_TO)
def load_cifar100(split: str = "train", root: str | os.PathLike[str] | None = None) -> ImageDataset:
    """CIFAR-100 ``split`` ("train": 50,000, "test": 10,000) with the 100 fine labels, rows in file order.

    Row order is the file's (FSCIL session lists index the train rows in this order). ``class_info["coarse"]``
    gives each fine class's superclass name.
    """
    if split not in ("train", "test"):
        raise ValueError(f"CIFAR-100 split must be 'train' or 'test', got {split!r}")
    meta_path = locate((f"{CIFAR100_DIR}/meta",), CIFAR100_HOW_TO, root)
    meta = safe_load_pickle(meta_path)
    fine = _names(_field(meta, "fine_label_names", meta_path), "fine_label_names", meta_path)
    coarse = _names(_field(meta, "coarse_label_names", meta_path), "coarse_label_names", meta_path)
    if len(fine) != 100 or len(coarse) != 20:
        raise DataFormatError(f"{meta_path}: expected 100 fine and 20 coarse label names, "
                              f"got {len(fine)} and {len(coarse)}")
    path = locate((f"{CIFAR100_DIR}/{split}",), CIFAR100_HOW_TO, root)
    d = safe_load_pickle(path)
    x = _images(d, path)
    y = _labels(d, "fine_labels", len(x), 100, path)
    yc = _labels(d, "coarse_labels", len(x), 20, path)
    superclass: list[str] = ["?"] * 100
    for f_id, c_id in set(zip(y.tolist(), yc.tolist(), strict=True)):
        if superclass[f_id] not in ("?", coarse[c_id]):
            raise DataFormatError(f"{path}: fine class {fine[f_id]!r} has two coarse labels")
        superclass[f_id] = coarse[c_id]
    return ImageDataset(
        images=torch.from_numpy(x.copy()),
        targets=torch.from_numpy(y),
        classes=fine,
        source=f"CIFAR-100 {split} split (fine labels), python pickles {path} and {meta_path}",
        class_info={"coarse": superclass},
    )
