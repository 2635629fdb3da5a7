"""Kernel regression at scale: the conjugate-gradient solve against the direct (Cholesky) solve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from kernelkit import ntk
from kernelkit.ntk import predict
from kernelkit.ntk.blocked import kernel_blocks, kernel_fn


def _data(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    return x, torch.sin(x[:, :2] @ torch.tensor([[1.0, -0.5], [0.3, 2.0]], dtype=torch.float64))


def _net() -> torch.nn.Module:
    return ntk.nn.Sequential(ntk.nn.Dense(512, bias_std=0.1), ntk.nn.ReLU(), ntk.nn.Dense(512, bias_std=0.1),
                             ntk.nn.ReLU(), ntk.nn.Dense(1, bias_std=0.1))


def test_cg_matches_cholesky_and_a_plain_linear_solve() -> None:
    x, y = _data(300)
    k = ntk.analytic(_net(), x).ntk
    assert k is not None
    reg = 1e-3
    kr = k + reg * float(k.diagonal().mean()) * torch.eye(300, dtype=torch.float64)
    exact = torch.linalg.solve(kr, y)  # independent reference: LU of the regularized kernel
    chol = predict.solve(k, y, diag_reg=reg, method="cholesky")
    cg = predict.solve(k, y, diag_reg=reg, method="cg", rtol=1e-12, block=64)
    cond = float(torch.linalg.cond(kr))
    assert torch.allclose(chol, exact, rtol=1e-8, atol=1e-8 * float(exact.abs().max()))
    rel = float((cg - exact).norm() / exact.norm())
    assert rel <= cond * 1e-12  # the documented bound: error <= cond(K + λI) · rtol
    # the stopping rule holds for the recurrence's residual; the recomputed one agrees up to rounding
    assert float(((kr @ cg - y).norm(dim=0) / y.norm(dim=0)).max()) <= 2e-12


def test_auto_switches_to_cg_beyond_max_direct_and_regression_agrees(tmp_path: Path) -> None:
    x, y = _data(260)
    xt, _ = _data(40, seed=1)
    net = _net()
    fn = kernel_fn(ntk.analytic, net, get="nngp")
    k_file = kernel_blocks(fn, x, block=64, out=tmp_path / "k.npy", progress=False)
    kt = kernel_blocks(fn, xt, x, block=64, progress=False)
    direct = predict.gradient_descent_mse(k_file.clone(), y, diag_reg=1e-4)(None, k_test_train=kt)
    on_disk = np.load(tmp_path / "k.npy", mmap_mode="r")  # read-only memmap
    cg = predict.kernel_regression(on_disk, y, kt, diag_reg=1e-4, max_direct=100, rtol=1e-11, block=50)
    chol = predict.kernel_regression(on_disk, y, kt, diag_reg=1e-4, rtol=1e-11)
    assert direct.test is not None and cg.test is not None and chol.test is not None
    assert torch.allclose(chol.test, direct.test, rtol=1e-9, atol=1e-9)
    err = float((cg.test - direct.test).abs().max() / direct.test.abs().max())
    assert err < 1e-6, err
    assert not torch.equal(cg.test, chol.test)  # the CG path really ran
    assert torch.allclose(cg.train, y, atol=0.05)  # a ridge fit, nearly interpolating


def test_one_output_column_and_errors() -> None:
    x, y = _data(50)
    k = ntk.analytic(_net(), x).ntk
    assert k is not None
    a = predict.solve(k, y[:, 0], diag_reg=1e-2, method="cg")
    assert a.shape == (50,)
    assert torch.allclose(a, predict.solve(k, y, diag_reg=1e-2)[:, 0], rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="method must be"):
        predict.solve(k, y, method="lu")
    with pytest.raises(ValueError, match="50 rows|rhs has"):
        predict.solve(k, y[:10])
    with pytest.raises(RuntimeError, match="max_iter=3"):
        predict.solve(k, y, method="cg", max_iter=3, rtol=1e-14)
    bad = k.clone()
    bad[3, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        predict.solve(bad, y, diag_reg=1e-2, method="cg")
