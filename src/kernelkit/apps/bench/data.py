"""Data benchmarks: batched tensor augmentation vs per-sample loops, cached vs fresh JPEG decoding."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from kernelkit.apps.bench import BenchContext, register_benchmark
from kernelkit.data.transforms import RandomCrop, RandomHorizontalFlip


def _per_sample(transform, x: torch.Tensor) -> torch.Tensor:
    """The usual Dataset-style path: the same transform applied to one image at a time."""
    return torch.stack([transform(img) for img in x])


def _loop_random_crop(x: torch.Tensor, size: int, padding: int) -> torch.Tensor:
    """Per-sample random crop written directly with slicing (what a hand loop does)."""
    padded = F.pad(x, (padding,) * 4)
    span = padded.shape[-1] - size + 1
    offsets = torch.randint(0, span, (len(x), 2)).tolist()
    return torch.stack([p[:, t:t + size, s:s + size] for p, (t, s) in zip(padded, offsets, strict=True)])


@register_benchmark("data_transforms", title="Batched tensor augmentation vs per-sample loops (CIFAR batch)")
def bench_transforms(ctx: BenchContext) -> None:
    n = 64 if ctx.quick else 256
    x = torch.rand(n, 3, 32, 32)
    crop, flip = RandomCrop(32, padding=4), RandomHorizontalFlip()
    ctx.compare(f"RandomCrop(32, pad 4), batch {n}", kernelkit=lambda: crop(x),
                baseline=lambda: _loop_random_crop(x, 32, 4), baseline_name="per-sample slicing loop")
    ctx.compare(f"RandomCrop(32, pad 4), batch {n}", kernelkit=lambda: crop(x),
                baseline=lambda: _per_sample(crop, x), baseline_name="same transform per sample")
    ctx.compare(f"RandomHorizontalFlip, batch {n}", kernelkit=lambda: flip(x),
                baseline=lambda: _per_sample(flip, x), baseline_name="same transform per sample")


def _sample_zip(folder: Path, n_per_class: int) -> Path:
    """A generated ImageFolder zip of 32×32 JPEGs (used when the real CIFAR-10 JPEG zip is absent)."""
    import io
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    path = folder / "sample.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for c in range(10):
            for i in range(n_per_class):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format="JPEG")
                z.writestr(f"test/class{c}/{i:04d}.jpg", buf.getvalue())
    return path


@register_benchmark("image_decode", title="ImageFolder zip: cached uint8 array vs decoding every JPEG")
def bench_decode(ctx: BenchContext) -> None:
    from kernelkit.data.imagefolder import CIFAR10_JPG_FILE, load_image_folder
    from kernelkit.data.root import find

    with tempfile.TemporaryDirectory() as tmp:
        real = find(CIFAR10_JPG_FILE)
        path = real if real is not None and not ctx.quick else _sample_zip(Path(tmp), 20 if ctx.quick else 1000)
        what = "real cifar10_jpg zip" if path == real else "generated JPEG zip"
        cache = Path(tmp) / "cache"
        load_image_folder(path, cache=cache)  # fills the cache
        n = len(load_image_folder(path, cache=cache))
        ctx.compare(f"{n} images ({what})", kernelkit=lambda: load_image_folder(path, cache=cache),
                    baseline=lambda: load_image_folder(path), baseline_name="decode all JPEGs (Pillow)",
                    source=str(path))
