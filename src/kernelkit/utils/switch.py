"""A scoped on/off setting for optional fast paths: changed only inside ``with switch.use(...)`` blocks.

There is no process-wide setter: a library call can never flip it behind its caller. The value lives in a
``contextvars.ContextVar``, so a block in one thread (or asyncio task) does not affect another, and the
previous value is restored when the block ends, even after an error. Layers that want a per-instance
choice take a constructor argument as well (e.g. ``DepthwiseConv2d(..., fast=False)``).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["Switch"]


class Switch:
    """``enabled`` (the default outside any block); ``with use(False): ...`` turns it off for the block."""

    def __init__(self, enabled: bool = True, name: str = "kernelkit_switch") -> None:
        self._var: contextvars.ContextVar[bool] = contextvars.ContextVar(name, default=bool(enabled))

    @property
    def enabled(self) -> bool:
        return self._var.get()

    @contextlib.contextmanager
    def use(self, enabled: bool = True) -> Iterator[None]:
        """Set the setting inside the ``with`` block and restore the previous value after it."""
        token = self._var.set(bool(enabled))
        try:
            yield
        finally:
            self._var.reset(token)
