"""Closed-form gradient flow vs explicit integration and vs gradient descent on a linear model."""

from __future__ import annotations

import pytest
import torch

from kernelkit.ntk.predict import gradient_descent_mse, gradient_descent_mse_ensemble, max_learning_rate


def _problem(n=6, n_test=3, o=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(n + n_test, 10, dtype=torch.float64, generator=g)
    k = phi @ phi.T
    y = torch.randn(n, o, dtype=torch.float64, generator=g)
    return phi, k[:n, :n], k[n:, :n], y


def test_matches_gradient_descent_on_linear_model():
    """A linear model f = φ w trained by GD on ‖f−y‖²/(2·y.numel()) has NTK Θ = φφᵀ; small steps ≈ the flow."""
    phi, ktt, kst, y = _problem()
    n = 6
    w = torch.randn(10, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    f0_train, f0_test = (phi[:n] @ w).detach(), (phi[n:] @ w).detach()
    lr, steps = 0.01, 2000
    opt = torch.optim.SGD([w], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((phi[:n] @ w - y) ** 2).sum() / (2 * y.numel())
        loss.backward()
        opt.step()
    pred = gradient_descent_mse(ktt, y, learning_rate=lr)(steps, f0_train, f0_test, kst)
    # discrete GD vs continuous flow differ by O(lr·λ/n) per unit time; here lr·λ_max/n < 0.03
    torch.testing.assert_close(pred.train, (phi[:n] @ w).detach(), rtol=0.02, atol=0.02)
    torch.testing.assert_close(pred.test, (phi[n:] @ w).detach(), rtol=0.02, atol=0.02)


def test_matches_fine_euler_integration():
    phi, ktt, kst, y = _problem(seed=2)
    f_train = torch.randn(6, 2, dtype=torch.float64)
    f_test = torch.randn(3, 2, dtype=torch.float64)
    predict = gradient_descent_mse(ktt, y, learning_rate=0.5)
    t, dt = 30.0, 1e-3
    ft, fs = f_train.clone(), f_test.clone()
    for _ in range(int(t / dt)):
        resid = ft - y
        ft = ft - dt * 0.5 / y.numel() * ktt @ resid
        fs = fs - dt * 0.5 / y.numel() * kst @ resid
    pred = predict(t, f_train, f_test, kst)
    torch.testing.assert_close(pred.train, ft, rtol=2e-3, atol=2e-3)
    torch.testing.assert_close(pred.test, fs, rtol=2e-3, atol=2e-3)
    # several times at once, and t = ∞ equals kernel regression from the residual
    many = predict(torch.tensor([0.0, t]), f_train, f_test, kst)
    torch.testing.assert_close(many.train[0], f_train)
    torch.testing.assert_close(many.test[1], pred.test)
    inf = predict(None, f_train, f_test, kst)
    torch.testing.assert_close(inf.train, y)
    torch.testing.assert_close(inf.test, f_test + kst @ torch.linalg.solve(ktt, y - f_train))
    far = predict(1e7, f_train, f_test, kst)
    torch.testing.assert_close(far.test, inf.test, rtol=1e-6, atol=1e-6)


def test_single_output_and_singular_kernel():
    x = torch.randn(4, 2, dtype=torch.float64)
    k = x @ x.T  # rank 2
    y = torch.randn(4, dtype=torch.float64)
    pred = gradient_descent_mse(k, y)(10.0, fx_train_0=0.0)
    assert pred.train.shape == (4,)
    with pytest.raises(ValueError, match="diag_reg"):
        gradient_descent_mse(k, y)(None, 0.0, None, k[:2])
    reg = gradient_descent_mse(k, y, diag_reg=1e-3)(None, 0.0, None, k[:2])
    assert torch.isfinite(reg.test).all()


def test_ensemble_mean_and_covariance_by_sampling():
    """Sample f₀ ~ GP(0, K), run the closed-form flow for each sample, compare mean/cov."""
    phi, ntk_tt, ntk_st, y = _problem(n=5, n_test=2, o=1, seed=3)
    psi = torch.randn(7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    nngp = psi @ psi.T / 12
    k_tt, k_st, k_ss = nngp[:5, :5], nngp[5:, :5], nngp[5:, 5:]
    y = y[:, 0]
    t = 3.0
    mean, cov = gradient_descent_mse_ensemble(ntk_tt, ntk_st, k_tt, k_st, k_ss, y, t=t)
    chol = torch.linalg.cholesky(nngp + 1e-12 * torch.eye(7, dtype=torch.float64))
    draws = (chol @ torch.randn(7, 20000, dtype=torch.float64, generator=torch.Generator().manual_seed(5))).T
    predict = gradient_descent_mse(ntk_tt, y)
    outs = torch.stack([predict(t, d[:5], d[5:], ntk_st).test for d in draws[:2000]])
    torch.testing.assert_close(outs.mean(0), mean, rtol=0, atol=5 * float(outs.std(0).max()) / 2000**0.5)
    emp_cov = torch.cov(outs.T)
    torch.testing.assert_close(emp_cov, cov, rtol=0.15, atol=0.15 * float(cov.abs().max()))
    # t = ∞ with get="nngp" is GP posterior inference
    m_gp, c_gp = gradient_descent_mse_ensemble(ntk_tt, ntk_st, k_tt, k_st, k_ss, y, get="nngp")
    torch.testing.assert_close(m_gp, k_st @ torch.linalg.solve(k_tt, y))
    torch.testing.assert_close(c_gp, k_ss - k_st @ torch.linalg.solve(k_tt, k_st.T))


def test_max_learning_rate_is_stability_edge():
    _, ktt, _, y = _problem(o=1)
    y = y[:, 0]
    lr = max_learning_rate(ktt)
    n = y.numel()
    for factor, stable in ((0.95, True), (1.05, False)):
        f = torch.zeros(n, dtype=torch.float64)
        for _ in range(2000):  # discrete GD in function space of a linear model
            f = f - factor * lr / n * ktt @ (f - y)
        assert bool(torch.isfinite(f).all() and (f - y).abs().max() < 1.0) == stable
