"""The compute floor of a forward pass: its FLOPs at this machine's measured float32 GEMM rate.

A speed target against a baseline ("kernelkit ≥ 1.5× ONNX Runtime") asks kernelkit to finish in
``baseline time / target``. An implementation that carries out the model's multiply-adds (rather than a transform
that skips some, as FFT or Winograd convolutions can for the convolutions) cannot finish faster than
``model FLOPs / R``, where ``R`` is the best float32 GEMM rate this machine reaches with the same threads: the
dense matrix product is the most efficient work a CPU does, and every other op of the model runs at that rate or
slower. :func:`floor_notes` measures ``R`` in the calling process (the best median over a few large and
model-shaped products, through ``torch.mm`` and :func:`kernelkit.utils.onednn.linear`; the highest rate gives the
lowest, most lenient floor), counts the model's FLOPs with ``FlopCounterMode`` (2 per multiply-add, as
:func:`kernelkit.utils.counting.count_macs`), and gives each time as the share of ``R`` the whole forward pass
would have to sustain to take it. By the stated rule a target that needs more than 100 % is out of reach for
exact float32 on this machine; one that needs less is not excluded (whether it is met is the measured ratio's
business).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from kernelkit.apps.bench.harness import _median_time

# (M, K, N) products timed for the GEMM rate: a large square one and the shapes of UniRepLKNet's FFN chunks.
GEMM_SHAPES: tuple[tuple[int, int, int], ...] = ((2048, 2048, 2048), (1024, 320, 1280), (1024, 1280, 320),
                                                  (1024, 640, 2560))


@functools.cache
def gemm_rate(threads: int, shapes: Sequence[tuple[int, int, int]] = GEMM_SHAPES) -> float:
    """The best float32 GEMM rate (FLOP/s) over ``shapes`` and two GEMM routes, at ``threads`` torch threads."""
    from kernelkit.utils import onednn

    assert threads == torch.get_num_threads(), "measure at the caller's thread count"
    best = 0.0
    g = torch.Generator().manual_seed(0)
    for m, k, n in shapes:
        a, w = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g)
        wt = w.t().contiguous()
        with torch.no_grad():
            routes = [lambda a=a, wt=wt: torch.mm(a, wt), lambda a=a, w=w: onednn.linear(a, w)]
            for route in routes:
                route()  # warm-up
                best = max(best, 2.0 * m * k * n / _median_time(route, 0.3))
    return best


def model_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one no-grad forward of ``model`` on ``x`` (convolutions and matrix products, 2 per multiply-add)."""
    from kernelkit.utils.counting import count_macs

    return 2 * int(count_macs(model, inputs=x))  # type: ignore[arg-type]


def floor_notes(flops: int, kernelkit_s: float | None, baseline_s: float | None, target: float,
                baseline: str) -> dict[str, Any]:
    """Notes for a benchmark row: the compute floor, the share of the GEMM rate each side and the target reach.

    ``pct_of_gemm_rate`` of a time ``t`` is ``floor / t``: the fraction of the best GEMM rate that the whole
    forward pass would have to sustain to take ``t``. The target (``baseline_s / target``) is out of reach for
    exact float32 on this machine when it needs more than 100 %.
    """
    rate = gemm_rate(torch.get_num_threads())
    floor_s = flops / rate
    notes: dict[str, Any] = {"model_gflop": round(flops / 1e9, 2), "gemm_gflop_per_s": round(rate / 1e9, 1),
                             "compute_floor_ms": round(floor_s * 1e3, 2)}
    if kernelkit_s:
        notes["kernelkit_pct_of_gemm_rate"] = round(100 * floor_s / kernelkit_s, 1)
    if not baseline_s:
        return notes
    need_pct = 100 * floor_s / (baseline_s / target)
    notes[f"{baseline}_pct_of_gemm_rate"] = round(100 * floor_s / baseline_s, 1)
    notes[f"{target:g}x_target_needs_pct_of_gemm_rate"] = round(need_pct, 1)
    notes[f"{target:g}x_target"] = ("out of reach for exact float32 here (needs > 100 %)" if need_pct > 100
                                    else "not excluded by the floor (needs <= 100 %)")
    return notes
