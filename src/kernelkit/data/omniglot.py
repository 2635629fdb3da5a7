"""Omniglot (Lake et al., Science 2015): 1,623 handwritten characters from 50 alphabets, 20 drawings each.

Two sources:

- the full background (964 characters) and evaluation (659) sets as arrays
  ``omniglot/full_npz/images_{background,evaluation}.npz`` (``images`` bool ``(N, 20, 105, 105)``, True =
  white background; a lossless conversion of the official zips) plus ``alphabet_id_ranges.tsv``;
- the official zips (``images_background.zip``, ``images_evaluation.zip``, ``images_background_small{1,2}.zip``)
  with PNGs at ``<set>/<Alphabet>/characterNN/XXXX_YY.png`` (XXXX = character ID 1..1623, YY = drawing 1..20).

Characters are the classes, in character-ID order in both. Pixels are stored as uint8 with 255 = white
background (as in the PNGs); ``invert=True`` makes strokes 255 (1.0 after scaling). ``size`` resizes with
antialiased bilinear interpolation (e.g. 28 for the usual 28×28).
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kernelkit.data._files import locate
from kernelkit.data.catalog import register_dataset
from kernelkit.data.dataset import DataFormatError, ImageDataset
from kernelkit.data.imagefolder import decode_image
from kernelkit.data.transforms import resize

NPZ_DIR = "omniglot/full_npz"
ALPHABET_TABLE = f"{NPZ_DIR}/alphabet_id_ranges.tsv"
SET_SIZES = {"background": 964, "evaluation": 659}
DRAWINGS = 20
NPZ_HOW_TO = (
    "Get images_background.npz and images_evaluation.npz (bool arrays (N, 20, 105, 105), converted losslessly "
    f"from the official Omniglot zips) from https://github.com/bitsandscraps/omniglot into <data root>/{NPZ_DIR}/, "
    "with alphabet_id_ranges.tsv (columns set, first_id, last_id, alphabet: the character-ID range of each "
    "alphabet) next to them."
)
ZIP_HOW_TO = (
    "Download the zips from https://github.com/brendenlake/omniglot/tree/master/python (images_background.zip, "
    "images_evaluation.zip, images_background_small1.zip, ...) into <data root>/omniglot/."
)
_PNG_NAME = re.compile(r"^(\d{4})_(\d{2})\.png$")


@dataclass(frozen=True)
class AlphabetRange:
    """Character IDs ``first_id..last_id`` (inclusive) belong to ``alphabet`` in ``set``."""

    set: str
    first_id: int
    last_id: int
    alphabet: str


def read_alphabet_table(path: Path) -> list[AlphabetRange]:
    """Parse ``alphabet_id_ranges.tsv`` and check that the ranges tile IDs 1..1623 without gaps."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        table = [AlphabetRange(r["set"], int(r["first_id"]), int(r["last_id"]), r["alphabet"]) for r in rows]
    except (KeyError, ValueError, TypeError) as exc:
        raise DataFormatError(f"{path}: expected tab-separated columns set, first_id, last_id, alphabet ({exc})") \
            from None
    expected = 1
    for r in table:
        if r.first_id != expected or r.last_id < r.first_id:
            raise DataFormatError(f"{path}: alphabet ranges must tile IDs 1..1623 in order; {r.alphabet!r} "
                                  f"starts at {r.first_id}, expected {expected}")
        expected = r.last_id + 1
    if expected != 1624:
        raise DataFormatError(f"{path}: ranges end at ID {expected - 1}, expected 1623")
    return table


def _bool_to_pixels(arr: np.ndarray, invert: bool, size: int | tuple[int, int] | None) -> Tensor:
    """bool ``(..., H, W)`` with True = background → uint8 ``N×1×h×w`` with 255 = background (ink if inverted).

    Converted and resized in chunks, so the full-resolution uint8 copy of a large set is never built.
    """
    flat = arr.reshape(-1, 1, *arr.shape[-2:])
    out = []
    for start in range(0, len(flat), 2048):
        chunk = flat[start:start + 2048]
        pixels = (np.logical_not(chunk) if invert else chunk).astype(np.uint8)  # 0/1 (True bytes may be 255)
        pixels *= 255
        out.append(_to_dataset_pixels(torch.from_numpy(pixels), False, size))
    return torch.cat(out) if len(out) > 1 else out[0]


def _to_dataset_pixels(images: Tensor, invert: bool, size: int | tuple[int, int] | None) -> Tensor:
    """uint8 N×1×H×W with 255 = background → optionally inverted and resized (in chunks)."""
    if invert:
        images = 255 - images
    if size is None:
        return images
    target = (size, size) if isinstance(size, int) else size
    chunks = [resize(chunk, target) for chunk in images.split(2048)]
    return torch.cat(chunks) if len(chunks) > 1 else chunks[0]


def _set_names(split: str) -> list[str]:
    if split == "all":
        return ["background", "evaluation"]
    if split not in SET_SIZES:
        raise ValueError(f"Omniglot split must be 'background', 'evaluation' or 'all', got {split!r}")
    return [split]


@register_dataset("omniglot", files=(f"{NPZ_DIR}/images_background.npz", f"{NPZ_DIR}/images_evaluation.npz",
                                     ALPHABET_TABLE), how_to=NPZ_HOW_TO)
def load_omniglot(split: str = "background", size: int | tuple[int, int] | None = None, invert: bool = False,
                  root: str | os.PathLike[str] | None = None) -> ImageDataset:
    """Omniglot from the full npz arrays: ``split`` "background" (964 classes), "evaluation" (659) or "all".

    Sample ``c·20 + s`` is drawing ``s`` of character ``c``; "all" puts the evaluation characters after
    the background ones (class = character ID - 1). ``class_info`` has ``alphabet``, ``character_id``
    (1..1623, the official XXXX) and ``set`` for each class.
    """
    sets = _set_names(split)
    table = read_alphabet_table(locate((ALPHABET_TABLE,), NPZ_HOW_TO, root))
    alphabet_of = {i: r for r in table for i in range(r.first_id, r.last_id + 1)}
    chunks, paths = [], []
    first_id = {"background": 1, "evaluation": SET_SIZES["background"] + 1}
    classes: list[str] = []
    info: dict[str, list[Any]] = {"alphabet": [], "character_id": [], "set": []}
    for name in sets:
        path = locate((f"{NPZ_DIR}/images_{name}.npz",), NPZ_HOW_TO, root)
        paths.append(str(path))
        try:
            with np.load(path, allow_pickle=False) as z:
                arr = z["images"]
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            raise DataFormatError(f"{path}: cannot read the 'images' array ({type(exc).__name__}: {exc}); "
                                  "file corrupt or truncated") from None
        want = (SET_SIZES[name], DRAWINGS, 105, 105)
        if arr.dtype != np.bool_ or arr.shape != want:
            raise DataFormatError(f"{path}: expected 'images' bool {want}, got {arr.dtype} {arr.shape}")
        chunks.append(_bool_to_pixels(arr, invert, size))
        for c in range(SET_SIZES[name]):
            cid = first_id[name] + c
            r = alphabet_of[cid]
            if r.set != name:
                raise DataFormatError(f"alphabet table puts character {cid} in set {r.set!r}, the npz in {name!r}")
            classes.append(f"{r.alphabet}/character{cid - r.first_id + 1:02d}")
            info["alphabet"].append(r.alphabet)
            info["character_id"].append(cid)
            info["set"].append(name)
    images = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    targets = torch.arange(len(classes)).repeat_interleave(DRAWINGS)
    look = ("strokes = 255 (inverted)" if invert else "background = 255") + (f", resized to {size}" if size else "")
    return ImageDataset(images, targets, classes,
                        f"Omniglot {split} from npz arrays {', '.join(paths)} ({look})", class_info=info)


@register_dataset("omniglot_zip", files=("omniglot/images_background_small1.zip",), how_to=ZIP_HOW_TO)
def load_omniglot_zip(name: str = "images_background_small1", size: int | tuple[int, int] | None = None,
                      invert: bool = False, root: str | os.PathLike[str] | None = None) -> ImageDataset:
    """One official Omniglot zip ``<root>/omniglot/<name>.zip`` (characters ordered by character ID).

    ``class_info`` has ``alphabet`` (folder name), ``character_id`` and ``set`` (the zip's top folder).
    """
    path = locate((f"omniglot/{name}.zip",), ZIP_HOW_TO, root)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFormatError(f"{path}: not a readable zip ({exc})") from None
    entries: dict[int, dict[int, str]] = {}
    folders: dict[int, tuple[str, str, str]] = {}
    with zf:
        for member in zf.namelist():
            parts = member.split("/")
            m = _PNG_NAME.match(parts[-1])
            if len(parts) != 4 or m is None:
                continue
            cid, drawing = int(m.group(1)), int(m.group(2))
            folder = (parts[0], parts[1], parts[2])
            if folders.setdefault(cid, folder) != folder:
                raise DataFormatError(f"{path}: character ID {cid} appears in {'/'.join(folders[cid])} and "
                                      f"{'/'.join(folder)}")
            entries.setdefault(cid, {})[drawing] = member
        if not entries:
            raise DataFormatError(f"{path}: no Omniglot images found (expected <set>/<Alphabet>/characterNN/"
                                  "XXXX_YY.png entries)")
        ids = sorted(entries)
        images, targets = [], []
        for k, cid in enumerate(ids):
            for drawing in sorted(entries[cid]):
                member = entries[cid][drawing]
                try:
                    data = zf.read(member)
                except (zipfile.BadZipFile, OSError, EOFError) as exc:
                    raise DataFormatError(f"{path}: cannot read {member!r} from the zip ({exc})") from None
                arr = decode_image(data, f"{path}:{member}", mode="L")
                if arr.shape != (105, 105, 1):
                    raise DataFormatError(f"{path}:{member}: expected a 105×105 image, got {arr.shape[:2]}")
                images.append(arr)
                targets.append(k)
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    pixels = _to_dataset_pixels(pixels, invert, size)
    classes = [f"{folders[c][1]}/{folders[c][2]}" for c in ids]
    info: dict[str, list[Any]] = {"alphabet": [folders[c][1] for c in ids], "character_id": list(ids),
                                  "set": [folders[c][0] for c in ids]}
    look = ("strokes = 255 (inverted)" if invert else "background = 255") + (f", resized to {size}" if size else "")
    return ImageDataset(pixels, torch.tensor(targets), classes,
                        f"Omniglot official zip {path} ({len(ids)} characters; {look})", class_info=info)
