"""Where datasets live: ``--data-dir`` > ``$KERNELKIT_DATA`` > ``~/.cache/kernelkit``.

The data root has the same layout as the project's shared data folder, e.g.
``<root>/mnist/t10k-images-idx3-ubyte.gz``, ``<root>/omniglot/full_npz/images_background.npz``.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "KERNELKIT_DATA"
DEFAULT_ROOT = Path("~/.cache/kernelkit")

_override: Path | None = None


class DataNotFoundError(FileNotFoundError):
    """A dataset file is missing; the message says where it was looked for and how to get it."""


def set_data_root(path: str | os.PathLike[str] | None) -> None:
    """Set the process-wide data root (the CLI's ``--data-dir``); ``None`` clears it."""
    global _override
    if path is None:
        _override = None
        return
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise DataNotFoundError(f"{p} is a file, not a directory")
    if not p.is_dir():
        raise DataNotFoundError(f"data directory {p} does not exist")
    _override = p.resolve()


def data_root(path: str | os.PathLike[str] | None = None) -> Path:
    """Resolve the data root: explicit ``path`` > ``set_data_root`` > ``$KERNELKIT_DATA`` > default."""
    if path is not None:
        return Path(path).expanduser()
    if _override is not None:
        return _override
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return DEFAULT_ROOT.expanduser()


def data_root_source(path: str | os.PathLike[str] | None = None) -> str:
    """Which rule chose the data root (for reports)."""
    if path is not None:
        return "the caller"
    if _override is not None:
        return "--data-dir"
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}"
    return "default"


def find(relative: str, root: str | os.PathLike[str] | None = None) -> Path | None:
    """``<root>/<relative>`` if it exists, else ``None``."""
    p = data_root(root) / relative
    return p if p.exists() else None


def require(relative: str, how_to_get: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<root>/<relative>`` or a :class:`DataNotFoundError` explaining how to get it."""
    p = data_root(root) / relative
    if not p.exists():
        raise DataNotFoundError(
            f"{relative} not found under the data root {data_root(root)} "
            f"(chosen by {data_root_source(root)}; set --data-dir or ${ENV_VAR}). {how_to_get}"
        )
    return p
