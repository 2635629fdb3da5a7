"""The dataset registry and ``kernelkit info``'s scan of the data root.

A loader module registers each dataset it can read::

    @register_dataset("mnist", files=("mnist/t10k-images-idx3-ubyte.gz",),
                      how_to="Download the IDX files from ... into <root>/mnist/.")
    def load_mnist(split: str = "test", root: str | None = None) -> ImageDataset: ...

Besides the registered datasets, :func:`scan` checks data sources that have no loader here: the FSCIL
session split files (``fscil_index_list/``) and whatever the caller passes as ``extra`` (``kernelkit info``
passes the source files of the M4LE tasks, see :func:`task_sources`). A file whose name says zip, npz, gzip
or npy must start with that format's signature; otherwise it is reported ``invalid``, not found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelkit.data.root import data_root
from kernelkit.registry import Registry

DATASETS: Registry[Callable[..., Any]] = Registry("dataset", discover=("kernelkit.data",))


def register_dataset(name: str, *, files: Sequence[str] = (), how_to: str = "",
                     embedded: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a loader; ``files`` are paths relative to the data root that mark it present."""
    return DATASETS.register(name, files=tuple(files), how_to=how_to, embedded=embedded)


def load_dataset(name: str, **kwargs: Any) -> Any:
    """Load a registered dataset by name (unknown names suggest close matches)."""
    return DATASETS.get(name)(**kwargs)


@dataclass(frozen=True)
class Source:
    """Files under the data root that something reads without a registered loader."""

    name: str
    files: tuple[str, ...]
    how_to: str = ""
    used_by: str = ""


FSCIL_INDEX_LIST = Source(
    "fscil_index_list",
    files=("fscil_index_list/cifar100/session_1.txt", "fscil_index_list/mini_imagenet/session_1.txt",
           "fscil_index_list/cub200/session_1.txt"),
    how_to="Copy the session split files of CEC / TEEN (icoz69/CEC-CVPR2021 data/index_list) into "
           "<data root>/fscil_index_list/{cifar100,mini_imagenet,cub200}/.",
    used_by="fscil: session splits of cifar100, mini_imagenet, cub200")

# suffix -> (leading bytes, what the file should be)
_SIGNATURES = {
    ".zip": (b"PK", "zip archive"),
    ".npz": (b"PK", "npz archive (a zip)"),
    ".gz": (b"\x1f\x8b", "gzip file"),
    ".npy": (b"\x93NUMPY", "numpy .npy file"),
}


def check_file(path: Path) -> str | None:
    """``None`` when ``path`` exists and plausibly is what its name says; else why not, starting with
    ``missing`` or ``invalid``."""
    if not path.exists():
        return f"missing: {path}"
    sig = _SIGNATURES.get(path.suffix.lower())
    if sig is None:
        return None
    magic, kind = sig
    if not path.is_file():
        return f"invalid: {path} is not a file (expected a {kind})"
    try:
        with open(path, "rb") as f:
            head = f.read(len(magic))
    except OSError as exc:
        return f"invalid: {path} cannot be read ({exc.strerror or exc})"
    if head != magic:
        return f"invalid: {path} is not a {kind} (it does not start with the {kind} signature)"
    return None


def _row(name: str, files: Sequence[str], how_to: str, root: Path, used_by: str = "") -> dict[str, Any]:
    problems = [p for p in (check_file(root / f) for f in files) if p is not None]
    invalid = [p for p in problems if p.startswith("invalid")]
    if not files:
        status, detail = "missing", how_to or "not found"
    elif invalid:
        status, detail = "invalid", "; ".join(invalid)
    elif problems:
        status, detail = "missing", how_to or "not found: " + ", ".join(str(root / f) for f in files)
    else:
        status, detail = "found", ", ".join(str(root / f) for f in files)
    if used_by:
        detail += f" (used by {used_by})"
    return {"name": name, "found": status == "found", "status": status, "detail": detail}


def task_sources(prefix: str, tasks: Iterable[tuple[str, Sequence[str]]], how_to: str = "") -> list[Source]:
    """One :class:`Source` per distinct file set of ``tasks`` (``(task name, data files)`` pairs), named
    ``<prefix>/<first folder>`` and listing the tasks that read it; tasks without files are left out."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for task, files in tasks:
        if files:
            groups.setdefault(tuple(files), []).append(task)
    return [Source(f"{prefix}/{files[0].split('/')[0]}", files, how_to, used_by=f"{prefix}: " + ", ".join(names))
            for files, names in sorted(groups.items())]


def scan(extra: Iterable[Source] = ()) -> list[dict[str, Any]]:
    """For each registered dataset, the FSCIL split files and each ``extra`` source: its ``status`` under the
    data root (``found``, ``missing`` or ``invalid`` = present but not the format its name says), ``found``
    (status is found) and ``detail`` (where it is, why it is invalid, or how to get it)."""
    root = data_root()
    rows = []
    for e in DATASETS.entries():
        if e.meta["embedded"]:
            rows.append({"name": e.name, "found": True, "status": "found",
                         "detail": "embedded (ships with a dependency)"})
            continue
        rows.append(_row(e.name, e.meta["files"], e.meta["how_to"], root))
    for s in (FSCIL_INDEX_LIST, *extra):
        rows.append(_row(s.name, s.files, s.how_to, root, s.used_by))
    return rows
