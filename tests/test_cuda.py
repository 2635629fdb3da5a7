"""CUDA: every fast path dispatches by device, and the GPU results equal the CPU ones.

Marked ``cuda``: skipped where no GPU is present; ``make gpu-check`` runs them (``pytest -m cuda``).
The CPU-only tricks (oneDNN fused linears, the frequency-domain depthwise conv under the fixed rule) must
never run on CUDA tensors: the oneDNN linear is made to raise if called, and outputs are checked against
the same model on the CPU.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (make gpu-check)")]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).abs().max() / b.double().abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("k", [3, 13, 31])
def test_depthwise_auto_is_cudnn_on_cuda_and_matches_cpu(k: int) -> None:
    from kernelkit.layers.depthwise import depthwise_conv2d

    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 16, 24, 24, generator=g)
    w = torch.randn(16, 1, k, k, generator=g) / k
    xc, wc = x.cuda().requires_grad_(), w.cuda().requires_grad_()
    y = depthwise_conv2d(xc, wc)
    ref = F.conv2d(x, w, None, 1, k // 2, 1, 16)
    assert y.device.type == "cuda"
    assert _rel(y, ref) < 1e-4
    y.square().sum().backward()
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    F.conv2d(xr, wr, None, 1, k // 2, 1, 16).square().sum().backward()
    assert _rel(xc.grad, xr.grad) < 1e-4 and _rel(wc.grad, wr.grad) < 1e-4


def test_unireplknet_deploy_on_cuda_matches_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelkit.layers.reparam import randomize_for_reparam_check
    from kernelkit.models import create_model, reparameterize
    from kernelkit.utils import onednn

    torch.manual_seed(0)
    model = reparameterize(randomize_for_reparam_check(create_model("unireplknet_a"), seed=0).eval())
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        want = model(x)  # on the CPU, fused path and all

    def refuse(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("the CPU-only oneDNN path ran on a CUDA model")

    monkeypatch.setattr(onednn, "linear", refuse)
    with torch.no_grad():
        got = model.cuda()(x.cuda())
    assert got.device.type == "cuda"
    assert _rel(got, want) < 1e-4


def test_mixnet_and_mixconv_on_cuda_match_cpu() -> None:
    from kernelkit.layers import MixConv2d
    from kernelkit.models import create_model

    torch.manual_seed(0)
    for model, shape in ((create_model("mixnet_s").eval(), (2, 3, 64, 64)),
                         (MixConv2d(24, kernel_sizes=(3, 5, 7, 9)).eval(), (2, 24, 20, 20))):
        x = torch.randn(*shape)
        with torch.no_grad():
            want = model(x)
            got = copy.deepcopy(model).cuda()(x.cuda())
        assert _rel(got, want) < 1e-4


def test_empirical_ntk_on_cuda_matches_cpu() -> None:
    from kernelkit.ntk import empirical

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3)).double()
    x = torch.randn(6, 8, dtype=torch.float64)
    want = empirical(net, x)
    got = empirical(copy.deepcopy(net).cuda(), x.cuda())
    assert got.device.type == "cuda"
    assert _rel(got, want) < 1e-10


def test_bench_runs_on_cuda(tmp_path) -> None:
    from kernelkit.apps.cli import app

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, ["bench", "depthwise_conv", "--quick", "--device", "cuda",
                                      "--min-run-time", "0.05", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "cuDNN" in out.read_text()
