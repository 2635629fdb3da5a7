"""The ``ntk_linearize`` recipe: the linearization equals the network at step 0, follows the discrete GD recursion
of its empirical NTK, and the finite–linear gap shrinks with width."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from kernelkit import ntk
from kernelkit.apps.configs.ntk_linearize import NtkLinearizeConfig
from kernelkit.apps.recipes import EXPERIMENTS, ExperimentContext
from kernelkit.apps.recipes.ntk_linearize import (
    fitted_slope,
    linearized_networks,
    record_steps,
    sup_rmse,
    train_both,
)
from kernelkit.ntk.training import fc_network
from kernelkit.runs import Run


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Small matrices: one thread avoids contention on a busy machine; the caller's setting is restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g, dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True), torch.randn(n, 2, generator=g, dtype=torch.float64)


def test_registered_with_its_config() -> None:
    entry = EXPERIMENTS.entry("ntk_linearize")
    assert entry.meta["system"] == "ntk" and entry.meta["config"] is NtkLinearizeConfig
    full, quick = asdict(NtkLinearizeConfig()), asdict(NtkLinearizeConfig.quick())
    assert {k for k in full if full[k] != quick[k]} == {"widths", "seeds", "n_train", "n_test", "steps", "records"}
    assert max(NtkLinearizeConfig().widths) == 4096 and min(NtkLinearizeConfig().widths) == 64


def test_helpers() -> None:
    assert record_steps(10, 3) == [0, 3, 6, 9, 10]
    assert record_steps(4, 10) == [0, 1, 2, 3, 4]
    assert fitted_slope([1, 4, 16], [1.0, 0.5, 0.25]) == pytest.approx(-0.5)
    a = torch.zeros(2, 3, 1)
    b = torch.stack([torch.zeros(3, 1), torch.full((3, 1), 2.0)])
    assert sup_rmse(a, b) == pytest.approx(2.0)


def test_linearization_equals_the_network_at_step_0_and_follows_its_empirical_ntk() -> None:
    x, y = _data(10, 0)
    xt, _ = _data(5, 1)
    steps, lr = 6, 2.0
    tr_f, tr_lin, te_f, te_lin = train_both(48, 3, 0.1, x, y, xt, lr, steps, list(range(steps + 1)), seed=3)
    # the network's training outputs come from the layer-wise training path, the linearization's from
    # functional_call: equal up to float32 rounding (and bitwise for the same forward, below)
    torch.testing.assert_close(tr_f[0], tr_lin[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(te_f[0], te_lin[0], rtol=1e-6, atol=1e-7)
    assert (tr_f[-1] - tr_lin[-1]).abs().max() > 1e-4  # they part after training
    # independent reference: a linear model under GD on ‖f − y‖²/(2·N·O) moves its outputs exactly by
    # f ← f − (lr/(N·O)) Θ (f − y) with the empirical NTK Θ at init (the same network, built under the same seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        net = fc_network(48, 3, 0.1, out=2)
        net(x[:1].float())
    with torch.no_grad():
        assert torch.equal(ntk.linearize(net)(x.float()), net(x.float()))
    theta = ntk.empirical(net.double(), x, trace=None).permute(0, 2, 1, 3).reshape(20, 20)
    f = tr_lin[0].reshape(-1)
    for step in range(1, steps + 1):
        f = f - lr / 20 * theta @ (f - y.reshape(-1))
        torch.testing.assert_close(tr_lin[step].reshape(-1), f, rtol=1e-4, atol=1e-5)


def test_the_finite_linear_gap_shrinks_with_width() -> None:
    x, y = _data(12, 2)
    xt, _ = _data(8, 3)
    at = list(range(0, 31, 5))
    gaps = {}
    for width in (32, 512):
        tr_f, tr_lin, te_f, te_lin = train_both(width, 3, 0.1, x, y, xt, 4.0, 30, at, seed=width)
        gaps[width] = sup_rmse(te_f, te_lin)
    assert gaps[32] > 0 and gaps[512] < 0.5 * gaps[32]  # 1/√width predicts a factor 4


def test_recipe_writes_table_verdict_and_figure(tmp_path: Path) -> None:
    cfg = replace(NtkLinearizeConfig(), widths=(16, 64), seeds=1, n_train=10, n_test=6, steps=6, records=2)
    run = Run.create("lin", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("ntk_linearize", "Linearized networks")
    state = torch.random.get_rng_state()
    linearized_networks(ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path,
                                          config=cfg))
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left alone
    res = sec.results["linearize"]
    assert [r["width"] for r in res["rows"]] == [16, 64] and res["steps"] == 6
    assert res["slope_rule_holds"] == (abs(res["slope_f_vs_lin"] + 0.5) <= cfg.slope_tolerance)
    assert any("width^" in item for kind, item in sec.items if kind == "text")
    assert (tmp_path / "run" / "plots" / "ntk_linearize_ntk_linearize.png").exists()
