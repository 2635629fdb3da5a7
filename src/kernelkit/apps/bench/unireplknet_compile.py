"""UniRepLKNet deploy inference: kernelkit (eager) vs ``torch.compile`` of the official deploy model.

The official ``unireplknet.py`` is found as in :mod:`kernelkit.apps.bench.unireplknet`
(``$UNIREPLKNET_OFFICIAL_DIR`` or ``PYTHONPATH``); both models get the same deploy weights and the largest
output difference is recorded with each row. ``torch.compile`` runs with its default mode; its compile time
is paid in the warm-up (both sides get the same warm-up and statistic) and recorded in the row. A second
row per case times ``torch.compile`` of kernelkit's own deploy model against its eager run. The row against the
official model also carries the compute floor (:mod:`kernelkit.apps.bench.compute_floor`) and whether 1.2×
its time lies below it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from types import ModuleType

import torch

from kernelkit.apps.bench import BenchContext, register_benchmark
from kernelkit.apps.bench.compute_floor import floor_notes, model_flops
from kernelkit.apps.bench.unireplknet import _official_model, load_official

COMPILE_TARGET = 1.2  # the speed target against torch.compile(official deploy) that the compute-floor note checks


def _eager(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    def run() -> torch.Tensor:
        with torch.no_grad():
            return model(x)
    return run


def _compiled(model: torch.nn.Module, x: torch.Tensor) -> tuple[Callable[[], torch.Tensor], float, float]:
    """``torch.compile(model)`` as a no-grad call on ``x``, its first-call (compile) seconds and its relative
    difference to the eager output."""
    fn = torch.compile(model)
    run = _eager(fn, x)  # type: ignore[arg-type]
    start = time.perf_counter()
    got = run()
    seconds = time.perf_counter() - start
    want = _eager(model, x)()
    return run, seconds, ((got - want).abs().max() / want.abs().max()).item()


def _case(ctx: BenchContext, official: ModuleType | None, why: str, variant: str, batch: int, res: int) -> None:
    from kernelkit.layers.reparam import randomize_for_reparam_check
    from kernelkit.models import create_model, reparameterize

    torch.manual_seed(0)
    deploy = reparameterize(randomize_for_reparam_check(create_model(f"unireplknet_{variant}"), seed=0)).eval()
    x = torch.randn(batch, 3, res, res)
    tag = f"{variant.upper()} b{batch} {res}²"
    ours = _eager(deploy, x)
    label = f"{tag}: kernelkit deploy eager vs torch.compile of it"
    try:
        ours_compiled, ours_s, ours_rel = _compiled(deploy, x)
    except Exception as exc:  # recorded as a row: a compile failure is a result of this benchmark
        ctx.record(label, None, None, "torch.compile(kernelkit deploy)",
                   note=f"torch.compile failed: {type(exc).__name__}")
    else:
        ctx.compare(label, kernelkit=ours, baseline=ours_compiled, baseline_name="torch.compile(kernelkit deploy)",
                    images=batch, compile_s=f"{ours_s:.1f}", compiled_rel_diff=f"{ours_rel:.1e}")
    label = f"{tag}: kernelkit deploy vs torch.compile(official deploy)"
    if official is None:
        ctx.compare(label, kernelkit=ours, baseline=None, baseline_name="torch.compile(official deploy)", note=why,
                    images=batch)
        return
    ref = _official_model(official, variant, deploy=True)
    ref.load_state_dict(deploy.state_dict(), strict=True)
    ref_compiled, ref_s, _ = _compiled(ref, x)
    want = _eager(ref, x)()
    rel = ((ours() - want).abs().max() / want.abs().max()).item()
    floor = functools.partial(floor_notes, model_flops(deploy, x), target=COMPILE_TARGET, baseline="compiled_official")
    ctx.compare(label, kernelkit=ours, baseline=ref_compiled, baseline_name="torch.compile(official deploy)",
                derived=floor,
                images=batch, compile_s=f"{ref_s:.1f}", rel_diff_vs_official=f"{rel:.1e}")


@register_benchmark("unireplknet_vs_compile",
                    title="UniRepLKNet deploy: kernelkit eager vs torch.compile (official and kernelkit models)")
def bench_vs_compile(ctx: BenchContext) -> None:
    official, why = load_official()
    cases = [("a", 1, 96)] if ctx.quick else [("a", 1, 224), ("a", 32, 224), ("t", 1, 224), ("t", 32, 224)]
    for variant, batch, res in cases:
        _case(ctx, official, why, variant, batch, res)
