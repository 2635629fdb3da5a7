"""depthwise_conv2d against torch's F.conv2d(groups=C): values, gradients, gradcheck, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernelkit.conv import depthwise_conv2d
from kernelkit.layers._dw_geometry import resolve_geometry
from kernelkit.layers.depthwise import STRATEGIES, choose_strategy

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")

FORCED = [s for s in STRATEGIES if s != "auto"]

# (N, C, H, W, kh, kw, stride, padding, dilation)
CASES = [
    (2, 3, 9, 11, 3, 5, 1, "same", 1),  # non-square input and kernel
    (1, 2, 8, 7, 4, 4, 1, "same", 1),  # even kernel, asymmetric 'same' padding, batch 1
    (2, 1, 10, 9, 2, 5, 1, "same", 1),  # one channel, even × odd
    (2, 3, 10, 9, 3, 3, 2, 1, 2),  # stride 2 with dilation
    (1, 5, 5, 6, 9, 7, 1, "same", 1),  # kernel larger than the input
    (2, 2, 12, 12, 3, 3, 1, "same", (3, 2)),  # anisotropic dilation
    (1, 3, 7, 9, 2, 5, (2, 1), (1, 0), 1),  # tuple stride and padding
    (2, 3, 6, 6, 5, 5, 3, 4, 1),  # padding larger than the kernel reach
    (2, 3, 13, 12, 13, 13, 1, "same", 1),  # large kernel
    (1, 3, 16, 15, 3, 3, 1, "same", 5),  # UniRepLKNet-style dilated branch
    (2, 2, 9, 8, 4, 3, 1, "valid", 2),  # 'valid', even kernel with dilation
]


def _reference(x, w, b, stride, padding, dilation):
    return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=x.shape[1])


def _values_and_grads(fn, x, w, b, gy):
    x, w, b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    y = fn(x, w, b)
    grads = torch.autograd.grad(y, (x, w, b), gy)
    return (y.detach(), *grads)


@pytest.mark.parametrize("strategy", FORCED + ["auto"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-s{c[6]}-p{c[7]}-d{c[8]}")
def test_matches_conv2d_float64(case, strategy):
    n, c, h, w_, kh, kw, stride, padding, dilation = case
    g = torch.Generator().manual_seed(CASES.index(case))
    x = torch.randn(n, c, h, w_, generator=g, dtype=torch.float64)
    w = torch.randn(c, 1, kh, kw, generator=g, dtype=torch.float64)
    b = torch.randn(c, generator=g, dtype=torch.float64)
    ref_y = _reference(x, w, b, stride, padding, dilation)
    gy = torch.randn(ref_y.shape, generator=g, dtype=torch.float64)
    ref = _values_and_grads(lambda a, k, bb: _reference(a, k, bb, stride, padding, dilation), x, w, b, gy)
    out = _values_and_grads(lambda a, k, bb: depthwise_conv2d(a, k, bb, stride, padding, dilation,
                                                              strategy=strategy), x, w, b, gy)
    for name, got, want in zip(("y", "grad_x", "grad_w", "grad_b"), out, ref, strict=True):
        assert got.shape == want.shape, name
        scale = want.abs().max().clamp_min(1.0)
        assert (got - want).abs().max() / scale < 1e-10, f"{name} differs for {strategy}"


@pytest.mark.parametrize("strategy", FORCED)
def test_matches_conv2d_float32_large_kernel(strategy):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 20, 18, generator=g)
    w = torch.randn(6, 1, 17, 17, generator=g) / 17
    b = torch.randn(6, generator=g)
    gy = torch.randn(2, 6, 20, 18, generator=g)
    ref = _values_and_grads(lambda a, k, bb: _reference(a, k, bb, 1, "same", 1), x, w, b, gy)
    out = _values_and_grads(lambda a, k, bb: depthwise_conv2d(a, k, bb, strategy=strategy), x, w, b, gy)
    for got, want in zip(out, ref, strict=True):
        assert got.dtype == torch.float32
        assert (got - want).abs().max() / want.abs().max() < 1e-4


@pytest.mark.parametrize("strategy", FORCED)
@pytest.mark.parametrize("stride, padding, dilation", [(1, "same", 1), (2, 1, 1), (1, "same", 2)])
def test_gradcheck(strategy, stride, padding, dilation):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, k, bb: depthwise_conv2d(a, k, bb, stride, padding, dilation, strategy=strategy), (x, w, b),
        fast_mode=True)


@pytest.mark.parametrize("strategy", FORCED)
def test_no_bias_and_inputs_without_grad(strategy):
    x = torch.randn(1, 4, 11, 10, dtype=torch.float64)
    w = torch.randn(4, 1, 7, 7, dtype=torch.float64, requires_grad=True)
    y = depthwise_conv2d(x, w, strategy=strategy)
    (gw,) = torch.autograd.grad(y.square().sum(), (w,))
    w_ref = w.detach().clone().requires_grad_()
    (gw_ref,) = torch.autograd.grad(_reference(x, w_ref, None, 1, "same", 1).square().sum(), (w_ref,))
    assert torch.allclose(gw, gw_ref, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        assert torch.allclose(depthwise_conv2d(x, w, strategy=strategy), y.detach(), rtol=1e-12, atol=1e-12)


def test_auto_strategy_by_shape():
    x = torch.randn(2, 8, 32, 32)
    for k, grad, expected in [(3, True, "direct"), (5, True, "direct_grouped"), (13, False, "direct"),
                              (13, True, "direct_grouped"), (31, False, "dft"), (31, True, "dft")]:
        w = torch.randn(8, 1, k, k, requires_grad=grad)
        assert choose_strategy(x, w, resolve_geometry(x, w, 1, "same", 1)) == expected, k
    w = torch.randn(8, 1, 3, 3, requires_grad=True)
    assert choose_strategy(x, w, resolve_geometry(x, w, 1, "same", 3)) == "direct_grouped"
    with torch.no_grad():
        assert choose_strategy(x, w, resolve_geometry(x, w, 1, "same", 3)) == "direct"
    big = torch.randn(1, 2, 200, 200)
    w = torch.randn(2, 1, 31, 31)
    assert choose_strategy(big, w, resolve_geometry(big, w, 1, "same", 1)) == "fft"


@pytest.mark.parametrize("args, kwargs, error, match", [
    ((torch.randn(3, 8, 8), torch.randn(3, 1, 3, 3)), {}, ValueError, "4-D input"),
    ((torch.randn(1, 4, 8, 8), torch.randn(3, 1, 3, 3)), {}, ValueError, "3 filters but the input has 4 channels"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 2, 3, 3)), {}, ValueError, r"\(C, 1, kh, kw\)"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3), torch.randn(4)), {}, ValueError, "bias must have shape"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3)), {"padding": "full"}, ValueError, "padding must be"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3)), {"stride": 2}, ValueError, "only defined for stride 1"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3)), {"dilation": 0}, ValueError, "dilation must be >= 1"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3)), {"padding": -1}, ValueError, "padding must be >= 0"),
    ((torch.randn(1, 3, 4, 8), torch.randn(3, 1, 7, 3)), {"padding": "valid"}, ValueError, "output would be empty"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3)), {"strategy": "winograd"}, ValueError, "unknown strategy"),
    ((torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3, dtype=torch.float64)), {}, TypeError, "dtype mismatch"),
])
def test_bad_input_errors(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        depthwise_conv2d(*args, **kwargs)


def test_auto_is_the_fixed_rule_unless_tuning(tmp_path, monkeypatch):
    """Tuning off: ``choose_strategy``, nothing timed or cached. Tuning on: measured once per key, cached, exact."""
    from kernelkit import tune
    from kernelkit.layers import depthwise as dw

    x = torch.randn(2, 8, 24, 24, dtype=torch.float64, requires_grad=True)
    w = torch.randn(8, 1, 9, 9, dtype=torch.float64, requires_grad=True)
    geo = resolve_geometry(x, w, 1, "same", 1)
    cache = tmp_path / "tune.json"
    tune.clear()
    with tune.enabled(False, cache=cache):
        assert dw.tuned_strategy(x, w, None, geo) == choose_strategy(x, w, geo) == "direct_grouped"
    assert not cache.exists()
    b, gy = torch.zeros(8, dtype=x.dtype), torch.ones(2, 8, 24, 24, dtype=x.dtype)
    ref = _values_and_grads(lambda a, b, c: _reference(a, b, c, 1, "same", 1), x, w, b, gy)
    with tune.enabled(cache=cache):
        got = _values_and_grads(lambda a, b, c: depthwise_conv2d(a, b, c), x, w, b, gy)
        for g, r in zip(got, ref, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)
        (key,) = tune.entries()
        entry = tune.entries()[key]
        assert key.startswith(f"{dw.TUNE_OP}|") and key.endswith("|2x8x24x24|k9x9|s1x1|d1x1|p4,4,4,4|float64|grad")
        assert entry["choice"] in STRATEGIES and {"direct", "direct_grouped", "dft", "fft"} <= set(entry["ms"])
        monkeypatch.setattr(tune, "measure", lambda *a, **k: pytest.fail("measured again"))
        assert dw.tuned_strategy(x, w, b.requires_grad_(), geo) == entry["choice"]
    tune.clear()


def test_benchmark_smoke():
    from kernelkit.apps.bench import BenchContext
    from kernelkit.apps.bench.depthwise import bench_depthwise_conv

    ctx = BenchContext("depthwise_conv", quick=True, min_run_time=0.003, rounds=1)
    bench_depthwise_conv(ctx)
    labels = [r.label for r in ctx.results]
    assert "K=13 forward+backward" in labels and any(lab.startswith("DilatedReparamBlock") for lab in labels)
    assert all(r.kernelkit_s and r.baseline_s for r in ctx.results)
    assert {r.extra["strategy"] for r in ctx.results if "strategy" in r.extra} <= set(STRATEGIES)


@pytest.mark.parametrize("size, k, d", [(1, 13, 1), (1, 3, 3), (2, 7, 1), (5, 3, 2)])
def test_direct_grouped_on_maps_smaller_than_the_kernel(size, k, d):
    x = torch.randn(3, 4, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, k, k, dtype=torch.float64, requires_grad=True)
    y = depthwise_conv2d(x, w, None, 1, "same", d, strategy="direct_grouped")
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, w), g)
    want = torch.autograd.grad(F.conv2d(x, w, None, 1, (k - 1) * d // 2, d, 4), (x, w), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


# ---- the registered op (what torch.compile, FlopCounterMode and other tracers call) -----------------

OP_STRATEGIES = [s for s in FORCED if s != "direct"]


@pytest.mark.parametrize("strategy", OP_STRATEGIES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:6])) + f"-s{c[6]}-p{c[7]}-d{c[8]}")
def test_registered_op_matches_conv2d_float64(case, strategy):
    """``kernelkit::depthwise_conv2d`` and its backward op against F.conv2d: values and all three gradients."""
    from kernelkit.layers._dw_ops import op_arguments

    n, c, h, w_, kh, kw, stride, padding, dilation = case
    g = torch.Generator().manual_seed(100 + CASES.index(case))
    x = torch.randn(n, c, h, w_, generator=g, dtype=torch.float64)
    w = torch.randn(c, 1, kh, kw, generator=g, dtype=torch.float64)
    b = torch.randn(c, generator=g, dtype=torch.float64)
    args = op_arguments(resolve_geometry(x, w, stride, padding, dilation))
    ref_y = _reference(x, w, b, stride, padding, dilation)
    gy = torch.randn(ref_y.shape, generator=g, dtype=torch.float64)
    ref = _values_and_grads(lambda a, k, bb: _reference(a, k, bb, stride, padding, dilation), x, w, b, gy)
    out = _values_and_grads(lambda a, k, bb: torch.ops.kernelkit.depthwise_conv2d(a, k, bb, *args, strategy),
                            x, w, b, gy)
    for name, got, want in zip(("y", "grad_x", "grad_w", "grad_b"), out, ref, strict=True):
        assert got.shape == want.shape, name
        assert (got - want).abs().max() / want.abs().max().clamp_min(1.0) < 1e-10, f"{name} differs for {strategy}"


@pytest.mark.parametrize("strategy", OP_STRATEGIES)
def test_registered_op_passes_opcheck(strategy):
    """Schema, fake (meta) implementation, autograd registration and tracing agree with the real op."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 9, 8, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.kernelkit.depthwise_conv2d.default,
                          (x, w, b, [1, 1], [2, 2, 1, 2], [1, 1], strategy))
    torch.library.opcheck(torch.ops.kernelkit.depthwise_conv2d.default,
                          (x.detach(), w, None, [2, 1], [1, 1, 0, 0], [1, 2], strategy))


def test_registered_op_backward_returns_only_what_is_asked():
    x = torch.randn(1, 2, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64)
    y = torch.ops.kernelkit.depthwise_conv2d(x, w, None, [1, 1], [1, 1, 1, 1], [1, 1], "dft")
    (gx,) = torch.autograd.grad(y.sum(), (x,))
    torch.testing.assert_close(gx, torch.autograd.grad(_reference(x, w, None, 1, 1, 1).sum(), (x,))[0])
    gx2, gw2 = torch.ops.kernelkit.depthwise_conv2d_backward(torch.ones(1, 2, 7, 7, dtype=torch.float64), x.detach(),
                                                            w, [1, 1], [1, 1, 1, 1], [1, 1], "dft", [True, False])
    assert gw2.numel() == 0 and gx2.shape == x.shape


def test_eager_calls_the_autograd_functions_and_tracers_the_op(monkeypatch):
    """Eager CPU calls run the strategy directly (no dispatcher round trip); under a dispatch mode the op runs."""
    from torch.utils.flop_counter import FlopCounterMode

    from kernelkit.layers import _dw_ops

    monkeypatch.setattr(_dw_ops, "forward", lambda *a, **k: pytest.fail("the registered op ran in eager mode"))
    x, w = torch.randn(1, 2, 9, 9), torch.randn(2, 1, 5, 5)
    depthwise_conv2d(x, w, strategy="dft")
    monkeypatch.undo()
    with FlopCounterMode(display=False) as counter:
        y = depthwise_conv2d(x, w, strategy="dft")
    assert torch.ops.kernelkit.depthwise_conv2d in counter.get_flop_counts()["Global"]
    torch.testing.assert_close(y, _reference(x, w, None, 1, "same", 1), rtol=1e-5, atol=1e-5)


# ---- direct_widened: the kernel one zero column wider, for oneDNN's slow channels-last widths ---------

def _cl(n: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    x = torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("kh,kw,stride,padding", [(13, 13, 1, "same"), (13, 12, 1, "same"), (7, 13, 2, 3),
                                                  (13, 13, 1, 0)])
def test_widened_float32_channels_last_equals_conv2d(kh, kw, stride, padding) -> None:
    x = _cl(2, 24, 17, 15)
    w = torch.randn(24, 1, kh, kw, generator=torch.Generator().manual_seed(1))
    b = torch.randn(24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = depthwise_conv2d(x, w, b, stride, padding, strategy="direct_widened")
        want = F.conv2d(x, w, b, stride, padding, groups=24)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_fixed_rule_widens_only_slow_channels_last_float32_widths_on_avx512() -> None:
    from kernelkit.layers._dw_widened import avx512

    w13 = torch.randn(16, 1, 13, 13)
    x = _cl(2, 16, 14, 14)  # above the size where every rule says direct

    def rule(xx: torch.Tensor, ww: torch.Tensor, dilation: int = 1) -> str:
        return choose_strategy(xx, ww, resolve_geometry(xx, ww, 1, "same", dilation))

    with torch.no_grad():
        assert rule(x, w13) == ("direct_widened" if avx512() else "direct")
        assert rule(x.contiguous(), w13) == "direct"  # NCHW: oneDNN is not slow there
        assert rule(x, torch.randn(16, 1, 11, 11)) == "direct"
        assert rule(x, torch.randn(16, 1, 15, 15)) == ("direct" if avx512() else "dft")  # oneDNN's CL kernel
        assert rule(x.contiguous(), torch.randn(16, 1, 15, 15)) == "dft"
        assert rule(x, torch.randn(16, 1, 31, 31)) == "dft"
        assert rule(x.double(), w13.double()) == "direct"
        assert rule(x, torch.randn(16, 1, 13, 13), dilation=2) != "direct_widened"
    assert rule(x, w13.requires_grad_()) != "direct_widened"  # training keeps its own strategies


def test_widened_is_invisible_to_flop_counters_and_export() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    x, w = _cl(2, 8, 14, 14), torch.randn(8, 1, 13, 13)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        depthwise_conv2d(x, w, None, strategy="direct_widened")
    assert counter.get_total_flops() == 2 * 2 * 8 * 14 * 14 * 13 * 13  # the caller's 13×13, not 13×15

    class M(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return depthwise_conv2d(t, w, None, strategy="direct_widened")

    graph = torch.export.export(M(), (x,)).graph_module.graph
    convs = [n for n in graph.nodes if n.op == "call_function" and "conv" in str(n.target)]
    assert len(convs) == 1 and not any("pad" in str(n.target) for n in graph.nodes)


def test_widened_compiles_fullgraph() -> None:
    x, w = _cl(1, 8, 14, 14), torch.randn(8, 1, 13, 13)
    fn = torch.compile(lambda t: depthwise_conv2d(t, w, None), fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(fn(x), F.conv2d(x, w, None, padding=6, groups=8), rtol=1e-6, atol=1e-6)


def test_training_on_channels_last_float32_gives_conv2d_values_and_gradients() -> None:
    """With gradients the rule keeps ``direct_grouped``; on AVX-512 its forward is the widened conv."""
    x = _cl(2, 24, 17, 15).requires_grad_()
    w = torch.randn(24, 1, 13, 13, generator=torch.Generator().manual_seed(5), requires_grad=True)
    b = torch.randn(24, generator=torch.Generator().manual_seed(6), requires_grad=True)
    gy = _cl(2, 24, 17, 15, seed=7)
    assert choose_strategy(x, w, resolve_geometry(x, w, 1, "same", 1)) == "direct_grouped"
    got = _values_and_grads(lambda a, k, bb: depthwise_conv2d(a, k, bb), x, w, b, gy)
    want = _values_and_grads(lambda a, k, bb: F.conv2d(a, k, bb, padding=6, groups=24), x, w, b, gy)
    for name, g, r in zip(("y", "grad_x", "grad_w", "grad_b"), got, want, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-4, msg=name)
