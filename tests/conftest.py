"""Shared fixtures: the real-data root (../shared/data when present) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.lm_fixtures import smollm2, tiny_lm  # noqa: F401  (fixtures for the whole suite)

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    env = os.environ.get("KERNELKIT_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


SHARED_DATA = _shared_data()


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets folder; tests using it skip with a reason when it is absent."""
    if SHARED_DATA is None:
        pytest.skip("real data not found: set KERNELKIT_DATA or place the shared data at ../shared/data")
    return SHARED_DATA


def needs_data(relative: str):
    """Skip unless ``<data root>/<relative>`` exists (decorator for tests on real files)."""
    present = SHARED_DATA is not None and (SHARED_DATA / relative).exists()
    return pytest.mark.skipif(
        not present,
        reason=f"real data {relative!r} not found (set KERNELKIT_DATA or place the shared data at ../shared/data)",
    )
