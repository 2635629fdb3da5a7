"""FSCIL datasets: CIFAR-100 (python pickles), miniImageNet / CUB-200 (image paths), the Omniglot FSCIL
protocol on the full npz arrays, and the embedded sklearn-digits fallback.

Every dataset here is an :class:`ImageSet` (yields ``(x, y)`` with ``x`` float in [0, 1], shape
``(C, H, W)``) that also exposes ``labels`` as a numpy array, which is what the protocol needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from kernelkit.fscil.protocol import SessionPlan, generate_plan

CIFAR_MEAN, CIFAR_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageSet(Dataset):
    """In-memory images (uint8 or float, ``(N, C, H, W)``) with integer labels."""

    def __init__(self, images: Tensor, labels: np.ndarray | Sequence[int], name: str = "") -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if images.dim() != 4 or images.shape[0] != len(labels):
            raise ValueError(f"{name or 'images'}: expected (N, C, H, W) images matching {len(labels)} labels, "
                             f"got shape {tuple(images.shape)}")
        self.images = images
        self.labels = labels
        self.name = name

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x = self.images[i]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        return x, int(self.labels[i])

    def subset(self, rows: np.ndarray) -> ImageSet:
        rows_t = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        return ImageSet(self.images[rows_t], self.labels[np.asarray(rows, dtype=np.int64)], self.name)


class PathImageSet(Dataset):
    """Images read lazily from files (JPEG/PNG), resized (shorter side) and centre-cropped to ``size``."""

    def __init__(self, paths: Sequence[Path], labels: np.ndarray | Sequence[int], size: int, resize: int | None = None,
                 name: str = "") -> None:
        self.paths = [Path(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64)
        self.size, self.resize, self.name = size, resize or size, name

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from PIL import Image

        with Image.open(self.paths[i]) as f:
            im = f.convert("RGB")
        w, h = im.size
        s = self.resize / min(w, h)
        im = im.resize((max(self.size, round(w * s)), max(self.size, round(h * s))), Image.Resampling.BILINEAR)
        w, h = im.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        im = im.crop((left, top, left + self.size, top + self.size))
        x = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1)
        return x.float() / 255.0, int(self.labels[i])

    def subset(self, rows: np.ndarray) -> PathImageSet:
        rows = np.asarray(rows, dtype=np.int64)
        return PathImageSet([self.paths[r] for r in rows], self.labels[rows], self.size, self.resize, self.name)


@dataclass
class FSCILData:
    """Train and test sets, an optional validation set (held out of the base training rows), the plan."""

    train: ImageSet | PathImageSet
    test: ImageSet | PathImageSet
    plan: SessionPlan
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    val_rows: np.ndarray | None = None  # train rows of base classes held out for checkpoint selection
    make_plan: Callable[[int], SessionPlan] | None = None  # seed -> plan, for generated protocols


# -- CIFAR-100 ----------------------------------------------------------------------------------


def load_cifar100(root: str | Path | None = None) -> tuple[ImageSet, ImageSet]:
    """Train and test sets of ``<root>/cifar-100-python/`` (python pickles, read safely; row order kept)."""
    from kernelkit.data import load_cifar100 as _load

    out = []
    for split in ("train", "test"):
        d = _load(split, root=root)
        out.append(ImageSet(d.images, d.targets.numpy(), f"cifar100-{split}"))
    return out[0], out[1]


# -- miniImageNet / CUB-200 ---------------------------------------------------------------------


def read_mini_imagenet_csv(path: str | Path) -> tuple[list[str], np.ndarray, list[str]]:
    """``filename,label`` rows; labels numbered by order of first appearance (TEEN's convention)."""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines()[1:] if ln.strip()]
    names, wnids = zip(*(ln.split(",") for ln in lines), strict=True)
    order = list(dict.fromkeys(wnids))
    index = {w: i for i, w in enumerate(order)}
    return list(names), np.asarray([index[w] for w in wnids], dtype=np.int64), order


def read_cub200(folder: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """CUB_200_2011 metadata: relative image paths, labels (folder number - 1), is-train flags."""
    folder = Path(folder)
    def table(name: str) -> dict[int, str]:
        p = folder / name
        if not p.is_file():
            raise FileNotFoundError(f"CUB-200 metadata {p} not found")
        return {int(a): b for a, b in (ln.split(maxsplit=1) for ln in p.read_text().splitlines() if ln.strip())}
    paths, split = table("images.txt"), table("train_test_split.txt")
    ids = sorted(paths)
    rel = [f"images/{paths[i]}" for i in ids]
    labels = np.asarray([int(paths[i].split(".", 1)[0]) - 1 for i in ids], dtype=np.int64)
    is_train = np.asarray([split[i] == "1" for i in ids])
    return rel, labels, is_train


# -- Omniglot FSCIL protocol -------------------------------------------------------------------


@dataclass(frozen=True)
class OmniglotProtocol:
    """The Omniglot FSCIL protocol used by kernelkit (all choices fixed by ``protocol_seed``).

    * Base classes: ``num_base`` background characters drawn with ``protocol_seed`` (out of 964).
    * New classes: evaluation characters (659; disjoint alphabets) arrive as ``way``-way ``shot``-shot
      sessions; which characters and which drawings are the shots is drawn with the run seed.
    * Drawings: each character's 20 drawings are split once (``protocol_seed``) into ``test_per_class``
      test drawings and the rest for training; base classes additionally hold ``val_per_class`` of
      their training drawings out as the validation split that selects the base checkpoint.
    * Images: ink = 1 on black, area-downsampled from 105x105 to ``image_size``.
    """

    num_base: int = 200
    way: int = 10
    shot: int = 5
    num_sessions: int = 9
    test_per_class: int = 5
    val_per_class: int = 2
    image_size: int = 28
    protocol_seed: int = 0


def _load_omniglot_npz(path: Path, image_size: int, chars: np.ndarray) -> Tensor:
    with np.load(path) as z:
        raw = z["images"]
        if raw.ndim != 4 or raw.shape[1] != 20:
            raise ValueError(f"{path}: expected images of shape (chars, 20, H, W), got {raw.shape}")
        sel = raw[chars]  # (k, 20, 105, 105) bool, True = background
    out = []
    for start in range(0, len(sel), 64):
        ink = torch.from_numpy(~sel[start:start + 64]).float().flatten(0, 1).unsqueeze(1)
        out.append((F.interpolate(ink, size=(image_size, image_size), mode="area") * 255).round().to(torch.uint8))
    return torch.cat(out) if out else torch.zeros(0, 1, image_size, image_size, dtype=torch.uint8)


def load_omniglot_fscil(folder: str | Path, protocol: OmniglotProtocol, seed: int) -> FSCILData:
    """The Omniglot FSCIL protocol on ``<folder>/images_background.npz`` and ``images_evaluation.npz``.

    Loads the base characters and every evaluation character once; ``data.make_plan(seed)`` draws a
    session plan (which evaluation characters arrive, in which order, and their shots).
    """
    folder = Path(folder)
    p = protocol
    files = [folder / "images_background.npz", folder / "images_evaluation.npz"]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"Omniglot array {f} not found (expected <data root>/omniglot/full_npz/)")
    with np.load(files[0]) as z:
        n_bg = z["labels"].shape[0]
    with np.load(files[1]) as z:
        n_ev = z["labels"].shape[0]
    need_new = p.way * (p.num_sessions - 1)
    if p.num_base > n_bg or need_new > n_ev:
        raise ValueError(f"protocol needs {p.num_base} background and {need_new} evaluation characters; "
                         f"the arrays have {n_bg} and {n_ev}")
    base_chars = np.sort(np.random.default_rng(p.protocol_seed).choice(n_bg, size=p.num_base, replace=False))
    new_chars = np.arange(n_ev)
    images = torch.cat([_load_omniglot_npz(files[0], p.image_size, base_chars),
                        _load_omniglot_npz(files[1], p.image_size, new_chars)])
    # Class ids: background character c -> c, evaluation character c -> n_bg + c.
    char_ids = np.concatenate([base_chars, n_bg + new_chars])
    labels = np.repeat(char_ids, 20)
    # Fixed drawing split per character (protocol seed, independent of the run seed).
    split_rng = np.random.default_rng(p.protocol_seed + 1)
    perms = np.stack([split_rng.permutation(20) for _ in range(n_bg + n_ev)])
    test_mask = np.zeros(len(labels), dtype=bool)
    val_mask = np.zeros(len(labels), dtype=bool)
    for k, c in enumerate(char_ids):
        perm = perms[c]
        test_mask[k * 20 + perm[: p.test_per_class]] = True
        if k < p.num_base:
            val_mask[k * 20 + perm[p.test_per_class: p.test_per_class + p.val_per_class]] = True
    train_rows, test_rows = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    train = ImageSet(images[torch.as_tensor(train_rows)], labels[train_rows], "omniglot-train")
    test = ImageSet(images[torch.as_tensor(test_rows)], labels[test_rows], "omniglot-test")
    val_rows = np.flatnonzero(val_mask[train_rows])
    base_ids = [int(c) for c in base_chars]
    new_ids = [int(n_bg + c) for c in new_chars]

    def make_plan(run_seed: int) -> SessionPlan:
        fit_labels = train.labels.copy()
        fit_labels[val_rows] = -1  # validation drawings are neither base training rows nor shots
        return generate_plan(fit_labels, test.labels, num_base=p.num_base, way=p.way, shot=p.shot,
                             num_sessions=p.num_sessions, seed=run_seed, base_classes=base_ids,
                             new_classes=new_ids, name="omniglot")

    source = (f"real Omniglot full arrays ({files[0].name}, {files[1].name}) from {folder}: {p.num_base} of "
              f"{n_bg} background characters as base classes (protocol seed {p.protocol_seed}), "
              f"{p.num_sessions - 1} sessions of {p.way}-way {p.shot}-shot evaluation characters (drawn per run "
              f"seed from all {n_ev}), {p.test_per_class} test drawings per character, {p.val_per_class} validation "
              f"drawings per base character, images {p.image_size}x{p.image_size}")
    return FSCILData(train, test, make_plan(seed), (0.5,), (0.5,), source, val_rows=val_rows, make_plan=make_plan)


# -- embedded fallback --------------------------------------------------------------------------


def load_digits_fscil(seed: int, num_base: int = 6, way: int = 2, shot: int = 5, num_sessions: int = 3,
                      image_size: int = 8, test_fraction: float = 0.3) -> FSCILData:
    """scikit-learn's bundled 8x8 digits as a toy FSCIL (default: 6 base classes + 2 sessions of 2 ways)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(d.images / 16.0).float().unsqueeze(1)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(1234)  # fixed train/test split of the drawings
    test_mask = np.zeros(len(y), dtype=bool)
    for c in range(10):
        rows = rng.permutation(np.flatnonzero(y == c))
        test_mask[rows[: int(round(test_fraction * len(rows)))]] = True
    tr, te = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    train = ImageSet(x[torch.as_tensor(tr)], y[tr], "digits-train")
    test = ImageSet(x[torch.as_tensor(te)], y[te], "digits-test")
    # hold 10% of each base class's training rows out for validation
    val_rows = np.concatenate([rng.permutation(np.flatnonzero(train.labels == c))[: max(1, len(tr) // 100)]
                               for c in range(num_base)])
    fit_labels = train.labels.copy()
    fit_labels[val_rows] = -1
    classes = list(range(10))

    def make_plan(run_seed: int) -> SessionPlan:
        return generate_plan(fit_labels, test.labels, num_base=num_base, way=way, shot=shot,
                             num_sessions=num_sessions, seed=run_seed, base_classes=classes[:num_base],
                             new_classes=classes[num_base:], name="digits")

    val_rows = np.asarray([r for r in val_rows if train.labels[r] < num_base], dtype=np.int64)
    source = (f"EMBEDDED FALLBACK (no Omniglot arrays found): scikit-learn digits (8x8, resized to "
              f"{image_size}x{image_size}) as a toy FSCIL: {num_base} base classes + {num_sessions - 1} sessions of "
              f"{way}-way {shot}-shot")
    return FSCILData(train, test, make_plan(seed), (0.5,), (0.5,), source, val_rows=val_rows, make_plan=make_plan)


# -- one entry point per benchmark -------------------------------------------------------------

DATASETS = ("omniglot", "cifar100", "mini_imagenet", "cub200", "digits")


def load_fscil_dataset(name: str, root: str | Path, *, seed: int = 0, split_dir: str | Path | None = None,
                       val_fraction: float = 0.1, omniglot: OmniglotProtocol | None = None) -> FSCILData:
    """An FSCIL benchmark with its session plan and validation rows.

    ``cifar100``, ``mini_imagenet`` and ``cub200`` follow the official split files (default
    ``<root>/fscil_index_list/<name>/``); ``omniglot`` is kernelkit's protocol on the full arrays;
    ``digits`` the embedded toy fallback. ``val_fraction`` of each base class's training rows (seeded)
    is held out to select the base checkpoint.
    """
    from kernelkit.fscil.protocol import plan_from_index_files, plan_from_path_files, stratified_rows

    root = Path(root)
    split = Path(split_dir) if split_dir is not None else root / "fscil_index_list" / name
    if name == "omniglot":
        return load_omniglot_fscil(root / "omniglot" / "full_npz", omniglot or OmniglotProtocol(), seed)
    if name == "digits":
        return load_digits_fscil(seed)
    train: ImageSet | PathImageSet
    test: ImageSet | PathImageSet
    if name == "cifar100":
        train, test = load_cifar100(root)
        plan = plan_from_index_files(split, train.labels, test.labels, name="cifar100")
        mean, std = CIFAR_MEAN, CIFAR_STD
        source = f"CIFAR-100 python files in {root / 'cifar-100-python'}, official split files in {split}"
    elif name == "mini_imagenet":
        names, labels, _ = read_mini_imagenet_csv(split / "train.csv")
        tnames, tlabels, _ = read_mini_imagenet_csv(split / "test.csv")
        images = root / "mini_imagenet" / "images"
        train = PathImageSet([images / n for n in names], labels, 84, 92, "mini_imagenet-train")
        test = PathImageSet([images / n for n in tnames], tlabels, 84, 92, "mini_imagenet-test")
        plan = plan_from_path_files(split, names, train.labels, test.labels, name="mini_imagenet", match="name")
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        source = f"miniImageNet images in {images}, split files and train/test.csv in {split}"
    elif name == "cub200":
        folder = root / "cub200" / "CUB_200_2011"
        rel, labels, is_train = read_cub200(folder)
        tr, te = np.flatnonzero(is_train), np.flatnonzero(~is_train)
        train = PathImageSet([folder / rel[i] for i in tr], labels[tr], 224, 256, "cub200-train")
        test = PathImageSet([folder / rel[i] for i in te], labels[te], 224, 256, "cub200-test")
        plan = plan_from_path_files(split, [rel[i] for i in tr], train.labels, test.labels, name="cub200",
                                    match="suffix")
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        source = f"CUB-200-2011 in {folder} (official train_test_split.txt), split files in {split}"
    else:
        raise ValueError(f"unknown FSCIL dataset {name!r}; expected one of {', '.join(DATASETS)}")
    val_rows = stratified_rows(train.labels, plan.sessions[0].train_indices, val_fraction, seed) \
        if val_fraction > 0 else None
    return FSCILData(train, test, plan.without_base_rows(val_rows), mean, std, source, val_rows=val_rows)
