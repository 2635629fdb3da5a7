"""Atomic file writes: write to a temporary file in the same directory, fsync, then rename."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not atomic with respect to other threads)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block succeeds.

    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` less the umask), not
    the owner-only mode of :func:`tempfile.mkstemp`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp (and some writers) make 0600; give open()'s mode
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], object], binary: bool = False) -> None:
    """Call ``write(f)`` on a temporary file and move it to ``path`` when it returns."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w", encoding=None if binary else "utf-8") as f:
        write(f)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data), binary=True)


def to_jsonable(obj: Any) -> Any:
    """Convert tensors, numpy values, paths and dataclasses to plain JSON types."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # torch / numpy
        return obj.tolist()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], obj: Any, indent: int = 2) -> None:
    """Atomically write ``obj`` (made JSON-safe by :func:`to_jsonable`) to ``path``."""
    write_text(path, json.dumps(to_jsonable(obj), indent=indent, ensure_ascii=False) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON, naming the file in the error when it is missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def append_jsonl(path: str | os.PathLike[str], record: Any) -> None:
    """Append one JSON line and flush it to disk (a crash loses at most the line being written)."""
    line = json.dumps(to_jsonable(record), ensure_ascii=False)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike[str], skip_partial_last: bool = True) -> list[Any]:
    """Read a JSON-lines file. A malformed line raises naming file and line number.

    A final line without a newline is an interrupted append; with ``skip_partial_last`` it is ignored.
    """
    path = Path(path)
    out = []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    partial = not text.endswith("\n") and text != ""
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if partial and i == len(lines) and skip_partial_last:
                break
            raise ValueError(f"{path}:{i}: malformed JSON line ({exc.msg})") from None
    return out


def repair_jsonl_tail(path: str | os.PathLike[str]) -> int:
    """Cut a torn final line (no trailing newline) off a JSON-lines file before appending to it again.

    Returns the number of bytes removed (0 when the file is missing, empty or intact).
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    size = path.stat().st_size
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        f.seek(0)
        keep = f.read().rfind(b"\n") + 1
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
