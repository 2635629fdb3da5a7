"""The dataset registry and ``kernelkit info``'s scan of the data root.

A loader module registers each dataset it can read::

    @register_dataset("mnist", files=("mnist/t10k-images-idx3-ubyte.gz",),
                      how_to="Download the IDX files from ... into <root>/mnist/.")
    def load_mnist(split: str = "test", root: str | None = None) -> ImageDataset: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def scan() -> list[dict[str, Any]]:
    """For each registered dataset: is it found under the data root, and where / how to get it."""
    root = data_root()
    rows = []
    for e in DATASETS.entries():
        files = e.meta["files"]
        if e.meta["embedded"]:
            rows.append({"name": e.name, "found": True, "detail": "embedded (ships with a dependency)"})
            continue
        present = [f for f in files if (root / f).exists()]
        found = bool(files) and len(present) == len(files)
        detail = ", ".join(str(root / f) for f in files) if found else (e.meta["how_to"] or "not found")
        rows.append({"name": e.name, "found": found, "detail": detail})
    return rows
