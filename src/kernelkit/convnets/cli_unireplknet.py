"""``kernelkit convnet`` commands of the unireplknet system."""

from __future__ import annotations

import typer


def add_commands(app: typer.Typer) -> None:
    """Attach this system's commands to the ``convnet`` group."""
