"""MixConv2d and split_channels against independent references (a hand-built padded kernel, brute force)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelkit import tune
from kernelkit.conv import MixConv2d, split_channels
from kernelkit.layers.mixconv import PATHS, TUNE_OP, fresh_choices, heuristic_impl, use_impl


@pytest.fixture
def tuning(tmp_path):
    """Tuning on with a private cache file (yielded) and clean in-process tables."""
    tune.clear()
    with tune.enabled(cache=tmp_path / "cache" / "tune.json") as path:
        yield path
    tune.clear()


def _mixconv_entries() -> dict:
    return {k: v for k, v in tune.entries().items() if k.startswith(f"{TUNE_OP}|")}


# ---- split_channels ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 2000), groups=st.integers(1, 12))
def test_equal_split_properties(total: int, groups: int) -> None:
    if groups > total:
        with pytest.raises(ValueError, match="non-empty"):
            split_channels(total, groups)
        return
    sizes = split_channels(total, groups, "equal")
    assert len(sizes) == groups and sum(sizes) == total
    base = total // groups
    # reference rule: every group gets total // groups, the first group also gets the whole remainder
    assert sizes[1:] == [base] * (groups - 1)
    assert sizes[0] == base + total % groups
    assert sizes == sorted(sizes, reverse=True)  # order: the remainder sits in front


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 4000), groups=st.integers(1, 10))
def test_exponential_split_properties(total: int, groups: int) -> None:
    expected = [total // 2 ** i for i in range(1, groups)]
    expected.append(total - sum(expected))
    if groups > total or min(expected) < 1:
        with pytest.raises(ValueError):
            split_channels(total, groups, "exponential")
        return
    sizes = split_channels(total, groups, "exponential")
    assert sum(sizes) == total and len(sizes) == groups
    assert sizes == expected
    # each group but the last is about half of what the previous groups left (2^-i of the total)
    for i, c in enumerate(sizes[:-1], start=1):
        assert abs(c - total / 2 ** i) < 1


def test_split_examples_from_spec() -> None:
    assert split_channels(10, 3) == [4, 3, 3]  # reference code example
    assert split_channels(32, 4) == [8, 8, 8, 8]
    assert split_channels(32, 4, "exponential") == [16, 8, 4, 4]  # paper's example
    assert split_channels(5, 1, "exponential") == [5]


@pytest.mark.parametrize(("args", "match"), [
    ((3, 4), "non-empty"), ((0, 1), "positive"), ((4, 0), "positive"), ((4, 2, "fibonacci"), "mode"),
    ((5, 4, "exponential"), "empty group"), ((2.0, 1), "positive"),
])
def test_split_errors(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split_channels(*args)


# ---- bad MixConv arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"in_channels": 8, "kernel_sizes": (3, 4)}, "odd positive"),
    ({"in_channels": 8, "kernel_sizes": (0,)}, "odd positive"),
    ({"in_channels": 8, "kernel_sizes": (-3, 5)}, "odd positive"),
    ({"in_channels": 8, "kernel_sizes": ()}, "empty"),
    ({"in_channels": 3, "kernel_sizes": (3, 5, 7, 9)}, "at least 4 channels"),
    ({"in_channels": 8, "out_channels": 16}, "channel multiplier"),
    ({"in_channels": 0}, "positive"),
    ({"in_channels": 8, "stride": 0}, "stride"),
    ({"in_channels": 8, "impl": "fft"}, "unknown impl"),
    ({"in_channels": 6, "kernel_sizes": (3, 5, 7, 9), "split": "exponential"}, "empty group"),
])
def test_mixconv_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MixConv2d(**kwargs)


def test_mixconv_bad_input_shape() -> None:
    with pytest.raises(ValueError, match=r"\(N, 8, H, W\)"):
        MixConv2d(8)(torch.randn(1, 7, 5, 5))


# ---- equivalence with ONE zero-padded depthwise conv -------------------------------------------


def reference_padded_conv(m: MixConv2d, x: torch.Tensor) -> torch.Tensor:
    """Independent reference: fill a (C, 1, K, K) zero kernel by hand, group by group, and run one conv."""
    big = max(m.kernel_sizes)
    weight = torch.zeros(m.in_channels, 1, big, big, dtype=x.dtype)
    start = 0
    for i, k in enumerate(m.kernel_sizes):
        w = getattr(m, str(i)).weight.detach()  # (c_i, 1, k', k')
        c = w.shape[0]
        if m.dilated and m.stride == 1 and k > 3:  # 3x3 taps spread (k-1)//2 apart over a k x k window
            d = (k - 1) // 2
            for a in range(3):
                for b in range(3):
                    weight[start:start + c, 0, (big - k) // 2 + a * d, (big - k) // 2 + b * d] = w[:, 0, a, b]
        else:
            o = (big - k) // 2
            weight[start:start + c, 0, o:o + k, o:o + k] = w[:, 0]
        start += c
    bias = torch.cat([getattr(m, str(i)).bias.detach() for i in range(len(m.kernel_sizes))]) if m._has_bias else None
    return F.conv2d(x, weight, bias, stride=m.stride, padding=big // 2, groups=m.in_channels)


CASES = [
    # channels, kernels, stride, split, dilated, bias, spatial
    (13, (3, 5, 7), 1, "equal", False, False, 11),
    (13, (3, 5, 7), 2, "equal", False, False, 11),
    (17, (3, 5, 7, 9), 2, "exponential", False, True, 12),
    (21, (3, 5, 7, 9), 1, "exponential", False, False, 10),
    (9, (3, 5, 7), 1, "equal", True, False, 9),  # dilated: 3x3 at dilation 1, 2, 3
    (11, (3, 5, 7, 9, 11), 1, "equal", True, True, 13),
    (11, (3, 5, 7), 2, "equal", True, False, 9),  # dilated flag ignored at stride 2 (reference rule)
    (7, (5,), 1, "equal", False, False, 8),
    (6, (1, 3), 2, "equal", False, False, 7),
]


@pytest.mark.parametrize(("channels", "kernels", "stride", "split", "dilated", "bias", "size"), CASES)
def test_mixconv_equals_one_padded_depthwise_conv(channels, kernels, stride, split, dilated, bias, size) -> None:
    torch.manual_seed(0)
    m = MixConv2d(channels, kernel_sizes=kernels, stride=stride, split=split, dilated=dilated, bias=bias).double()
    if bias:
        for i in range(len(kernels)):
            torch.nn.init.normal_(getattr(m, str(i)).bias)
    x = torch.randn(2, channels, size, size + 1, dtype=torch.float64)
    ref = reference_padded_conv(m, x)
    for impl in m.available_impls():
        out = m.run(x, impl)
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-12, msg=f"path {impl}")
    with torch.no_grad():  # the automatic choice is one of the paths above
        torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-12)


def test_split_path_matches_brute_force_loops() -> None:
    """Tiny case against explicit multiply-accumulate loops (no conv primitive at all)."""
    torch.manual_seed(1)
    m = MixConv2d(3, kernel_sizes=(3, 5), stride=1, split="equal").double()
    x = torch.randn(1, 3, 6, 5, dtype=torch.float64)
    out = m.run(x, "split")
    brute = torch.zeros_like(out)
    start = 0
    for i, k in enumerate(m.kernel_sizes):
        w = getattr(m, str(i)).weight.detach()
        p = k // 2
        xp = F.pad(x, (p, p, p, p))
        for c in range(w.shape[0]):
            for h in range(6):
                for v in range(5):
                    brute[0, start + c, h, v] = (xp[0, start + c, h:h + k, v:v + k] * w[c, 0]).sum()
        start += w.shape[0]
    torch.testing.assert_close(out, brute, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("channels", "kernels", "stride", "split", "dilated", "bias", "size"), CASES[:6])
def test_all_paths_same_gradients(channels, kernels, stride, split, dilated, bias, size) -> None:
    torch.manual_seed(2)
    m = MixConv2d(channels, kernel_sizes=kernels, stride=stride, split=split, dilated=dilated, bias=bias).double()
    x = torch.randn(2, channels, size, size, dtype=torch.float64, requires_grad=True)
    params = list(m.parameters())
    grads = {}
    for impl in m.available_impls():
        out = m.run(x, impl)
        g = torch.cos(torch.arange(out.numel(), dtype=torch.float64)).view_as(out)
        grads[impl] = torch.autograd.grad(out, [x, *params], g)
    names = ["x"] + [n for n, _ in m.named_parameters()]
    for impl, gs in grads.items():
        for name, a, b in zip(names, gs, grads["split"], strict=True):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=0, atol=1e-11, msg=f"grad of {name} via {impl}")
    # padded paths: the zero taps outside each group's kernel get no parameter at all
    assert [p.shape[-1] for p in params if p.dim() == 4] == [3 if (dilated and stride == 1) else k for k in kernels]


def test_padded_path_trains_per_group_weights() -> None:
    """One SGD step through the padded path equals one through split-concat."""
    torch.manual_seed(3)
    a = MixConv2d(12, kernel_sizes=(3, 5, 7), impl="padded").double()
    b = MixConv2d(12, kernel_sizes=(3, 5, 7), impl="split").double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 12, 9, 9, dtype=torch.float64)
    for m in (a, b):
        opt = torch.optim.SGD(m.parameters(), lr=0.1)
        (m(x) ** 2).mean().backward()
        opt.step()
    for (n, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-12, msg=n)


def test_grouped_pointwise_matches_block_reference() -> None:
    torch.manual_seed(4)
    m = MixConv2d(12, 8, kernel_sizes=(1, 1), depthwise=False).double()
    assert m.available_impls() == ["split", "grouped"]
    x = torch.randn(2, 12, 5, 5, dtype=torch.float64)
    w0, w1 = m._modules["0"].weight, m._modules["1"].weight  # (4, 6, 1, 1) each
    ref = torch.cat([torch.einsum("oc,nchw->nohw", w0[:, :, 0, 0], x[:, :6]),
                     torch.einsum("oc,nchw->nohw", w1[:, :, 0, 0], x[:, 6:])], 1)
    for impl in ("split", "grouped"):
        torch.testing.assert_close(m.run(x, impl), ref, rtol=0, atol=1e-12)
    uneven = MixConv2d(13, 7, kernel_sizes=(1, 1), depthwise=False)
    assert uneven.in_splits == [7, 6] and uneven.out_splits == [4, 3]
    assert uneven.available_impls() == ["split"]


def test_auto_choice_is_cached_and_forced_impl_respected(tuning) -> None:
    m = MixConv2d(16, kernel_sizes=(3, 5, 7, 9))
    x = torch.randn(2, 16, 24, 24)  # above TINY_NUMEL: measured
    with torch.no_grad():
        m(x)
    cache = _mixconv_entries()
    assert len(cache) == 1 and next(iter(cache.values()))["choice"] in m.available_impls()
    with torch.no_grad():
        m(x)
    assert len(_mixconv_entries()) == 1  # no re-measurement for the same shape
    m(x.requires_grad_())  # training: measured separately (forward + backward)
    assert len(_mixconv_entries()) == 2
    keys = sorted(_mixconv_entries())
    assert keys[0].endswith("|grad") and keys[1].endswith("|nograd")
    assert f"|threads{torch.get_num_threads()}|" in keys[0] and f"|torch{torch.__version__}|" in keys[0]
    with use_impl("split"):
        assert m.choose_impl(x) == "split"
    with torch.no_grad():
        assert m(torch.randn(1, 16, 4, 4)).shape == (1, 16, 4, 4)  # tiny: the fixed rule, nothing measured
    assert len(_mixconv_entries()) == 2
    with pytest.raises(ValueError, match="not available"):
        MixConv2d(8, 8, (1, 1), depthwise=False, impl="padded").choose_impl(torch.randn(1, 8, 2, 2))


@pytest.mark.parametrize("grad", [False, True])
def test_tuned_choice_is_exact(tuning, grad) -> None:
    """Whatever the measurement picks, the output and gradients equal split-concat's."""
    torch.manual_seed(5)
    m = MixConv2d(16, kernel_sizes=(3, 5, 7, 9), bias=True).double()
    x = torch.randn(2, 16, 24, 24, dtype=torch.float64, requires_grad=grad)
    with torch.set_grad_enabled(grad):
        out, ref = m(x), m.run(x, "split")
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    if grad:
        for a, b in zip(torch.autograd.grad(out.sum(), [x, *m.parameters()]),
                        torch.autograd.grad(ref.sum(), [x, *m.parameters()]), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    assert len(_mixconv_entries()) == 1


def _no_timing(*args, **kwargs):
    raise AssertionError("a path was timed although the choice should come from a cache or the heuristic")


def test_choices_persist_on_disk_for_the_next_process(tuning, monkeypatch) -> None:
    m = MixConv2d(16, kernel_sizes=(3, 5, 7))
    x = torch.randn(2, 16, 24, 24)
    with torch.no_grad():
        first = m.choose_impl(x)
    assert tuning.exists()
    entries = json_entries(tuning)
    assert len(entries) == 1
    (entry,) = entries.values()
    assert entry["choice"] == first and set(entry["ms"]) <= set(m.available_impls()) and "split" in entry["ms"]
    tune.clear()  # a new process: empty in-memory table, same file
    monkeypatch.setattr(tune, "measure", _no_timing)
    fresh = MixConv2d(16, kernel_sizes=(3, 5, 7))
    with torch.no_grad():
        assert fresh.choose_impl(x) == first
    with torch.no_grad(), pytest.raises(AssertionError, match="was timed"):
        fresh.choose_impl(torch.randn(3, 16, 24, 24))  # a new shape is measured


def json_entries(path) -> dict:
    import json

    data = json.loads(path.read_text())
    assert data["version"] == tune.CACHE_VERSION
    return data["entries"]


def test_default_times_nothing_reads_nothing_and_is_deterministic(tmp_path, monkeypatch) -> None:
    """Tuning off (the default): the fixed rule, no timing, no cache file read or written."""
    monkeypatch.setattr(tune, "measure", _no_timing)
    cache = tmp_path / "tune.json"
    cache.write_text('{"version": 1, "entries": {}}')  # present but never consulted
    m = MixConv2d(32, kernel_sizes=(3, 5, 7, 9))
    x = torch.randn(4, 32, 28, 28)
    with tune.enabled(False, cache=cache):
        with torch.no_grad():
            assert m.choose_impl(x) == "padded"
        assert m.choose_impl(x.requires_grad_()) == "split_cl"
        assert m.choose_impl(x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()) == "split"
        assert MixConv2d(32, kernel_sizes=(5,)).choose_impl(x) == "split"
        assert MixConv2d(32, 16, (1, 1), depthwise=False).choose_impl(x) == "split"
    assert cache.read_text() == '{"version": 1, "entries": {}}'
    with tune.enabled(cache=cache), torch.no_grad():  # the fixed rule on request, even with tuning on
        assert MixConv2d(32, kernel_sizes=(3, 5), impl="heuristic").choose_impl(x.detach()) == "padded"
        with use_impl("heuristic"):
            assert m.choose_impl(x.detach()) == "padded"
    big = torch.empty(64, 64, 56, 56)  # > 8M elements: torch's NCHW padded kernel lost here
    assert heuristic_impl(m.available_impls(), big, False, m.kernel_sizes) == "split"


def test_fresh_choices_measures_into_a_private_file(monkeypatch) -> None:
    m = MixConv2d(16, kernel_sizes=(3, 5))
    x = torch.randn(2, 16, 24, 24)
    with fresh_choices() as path, torch.no_grad():
        m(x)
        assert path.exists() and len(json_entries(path)) == 1
    assert not path.exists()
    monkeypatch.setattr(tune, "measure", _no_timing)
    with fresh_choices("heuristic"), torch.no_grad():
        assert m.choose_impl(x) == "padded"
    with pytest.raises(ValueError, match="mode"), fresh_choices("fastest"):
        pass


def test_flop_counting_sees_split_concat(tuning, monkeypatch) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setattr(tune, "measure", _no_timing)
    m = MixConv2d(16, kernel_sizes=(3, 5, 7))
    with FlopCounterMode(display=False), torch.no_grad():
        assert m.choose_impl(torch.randn(2, 16, 24, 24)) == "split"


def test_cached_inference_weight_follows_weight_updates() -> None:
    m = MixConv2d(12, kernel_sizes=(3, 5, 7)).double().eval()
    x = torch.randn(2, 12, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        before = m.run(x, "padded")
        assert m.padded_weight() is m.padded_weight()  # built once while nothing changes
        m.convs()[1].weight.mul_(-2.0)  # in place, as an optimizer step does
        torch.testing.assert_close(m.run(x, "padded"), m.run(x, "split"), rtol=0, atol=1e-12)
        assert not torch.allclose(m.run(x, "padded"), before)
    m.load_state_dict({k: torch.zeros_like(v) for k, v in m.state_dict().items()})  # replaced storage
    with torch.no_grad():
        assert float(m.run(x, "padded").abs().max()) == 0.0
    w = m.padded_weight()
    assert w.requires_grad  # autograd needs it: built differentiably, not cached


def test_large_kernel_depthwise_path() -> None:
    m = MixConv2d(10, kernel_sizes=(3, 5, 7, 9)).double()
    assert "depthwise" in m.available_impls()
    x = torch.randn(2, 10, 12, 12, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(m.run(x, "depthwise"), m.run(x, "split"), rtol=0, atol=1e-10)
    ga = torch.autograd.grad(m.run(x, "depthwise").sum(), [x, *m.parameters()])
    gb = torch.autograd.grad(m.run(x, "split").sum(), [x, *m.parameters()])
    for a, b in zip(ga, gb, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_benchmark_smoke() -> None:
    from kernelkit.apps.bench import BenchContext
    from kernelkit.apps.bench.mixconv import bench_mixconv

    ctx = BenchContext("mixconv", quick=True, min_run_time=0.003, rounds=1)
    bench_mixconv(ctx)
    labels = [r.label for r in ctx.results]
    assert "C=96 28² B=1 fwd [auto path, fixed rule]" in labels and "C=96 28² B=4 fwd+bwd [auto path, tuned]" in labels
    assert all(r.extra["chosen"] in PATHS for r in ctx.results)
    assert all(r.extra["choice_ms"] for r in ctx.results if "tuned" in r.label)
    assert not tune.is_enabled()


def test_compile_fullgraph_reads_no_context_variable() -> None:
    """``torch.compile(fullgraph=True)`` works inside a ``use_impl`` block (traced code takes the fixed rule,
    reading no ContextVar); eager calls in the same block still follow ``use_impl``."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = MixConv2d(6, kernel_sizes=(3, 5, 7)).eval()
    x = torch.randn(2, 6, 10, 10)
    want = F.conv2d(x, layer.padded_weight(), None, 1, 3, 1, 6)  # the independent reference: one padded conv
    seen: list[str] = []
    real_run = layer.run
    try:
        with torch.no_grad(), use_impl("split"):
            got = torch.compile(layer, fullgraph=True)(x)
            layer.run = lambda t, impl: seen.append(impl) or real_run(t, impl)  # type: ignore[method-assign]
            eager = layer(x)
    finally:
        del layer.run
        torch._dynamo.reset()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(eager, want, rtol=1e-5, atol=1e-5)
    assert seen == ["split"]
