"""The config style every command and recipe follows.

- A command's inputs are one ``@dataclass(kw_only=True)`` that extends :class:`RunSettings`; its
  ``config.json`` is exactly ``dataclasses.asdict(config)`` (written by ``apps.cli.common.start_run``),
  so every input is recorded.
- Each default is written once, on the dataclass field. Command-line options take their defaults from
  the class (``tau: float = TeenConfig.tau``), never a second literal.
- A recipe's config is a dataclass whose defaults are the full run; its ``quick()`` classmethod returns
  the small preset (``dataclasses.replace`` of the full one, so only the differences are written).
"""

from __future__ import annotations

from dataclasses import dataclass

INT64_MAX = 2**63 - 1  # the largest count torch and numpy take


@dataclass(kw_only=True)
class RunSettings:
    """Settings every computing command records: ``--device --seed --threads --data-dir``.

    ``device``, ``threads`` and ``data_root`` hold what was asked until ``apps.cli.common.prepare``
    resolves them (``auto`` -> ``cpu``/``cuda``, 0 -> the thread count in use, None -> the data root).
    """

    device: str = "auto"
    seed: int = 0
    threads: int = 0
    data_root: str | None = None
