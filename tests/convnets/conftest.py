"""Shared fixtures for the ConvNet tests."""

from __future__ import annotations

import pytest

from kernelkit.conv.mixconv import CACHE_DIR_ENV, CHOICE_ENV, clear_impl_cache


@pytest.fixture
def heuristic_mixconv_paths(tmp_path, monkeypatch):
    """MixConv paths by the fixed heuristic (no timing in tests), nothing written to the user cache."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(CHOICE_ENV, "heuristic")
    clear_impl_cache()
    yield
    clear_impl_cache()
