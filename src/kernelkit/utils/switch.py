"""A process-wide on/off setting with a context manager, for optional fast paths that users may turn off."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["Switch"]


class Switch:
    """``enabled`` flag; ``set(False)`` turns it off, ``with use(False): ...`` turns it off for a block."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)

    def set(self, enabled: bool) -> None:
        """Turn the setting on or off for the rest of the process."""
        self.enabled = bool(enabled)

    @contextlib.contextmanager
    def use(self, enabled: bool = True) -> Iterator[None]:
        """Set the setting inside the ``with`` block and restore the previous value after it."""
        old, self.enabled = self.enabled, bool(enabled)
        try:
            yield
        finally:
            self.enabled = old
