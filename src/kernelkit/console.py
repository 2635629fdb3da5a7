"""Terminal output: one rich console and the one progress bar (:class:`ProgressBar`, :func:`progress`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

console = Console(stderr=True)


class ProgressBar:
    """The one progress bar of kernelkit: rich, on stderr, with elapsed time, ETA and an optional info field.

    Use it as a context manager and call :meth:`advance`; ``disable=True`` makes every call a no-op::

        with ProgressBar("generate", total=len(todo)) as bar:
            for item in todo:
                ...
                bar.advance(1, info=f"loss {loss:.3f}")
    """

    def __init__(self, description: str, total: int | None = None, disable: bool = False) -> None:
        self.description, self.total = description, total
        self._bar: Progress | None = None if disable else Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
            console=console, transient=not sys.stderr.isatty())
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, info="")
        return self

    def advance(self, steps: int = 1, info: str | None = None) -> None:
        """Move the bar ``steps`` forward; ``info`` replaces the text shown after the ETA."""
        if self._bar is not None:
            if info is None:
                self._bar.update(self._task, advance=steps)
            else:
                self._bar.update(self._task, advance=steps, info=info)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def progress(iterable: Iterable[T], description: str, total: int | None = None,
             disable: bool = False) -> Iterator[T]:
    """Iterate with a :class:`ProgressBar` (elapsed time and ETA) on stderr."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if disable:
        yield from iterable
        return
    with ProgressBar(description, total=total) as bar:
        for item in iterable:
            yield item
            bar.advance()
