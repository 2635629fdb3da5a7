"""NTK inputs: files, built-in datasets, and the training helper's loss convention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelkit.ntk.data import circle, digits, load_inputs
from kernelkit.ntk.predict import gradient_descent_mse
from kernelkit.ntk.training import fc_network, train_mse
from tests.conftest import needs_data


def test_circle_and_files(tmp_path):
    c = circle(5)
    torch.testing.assert_close(c.x.norm(dim=1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(c.y, c.x[:, 0] * c.x[:, 1])
    arr = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "a.npy", arr)
    np.savetxt(tmp_path / "a.csv", arr, delimiter=",")
    np.savez(tmp_path / "a.npz", x=arr, y=np.arange(4))
    for name in ("a.npy", "a.csv", "a.npz"):
        got = load_inputs(str(tmp_path / name))
        np.testing.assert_array_equal(got.x.numpy(), arr)
    assert load_inputs(str(tmp_path / "a.npz")).y.tolist() == [0, 1, 2, 3]
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="numeric CSV"):
        load_inputs(str(tmp_path / "t.csv"))
    (tmp_path / "a.txt").write_text("1 2\n")
    with pytest.raises(ValueError, match="unsupported"):
        load_inputs(str(tmp_path / "a.txt"))
    with pytest.raises(FileNotFoundError, match="built-in"):
        load_inputs("nope.npy")


def test_digits_fallback_without_data_root(tmp_path):
    d = digits(10, root=tmp_path)  # empty root: scikit-learn digits
    assert d.x.shape == (10, 64) and float(d.x.max()) <= 1.0 and "scikit-learn" in d.source


@needs_data("mnist/t10k-images-idx3-ubyte.gz")
def test_digits_prefers_mnist(shared_data):
    d = digits(6, root=shared_data)
    assert d.x.shape == (6, 784) and "MNIST" in d.source


def test_train_mse_follows_kernel_flow_for_a_wide_net():
    """Full-batch GD with the paper's cost matches the closed-form flow with the net's own NTK (short time)."""
    from kernelkit.ntk import empirical

    torch.manual_seed(0)
    net = fc_network(1024, 3, 0.1).double()
    x = circle(6, -2.5, 2.5).x
    y = x[:, 0] * x[:, 1]
    net(x)
    k = empirical(net, x)
    with torch.no_grad():
        f0 = net(x)[:, 0]
    out = train_mse(net, x, y, lr=1.0, steps=20)[:, 0]
    pred = gradient_descent_mse(k, y)(20.0, f0).train
    assert float((out - pred).abs().max()) < 0.05 * float((f0 - y).abs().max())


def test_train_mse_rank_update_equals_autograd_sgd():
    """The in-place rank-N update for fully connected nets takes exactly torch.optim.SGD's steps."""
    import copy

    from torch import nn

    torch.manual_seed(1)
    x = torch.randn(7, 3, dtype=torch.float64)
    nets = [fc_network(24, 3, 0.3, out=2).double(), fc_network(16, 2, 0.5, parametrization="standard").double(),
            nn.Sequential(nn.Linear(3, 12), nn.Tanh(), nn.Linear(12, 2)).double()]
    for net in nets:
        net(x)
        y = torch.randn(7, net(x).shape[1], dtype=torch.float64)
        net[0].bias.requires_grad_(False)  # a frozen parameter stays put
        fast, ref = copy.deepcopy(net), copy.deepcopy(net)
        out = train_mse(fast, x, y, lr=0.3, steps=15)
        opt = torch.optim.SGD([p for p in ref.parameters() if p.requires_grad], lr=0.3)
        for _ in range(15):
            opt.zero_grad()
            (((ref(x) - y) ** 2).sum() / (2 * y.numel())).backward()
            opt.step()
        torch.testing.assert_close(out, ref(x).detach(), rtol=1e-10, atol=1e-12)
        for p, q in zip(fast.parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
        assert [p.requires_grad for p in fast.parameters()] == [p.requires_grad for p in net.parameters()]
        torch.testing.assert_close(fast[0].bias, net[0].bias)
