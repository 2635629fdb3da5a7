"""MixConv speed: the automatically chosen exact path vs split → convs → concat (timm/TF formulation).

Kernels (3, 5, 7, 9), the issue's shapes (C=96 at 28², C=240 at 14²), batch 1 and 32, forward and
forward+backward (gradients of the input and the per-group weights), NCHW float32 input. The baseline
is the same layer forced to ``impl="split"``; the kernelkit side is ``impl="auto"``. The choice is made
fresh in this process (a private, empty path cache), during the harness's warm-up call, so the row
shows what a first-time user gets; the chosen path is printed with each row. A second row per case
times the plain zero-padded 9x9 ``F.conv2d`` (what the issue measured) for reference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from kernelkit.apps.bench import BenchContext, register_benchmark
from kernelkit.layers.mixconv import MixConv2d, fresh_choices, measured_choice

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
    with fresh_choices():  # decide fresh, as on a first run
        _run(ctx)


def _run(ctx: BenchContext) -> None:
    torch.manual_seed(0)
    batches = (1, 4) if ctx.quick else (1, 32)
    shapes = SHAPES[:1] if ctx.quick else SHAPES
    for channels, size in shapes:
        for batch in batches:
            for backward in (False, True):
                m = MixConv2d(channels, kernel_sizes=KERNELS)
                x = torch.randn(batch, channels, size, size, requires_grad=backward)
                mode = "fwd+bwd" if backward else "fwd"
                label = f"C={channels} {size}² B={batch} {mode}"
                kk = _step(m, x, None, backward)
                kk()  # the choice is measured here (first call), outside the timed rounds
                with torch.set_grad_enabled(backward):
                    chosen = m.choose_impl(x)
                    key = m.choice_key(x, backward)
                measured = (measured_choice(key) or {}).get("ms", {})
                ctx.compare(label, kernelkit=kk, baseline=_step(m, x, "split", backward),
                            baseline_name="split-concat", chosen=chosen, choice_ms=measured)
                if not ctx.quick:
                    ctx.compare(label + " [plain padded 9x9 F.conv2d]", kernelkit=_padded_plain(m, x, backward),
                                baseline=_step(m, x, "split", backward), baseline_name="split-concat")
