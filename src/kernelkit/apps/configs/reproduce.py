"""Configs of the top-level commands: ``kernelkit reproduce`` and ``kernelkit bench``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernelkit.apps.configs.base import RunSettings


@dataclass(kw_only=True)
class ReproduceConfig(RunSettings):
    """``kernelkit reproduce``: which experiments ran, at which size, and each one's own config."""

    quick: bool = False
    only: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)  # resolved from ``only`` (all when empty)
    recipes: dict[str, Any] = field(default_factory=dict)  # {experiment: asdict(its config)}


@dataclass(kw_only=True)
class BenchConfig:
    """``kernelkit bench``: benchmarks to time and how long to time each measurement."""

    names: list[str] = field(default_factory=list)
    quick: bool = False
    min_run_time: float = 0.5  # seconds of timing per measurement
    threads: int = 0
    device: str = "cpu"  # benchmarks that support it run there (``BenchContext.device``); the rest stay on CPU

    def __post_init__(self) -> None:
        if not 0 < self.min_run_time < float("inf"):  # also refuses nan
            raise ValueError(f"--min-run-time: must be a finite number > 0 seconds, got {self.min_run_time:g}")
