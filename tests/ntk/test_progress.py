"""Progress bars of ``empirical`` and ``monte_carlo``: one step per block / network, nothing printed when off."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from kernelkit import ntk
from kernelkit.ntk import empirical_kernel, monte_carlo_kernel


class _Recorder:
    """Stands in for :class:`kernelkit.console.ProgressBar` and records what it is told."""

    made: list[_Recorder] = []

    def __init__(self, description: str, total: int | None = None, disable: bool = False) -> None:
        self.description, self.total, self.disable, self.steps = description, total, disable, 0
        _Recorder.made.append(self)

    def __enter__(self) -> _Recorder:
        return self

    def advance(self, steps: int = 1, info: str | None = None) -> None:
        self.steps += steps

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[_Recorder]:
    _Recorder.made = []
    monkeypatch.setattr(empirical_kernel, "ProgressBar", _Recorder)
    monkeypatch.setattr(monte_carlo_kernel, "ProgressBar", _Recorder)
    return _Recorder.made


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2)).double()


class _Residual(nn.Module):
    """Not a chain: takes the generic (hook-found structured) route."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(torch.tanh(self.a(x)))


def _x(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("method", ["auto", "jacobian", "ntvp"])
def test_empirical_bar_counts_every_block_of_a_chunked_call(bars: list[_Recorder], method: str) -> None:
    x1, x2 = _x(10, 1), _x(7, 2)
    k = ntk.empirical(_mlp(), x1, x2, method=method, batch_size=4, progress=True)
    assert len(bars) == 1
    bar = bars[0]
    assert not bar.disable
    assert bar.total == 3 * 2 == bar.steps  # ⌈10/4⌉ row blocks × ⌈7/4⌉ column blocks
    assert torch.allclose(k, ntk.empirical(_mlp(), x1, x2, method=method))  # blocking changes nothing


def test_empirical_bar_on_a_generic_model_and_off_by_default(bars: list[_Recorder]) -> None:
    model = _Residual().double()
    ntk.empirical(model, _x(9, 3), batch_size=3, progress=True)
    assert [(b.total, b.steps, b.disable) for b in bars] == [(9, 9, False)]
    bars.clear()
    ntk.empirical(model, _x(9, 3), batch_size=3)
    assert all(b.disable for b in bars)


def test_monte_carlo_bar_counts_networks(bars: list[_Recorder]) -> None:
    ntk.monte_carlo(_mlp, _x(6, 4), n_samples=3, batch_size=2, progress=True)
    mc = [b for b in bars if b.description.startswith("Monte Carlo")]
    assert [(b.total, b.steps, b.disable) for b in mc] == [(3, 3, False)]
    assert all(b.disable for b in bars if b not in mc)  # the per-network kernels show no bars of their own


def test_nothing_is_printed_when_off(capsys: Any) -> None:
    ntk.empirical(_mlp(), _x(8, 5), batch_size=2)
    ntk.monte_carlo(_mlp, _x(4, 6), n_samples=2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
