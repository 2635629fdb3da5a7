"""Cached inference copies of parameters: reused while unchanged, made again after any change, never seen by tools."""

from __future__ import annotations

import copy
import gc

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from kernelkit.utils import derived_weights as dw
from kernelkit.utils import onednn


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    dw.clear()


def _counting_copy(calls: list[int]):  # type: ignore[no-untyped-def]
    def make(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return t * 2
    return make


def test_the_copy_is_made_once_and_reused_while_the_parameter_is_unchanged() -> None:
    p = torch.nn.Parameter(torch.randn(4, 3))
    calls: list[int] = []
    first = dw.derived(p, "double", _counting_copy(calls))
    second = dw.derived(p, "double", _counting_copy(calls))
    assert first is second and len(calls) == 1
    torch.testing.assert_close(first, p.detach() * 2)
    assert dw.cached_bytes() == 4 * 3 * 4


@pytest.mark.parametrize("change", ["copy_", "mul_", "load_state_dict", "set_data"])
def test_any_change_to_the_parameter_makes_the_copy_again(change: str) -> None:
    lin = torch.nn.Linear(3, 4)
    p = lin.weight
    calls: list[int] = []
    dw.derived(p, "double", _counting_copy(calls))
    new = torch.randn(4, 3)
    with torch.no_grad():
        if change == "copy_":
            p.copy_(new)
        elif change == "mul_":
            p.mul_(0.5)
            new = p.detach().clone()
        elif change == "load_state_dict":
            lin.load_state_dict({"weight": new, "bias": torch.zeros(4)})
        else:
            p.data = new.clone()
    got = dw.derived(p, "double", _counting_copy(calls))
    assert len(calls) == 2
    torch.testing.assert_close(got, new * 2)


def test_layouts_are_kept_apart_and_entries_go_with_their_parameter() -> None:
    p = torch.nn.Parameter(torch.randn(2, 2))
    a = dw.derived(p, "double", lambda t: t * 2)
    b = dw.derived(p, "triple", lambda t: t * 3)
    assert a is not None and b is not None and not torch.equal(a, b)
    assert dw.cached_bytes() == 2 * 16
    del p, a, b
    gc.collect()
    assert dw.cached_bytes() == 0


def test_untrackable_tensors_get_no_copy() -> None:
    with torch.inference_mode():
        inference = torch.randn(3, 3)
    assert dw.derived(inference, "double", lambda t: t * 2) is None
    assert dw.derived(torch.empty(3, 3, device="meta"), "double", lambda t: t * 2) is None
    assert dw.cached_bytes() == 0


def test_clear_drops_every_copy() -> None:
    ps = [torch.nn.Parameter(torch.randn(2)) for _ in range(3)]
    for p in ps:
        dw.derived(p, "double", lambda t: t * 2)
    assert dw.clear() == 3 and dw.cached_bytes() == 0


def test_plain_eager_call_is_false_wherever_a_tool_watches_or_autograd_records() -> None:
    x = torch.randn(2, 2)
    assert dw.plain_eager_call(x)
    assert not dw.plain_eager_call(x.requires_grad_())
    with torch.no_grad():
        assert dw.plain_eager_call(x)
    with FlopCounterMode(display=False):
        assert not dw.plain_eager_call(torch.randn(2))
    seen: list[bool] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        seen.append(dw.plain_eager_call(t))
        return t + 1
    torch.compile(fn, backend="eager", fullgraph=True)(torch.randn(2))
    assert seen == [False]


needs_packing = pytest.mark.skipif(not onednn.packing_available(), reason="oneDNN weight packing unavailable")


@needs_packing
@pytest.mark.parametrize("post", onednn.POST_OPS)
def test_packed_linear_equals_plain_and_follows_weight_changes(post: str) -> None:
    g = torch.Generator().manual_seed(4)
    lin = torch.nn.Linear(48, 80)
    x, other = torch.randn(196, 48, generator=g), torch.randn(196, 80, generator=g)
    extra = (other,) if post == "add" else ()
    with torch.no_grad():
        for _ in range(2):  # the second call takes the cached copy
            got = onednn.linear(x, lin.weight, lin.bias, post, *extra, pack=True)
            torch.testing.assert_close(got, onednn.plain_linear(x, lin.weight, lin.bias, post, *extra),
                                       rtol=1e-5, atol=1e-4)
        assert dw.cached_bytes() > 0
        lin.weight.mul_(-3.0)  # a stale packed copy would give the old product
        got = onednn.linear(x, lin.weight, lin.bias, post, *extra, pack=True)
        torch.testing.assert_close(got, onednn.plain_linear(x, lin.weight, lin.bias, post, *extra),
                                   rtol=1e-5, atol=1e-4)


@needs_packing
def test_packed_linear_leaves_autograd_and_flop_counting_to_the_plain_weight() -> None:
    lin = torch.nn.Linear(24, 16)
    x = torch.randn(32, 24, requires_grad=True)
    onednn.linear(x, lin.weight, lin.bias, pack=True).sum().backward()
    torch.testing.assert_close(x.grad, lin.weight.detach().sum(0).expand(32, 24))
    assert dw.cached_bytes() == 0  # the autograd call used the parameter itself
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        onednn.linear(x, lin.weight, lin.bias, pack=True)
    assert counter.get_total_flops() == 2 * 32 * 16 * 24 and dw.cached_bytes() == 0


@needs_packing
def test_modules_holding_cached_weights_still_deepcopy_and_give_the_same_numbers() -> None:
    lin = torch.nn.Linear(24, 16)
    x = torch.randn(8, 24)
    with torch.no_grad():
        y = onednn.linear(x, lin.weight, lin.bias, pack=True)
        twin = copy.deepcopy(lin)
        torch.testing.assert_close(onednn.linear(x, twin.weight, twin.bias, pack=True), y)
        torch.testing.assert_close(F.linear(x, twin.weight, twin.bias), y, rtol=1e-5, atol=1e-5)
