"""Inputs for NTK computations: files (.npy/.csv), points on the circle, digits (MNIST test or sklearn)."""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["BUILTIN", "Inputs", "circle", "digits", "load_inputs"]

BUILTIN = ("circle", "digits", "mnist")


@dataclass
class Inputs:
    """An input matrix with optional targets and a sentence saying where it came from."""

    x: Tensor
    y: Tensor | None
    source: str


def circle(n: int = 64, start: float = -math.pi, stop: float = math.pi, dtype: torch.dtype = torch.float64) -> Inputs:
    """``n`` points ``(cos γ, sin γ)`` for γ evenly spaced in ``[start, stop]``; targets ``x1·x2``."""
    gamma = torch.linspace(start, stop, n, dtype=dtype)
    x = torch.stack([torch.cos(gamma), torch.sin(gamma)], dim=1)
    return Inputs(x, x[:, 0] * x[:, 1], f"generated: {n} points on the unit circle, γ in [{start:.2f}, {stop:.2f}]")


def digits(n: int | None = None, prefer_mnist: bool = True, seed: int | None = None,
           dtype: torch.dtype = torch.float64, root: str | Path | None = None) -> Inputs:
    """Flattened digit images with pixels in [0, 1] and integer labels.

    MNIST test images (784 features) from the data root when present (and ``prefer_mnist``), else the
    scikit-learn 8×8 digits (64 features) shipped with scikit-learn. ``n`` takes the first ``n`` images
    (or a random subset when ``seed`` is given).
    """
    from kernelkit.data.root import find

    ds = None
    if prefer_mnist and find("mnist/t10k-images-idx3-ubyte.gz", root) is not None:
        from kernelkit.data.mnist import load_mnist

        ds = load_mnist("test", root=root)
    if ds is None:
        from kernelkit.data.digits import load_digits

        ds = load_digits()
    images = ds.images if isinstance(ds.images, Tensor) else torch.stack(list(ds.images))
    total = len(ds)
    if n is not None and n > total:
        raise ValueError(f"asked for {n} digits but {ds.source} has {total}")
    if n is None:
        idx = torch.arange(total)
    elif seed is None:
        idx = torch.arange(n)
    else:
        idx = torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]
    x = images[idx].reshape(len(idx), -1).to(dtype) / 255.0
    return Inputs(x, ds.targets[idx], f"{ds.source}; {len(idx)} images, pixels scaled to [0, 1]")


def _check_numpy_file(path: Path) -> None:
    """Refuse a ``.npy``/``.npz`` that is not one (numpy would otherwise try it as a pickle and suggest
    loading it unsafely)."""
    if path.suffix == ".npz":
        ok, writer = zipfile.is_zipfile(path), "numpy.savez"
    else:
        with path.open("rb") as f:
            ok, writer = f.read(6) == b"\x93NUMPY", "numpy.save"
    if not ok:
        raise ValueError(f"{path}: not a valid {path.suffix} file (no {path.suffix} header; "
                         f"write it with {writer})")


def load_inputs(spec: str, n: int | None = None) -> Inputs:
    """Inputs from a ``.npy``/``.csv`` file (rows are samples; a ``.npz`` may hold ``x`` and ``y``) or a
    built-in name: ``circle``, ``digits`` (MNIST test when present, else sklearn), ``mnist``."""
    if spec in BUILTIN:
        if spec == "circle":
            return circle(n or 64)
        if spec == "mnist":
            from kernelkit.data.root import require

            require("mnist/t10k-images-idx3-ubyte.gz", "Place the MNIST IDX files under <data root>/mnist/.")
        return digits(n or 256, prefer_mnist=True)
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such file, and not a built-in dataset ({', '.join(BUILTIN)})")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; give a .npy, .npz or .csv file")
    y = None
    if path.suffix in (".npy", ".npz"):
        _check_numpy_file(path)
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a valid .npy file ({exc})") from None
    elif path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                names = sorted(z.files)
                x_arr = z["x"] if "x" in names else None
                y_arr = z["y"] if "y" in names else None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a valid .npz file ({exc})") from None
        if x_arr is None:
            raise ValueError(f"{path}: .npz needs an array named 'x' (found {names})")
        arr = x_arr
        y = None if y_arr is None else torch.as_tensor(y_arr)
    elif path.suffix == ".csv":
        try:
            arr = np.loadtxt(path, delimiter=",", ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{path}: not a numeric CSV ({exc})") from None
    else:
        raise ValueError(f"{path}: unsupported input format {path.suffix!r}; use .npy, .npz or .csv")
    if arr.ndim < 2:
        arr = arr.reshape(-1, 1)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    x = torch.as_tensor(arr, dtype=torch.float64)
    if n is not None:
        x = x[:n]
    return Inputs(x, y, f"file {path} ({tuple(x.shape)})")
