"""Linearized networks: equal to the model at init, first order around it, constant NTK, closed-form training."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from kernelkit import ntk
from kernelkit.ntk.linearize import Linearized, linearize


def _model(width: int = 64, out: int = 1) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, out)).double()


def _x(n: int, seed: int) -> Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _shifted(model: nn.Module, direction: list[Tensor], eps: float) -> nn.Module:
    moved = _model()
    moved.load_state_dict(model.state_dict())
    with torch.no_grad():
        for p, d in zip(moved.parameters(), direction, strict=True):
            p.add_(eps * d)
    return moved


def test_equals_the_model_at_init_and_leaves_it_unchanged() -> None:
    model, x = _model(out=2), _x(10, 1)
    before = [p.clone() for p in model.parameters()]
    lin = linearize(model)
    assert isinstance(lin, Linearized)
    assert torch.equal(lin(x), model(x))
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    lin(x).square().sum().backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not torch.equal(lin(x), model(x))
    assert [n for n, _ in lin.named_modules()] == ["", "params"]  # the model's layers are not exposed


def test_modes_state_and_errors() -> None:
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1)).double()
    lin = linearize(model.eval())
    x = _x(6, 8)
    assert torch.equal(lin(x), model(x))
    lin.train()
    assert not torch.equal(lin(x), model(x))  # dropout acts in the copy too
    lin.eval()
    restored = linearize(model)
    with torch.no_grad():
        lin.params[0].add_(0.1)
    restored.load_state_dict(lin.state_dict())
    assert torch.equal(restored.eval()(x), lin(x))
    with pytest.raises(ValueError, match="no trainable parameters"):
        linearize(nn.Linear(3, 1).requires_grad_(False))
    with pytest.raises(ValueError, match="call it once"):
        linearize(nn.LazyLinear(2))


def test_first_order_taylor_expansion_around_init() -> None:
    model, x = _model(), _x(12, 2)
    g = torch.Generator().manual_seed(5)
    direction = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in model.parameters()]
    h = 1e-4
    # independent reference: central finite difference of the model along the direction
    derivative = (_shifted(model, direction, h)(x) - _shifted(model, direction, -h)(x)) / (2 * h)
    errors = []
    for eps in (1e-2, 5e-3):
        lin = linearize(model)
        with torch.no_grad():
            for p, d in zip(lin.params, direction, strict=True):
                p.add_(eps * d)
            out = lin(x)
            errors.append(float((out - _shifted(model, direction, eps)(x)).abs().max()))
        assert torch.allclose(out, model(x) + eps * derivative, rtol=1e-7, atol=1e-9)
    assert errors[0] > 0
    assert 3.5 < errors[0] / errors[1] < 4.5  # the model differs from its expansion at second order


def test_empirical_ntk_stays_the_initial_ntk_during_training() -> None:
    model, x, y = _model(), _x(16, 3), _x(16, 4)[:, :1]
    k0 = ntk.empirical(model, x)
    lin = linearize(model)
    assert torch.allclose(ntk.empirical(lin, x), k0, rtol=1e-12, atol=1e-12)
    trained = _model()
    opt_lin = torch.optim.Adam(lin.parameters(), lr=0.05)
    opt = torch.optim.Adam(trained.parameters(), lr=0.05)
    for _ in range(30):
        for net, o in ((lin, opt_lin), (trained, opt)):
            o.zero_grad()
            (0.5 * (net(x) - y).square().mean()).backward()
            o.step()
    moved = max(float((a.detach() - b).abs().max()) for a, b in zip(lin.params, model.parameters(), strict=True))
    assert moved > 0.1
    assert torch.allclose(ntk.empirical(lin, x), k0, rtol=1e-10, atol=1e-12)
    assert torch.allclose(ntk.empirical(lin, x, method="jacobian"), k0, rtol=1e-10, atol=1e-12)
    # the finite network's own NTK moves: the test above can fail
    assert float((ntk.empirical(trained, x) - k0).abs().max()) > 1e-3 * float(k0.abs().max())


@pytest.mark.parametrize("outputs", [1, 2])
def test_mse_gradient_descent_matches_the_closed_form(outputs: int) -> None:
    model, x, xt = _model(out=outputs), _x(20, 6), _x(7, 7)
    y = torch.sin(x[:, :outputs] * 2)
    lin = linearize(model)
    # the full NTK over (sample, logit) pairs: at finite width the logits are coupled
    k = ntk.empirical(model, x, trace=None).permute(0, 2, 1, 3).reshape(20 * outputs, 20 * outputs)
    kt = ntk.empirical(model, xt, x, trace=None).permute(0, 2, 1, 3).reshape(7 * outputs, 20 * outputs)
    n = y.numel()
    lr = 0.1 * ntk.predict.max_learning_rate(k, n)  # stable, and small enough for discrete ≈ continuous time
    opt = torch.optim.SGD(lin.parameters(), lr=lr)
    steps = 300
    with torch.no_grad():
        f0, ft0 = lin(x), lin(xt)
    expected = f0.clone()
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (lin(x) - y).square().mean()).backward()
        opt.step()
        # GD on a linear model is an exact linear recursion
        expected = expected - lr / n * (k @ (expected - y).reshape(-1)).reshape(y.shape)
    with torch.no_grad():
        f, ft = lin(x), lin(xt)
    assert torch.allclose(f, expected, rtol=1e-9, atol=1e-9)
    pred = ntk.predict.gradient_descent_mse(k, y.reshape(-1), learning_rate=lr)(steps, f0.reshape(-1),
                                                                                ft0.reshape(-1), kt)
    assert pred.test is not None
    pred.train, pred.test = pred.train.reshape(y.shape), pred.test.reshape(ft.shape)
    assert float((f - f0).abs().max()) > 0.1  # it trained
    scale = float((f - f0).abs().max())
    assert float((f - pred.train).abs().max()) < 0.02 * scale
    assert float((ft - pred.test).abs().max()) < 0.02 * scale
