"""kernelkit's one cache folder: ``$KERNELKIT_CACHE``, else ``$XDG_CACHE_HOME/kernelkit``, else ``~/.cache/kernelkit``.

Everything kernelkit caches lives under it, one subfolder or file per kind: ``decoded/`` (decoded image
datasets), ``models/`` (converted model weights), ``tune.json`` (path choices measured by ``kernelkit tune``).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "KERNELKIT_CACHE"

__all__ = ["CACHE_ENV", "cache_root"]


def cache_root() -> Path:
    """The cache folder (not created here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kernelkit"
