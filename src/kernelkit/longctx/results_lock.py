"""One writer per results file.

:func:`kernelkit.longctx.runner.run_records` holds an exclusive advisory lock (``flock``) on its results file
while it repairs, reads and appends to it, so a second process given the same file (another shard, or the same
run started twice) is refused at once instead of interleaving lines with the first, cutting off the first's line
in flight as a torn tail, or answering the same keys twice. The lock belongs to the open file, so it is gone
when its process ends, also after a kill -9: a rerun resumes as before. A results file holding one shard (its
plan, :mod:`kernelkit.longctx.shards`) is not taken by another shard either, also one run after the other,
since the second plan would replace the first and the merge would lose track of the first shard.

Where ``fcntl`` does not exist (Windows) the lock is not taken; the shard check still holds.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kernelkit.longctx.shards import Shard, plan_path, read_plan

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

#: How the refusal tells the user out of the clash.
ADVICE = ("give each process its own results file (with --shard, leave out --results: each shard then writes "
          "results.shard-i-of-n.jsonl in its run directory) and merge them with `kernelkit m4le score`")


class ResultsInUseError(ValueError):
    """A results file that another process is writing, or that holds another shard's answers; the message is one
    line starting with the file."""


@contextmanager
def sole_writer(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the results file ``path`` (created if missing) for this process inside the block; raise
    :class:`ResultsInUseError` at once when another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - not on POSIX
        yield path
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise ResultsInUseError(f"{path}: another process is writing this results file; {ADVICE}") from None
        yield path
    finally:
        os.close(fd)  # releases the lock


def check_shard_owner(path: str | os.PathLike[str], shard: Shard | None) -> None:
    """Raise :class:`ResultsInUseError` when ``path`` holds the plan of a shard other than ``shard``."""
    if shard is None:
        return
    held = read_plan(path)
    if held is not None and (held.index, held.count) != (shard.index, shard.count):
        raise ResultsInUseError(f"{path}: holds the answers of shard {held.index}/{held.count} (plan "
                                f"{plan_path(path).name}), not of shard {shard.index}/{shard.count}; {ADVICE}")


def check_free(path: str | os.PathLike[str], shard: Shard | None = None) -> None:
    """Raise :class:`ResultsInUseError` now (before a model is loaded) when ``path`` is being written by another
    process or holds another shard; :func:`sole_writer` is what keeps it so while answers are appended."""
    check_shard_owner(path, shard)
    if Path(path).is_file():
        with sole_writer(path):
            pass
