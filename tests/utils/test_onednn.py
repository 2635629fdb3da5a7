"""The shared oneDNN linear wrapper against plain torch ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernelkit.utils import onednn

pytestmark = pytest.mark.skipif(not onednn.available(), reason="oneDNN linear primitive unavailable in this build")


@pytest.mark.parametrize("bias", [False, True])
def test_linear_post_ops_equal_plain_torch(bias: bool) -> None:
    g = torch.Generator().manual_seed(1)
    x, w, other = torch.randn(64, 48, generator=g), torch.randn(80, 48, generator=g), torch.randn(64, 80, generator=g)
    b = torch.randn(80, generator=g) if bias else None
    torch.testing.assert_close(onednn.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(onednn.linear(x, w, b, "gelu"), F.gelu(F.linear(x, w, b)), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(onednn.linear(x, w, b, "add", other), F.linear(x, w, b) + other, rtol=1e-5, atol=1e-4)


def _operands(post: str, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(2)
    x, w, b = (torch.randn(s, generator=g, dtype=dtype) for s in ((40, 24), (56, 24), (56,)))
    other = torch.randn(40, 56, generator=g, dtype=dtype) if post == "add" else None
    return x, w, b, other


@pytest.mark.parametrize("post", onednn.POST_OPS)
def test_gradients_equal_plain_torch_autograd(post: str) -> None:
    x, w, b, other = _operands(post)
    leaves = [t.clone().requires_grad_() for t in (x, w, b) + ((other,) if other is not None else ())]
    ref = [t.clone().detach().requires_grad_() for t in leaves]
    g_out = torch.randn(40, 56, generator=torch.Generator().manual_seed(3))
    onednn.linear(*leaves[:3], post, *leaves[3:]).backward(g_out)
    onednn.plain_linear(*ref[:3], post, *ref[3:]).backward(g_out)
    for got, want in zip(leaves, ref, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("post", onednn.POST_OPS)
def test_gradcheck_in_float64(post: str) -> None:
    x, w, b, other = _operands(post, torch.float64)
    small = (x[:6, :5].clone().requires_grad_(), w[:4, :5].clone().requires_grad_(), b[:4].clone().requires_grad_(),
             post, None if other is None else other[:6, :4].clone().requires_grad_())
    assert torch.autograd.gradcheck(onednn.linear, small)


def test_flop_formula_counts_2mnk() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    x, w, b, _ = _operands("gelu")
    with FlopCounterMode(display=False) as counter:
        onednn.linear(x, w, b, "gelu")
    assert counter.get_total_flops() == 2 * 40 * 56 * 24


def test_fake_impl_on_the_meta_device() -> None:
    x, w = torch.empty(7, 5, device="meta"), torch.empty(3, 5, device="meta")
    y = onednn.linear(x, w, None, "add", torch.empty(7, 3, device="meta"))
    assert y.device.type == "meta" and y.shape == (7, 3)


def test_compiles_fullgraph() -> None:
    x, w, b, other = _operands("add")
    fn = torch.compile(lambda x: onednn.linear(x, w, b, "add", other), fullgraph=True, backend="eager")
    torch.testing.assert_close(fn(x), F.linear(x, w, b) + other, rtol=1e-5, atol=1e-4)


def test_export_gets_the_plain_ops() -> None:
    class M(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w, self.b = torch.nn.Parameter(torch.randn(56, 24)), torch.nn.Parameter(torch.randn(56))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return onednn.linear(x, self.w, self.b, "gelu")

    x, m = torch.randn(40, 24), M()
    ep = torch.export.export(m, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert not any("kernelkit" in t or "mkldnn" in t for t in targets), targets
    torch.testing.assert_close(ep.module()(x), F.gelu(F.linear(x, m.w, m.b)), rtol=1e-5, atol=1e-4)


def test_dispatch_onednn_only_for_float32_cpu_outside_autocast(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[torch.dtype] = []
    real = onednn._onednn_linear
    monkeypatch.setattr(onednn, "_onednn_linear", lambda x, *a: calls.append(x.dtype) or real(x, *a))
    x, w, b, _ = _operands("none")
    onednn.linear(x, w, b)
    assert calls == [torch.float32]
    onednn.linear(x.double(), w.double(), b.double())
    onednn.linear(x.bfloat16(), w.bfloat16(), b.bfloat16())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = onednn.linear(x, w, b, "gelu")
    assert calls == [torch.float32]  # float64, bfloat16 and autocast took the plain ops
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), F.gelu(F.linear(x, w, b)), rtol=3e-2, atol=3e-2)


def test_accelerate_linears_leaves_autocast_and_export_to_f_linear() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(256, 2048)).eval()
    assert onednn.accelerate_linears(model) == 1
    x = torch.randn(8, 256)
    with torch.no_grad():
        want = F.linear(x, model[0].weight, model[0].bias)
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert model(x).dtype == torch.bfloat16
    ep = torch.export.export(model, (x,))
    assert not any("kernelkit" in str(n.target) for n in ep.graph.nodes)
