"""File access shared by the loaders: locating files under the data root and reading (gzipped) bytes."""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

from kernelkit.data.dataset import DataFormatError
from kernelkit.data.root import data_root, require

GZIP_MAGIC = b"\x1f\x8b"


def locate(candidates: Sequence[str], how_to: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The first of ``candidates`` (paths relative to the data root) that exists.

    Raises :class:`~kernelkit.data.root.DataNotFoundError` naming the first candidate and how to get it.
    """
    base = data_root(root)
    for rel in candidates:
        p = base / rel
        if p.exists():
            return p
    alternatives = f" (also looked for {', '.join(candidates[1:])})" if len(candidates) > 1 else ""
    return require(candidates[0], f"{how_to}{alternatives}".strip(), root)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic; corrupt gzip → DataFormatError."""
    raw = path.read_bytes()
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise DataFormatError(f"{path}: truncated gzip file (the compressed stream ends early); "
                              "download it again") from None
    except (OSError, zlib.error) as exc:
        raise DataFormatError(f"{path}: corrupt gzip file ({exc}); download it again") from None
