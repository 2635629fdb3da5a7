"""MixConv speed: the automatically chosen exact path vs split → convs → concat (timm/TF formulation).

Kernels (3, 5, 7, 9), the issue's shapes (C=96 at 28², C=240 at 14²), batch 1 and 32, forward and
forward+backward (gradients of the input and the per-group weights), NCHW float32 input. The baseline
is the same layer forced to ``impl="split"``; the kernelkit side is ``impl="auto"``, twice: as by default
(the fixed rule, tuning off) and tuned (:mod:`kernelkit.tune` on, with a private, empty cache, so the
choice is measured in this process during the harness's warm-up call, as ``kernelkit tune`` would). The
chosen path (and for the tuned row the measured milliseconds per path) is recorded with each row. A
further row per case times the plain zero-padded 9x9 ``F.conv2d`` (what the issue measured) for reference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from kernelkit import tune
from kernelkit.apps.bench import BenchContext, register_benchmark
from kernelkit.layers.mixconv import TUNE_OP, MixConv2d, fresh_choices

KERNELS = (3, 5, 7, 9)
SHAPES = [(96, 28), (240, 14)]


def _step(m: MixConv2d, x: torch.Tensor, impl: str | None, backward: bool) -> Callable[[], object]:
    params = list(m.parameters())

    def run() -> object:
        if not backward:
            with torch.no_grad():
                return m(x) if impl is None else m.run(x, impl)
        out = m(x) if impl is None else m.run(x, impl)
        return torch.autograd.grad(out, [x, *params], torch.ones_like(out))
    return run


def _padded_plain(m: MixConv2d, x: torch.Tensor, backward: bool) -> Callable[[], object]:
    params = list(m.parameters())

    def run() -> object:
        with torch.set_grad_enabled(backward):
            weight = torch.cat([F.pad(c.weight, [(max(m.kernel_sizes) - c.weight.shape[-1]) // 2] * 4)
                                for c in m.convs()])
            out = F.conv2d(x, weight, None, m.stride, max(m.kernel_sizes) // 2, 1, m.in_channels)
            return torch.autograd.grad(out, [x, *params], torch.ones_like(out)) if backward else out
    return run


@register_benchmark("mixconv", title="MixConv (3,5,7,9): automatically chosen exact path vs split-concat")
def bench_mixconv(ctx: BenchContext) -> None:
    torch.manual_seed(0)
    batches = (1, 4) if ctx.quick else (1, 32)
    shapes = SHAPES[:1] if ctx.quick else SHAPES
    for channels, size in shapes:
        for batch in batches:
            for backward in (False, True):
                m = MixConv2d(channels, kernel_sizes=KERNELS)
                x = torch.randn(batch, channels, size, size, requires_grad=backward)
                label = f"C={channels} {size}² B={batch} {'fwd+bwd' if backward else 'fwd'}"
                split = _step(m, x, "split", backward)
                with fresh_choices("heuristic"), torch.set_grad_enabled(backward):
                    chosen = m.choose_impl(x)
                ctx.compare(label + " [auto path, fixed rule]", kernelkit=_step(m, x, chosen, backward), baseline=split,
                            baseline_name="split-concat", chosen=chosen)
                with fresh_choices(), torch.set_grad_enabled(backward):  # tuned fresh, as by `kernelkit tune`
                    tuned = m.choose_impl(x)  # measured here, outside the timed rounds
                    entry = tune.lookup(TUNE_OP, m.choice_key(x, backward), x.device) or {}
                ctx.compare(label + " [auto path, tuned]", kernelkit=_step(m, x, tuned, backward), baseline=split,
                            baseline_name="split-concat", chosen=tuned, choice_ms=entry.get("ms", {}))
                if not ctx.quick:
                    ctx.compare(label + " [plain padded 9x9 F.conv2d]", kernelkit=_padded_plain(m, x, backward),
                                baseline=split, baseline_name="split-concat")
