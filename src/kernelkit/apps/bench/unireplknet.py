"""UniRepLKNet inference speed: deploy vs training form, fast depthwise conv on vs off, vs the official code.

The official implementation is not a dependency. It is measured side by side when its
``unireplknet.py`` can be imported: put the folder holding it (and a ``timm`` providing
``timm.models.layers`` / ``timm.models.registry``, e.g. small stand-ins) on ``PYTHONPATH`` or name it in
``$UNIREPLKNET_OFFICIAL_DIR``. Both models get the same weights; the largest output difference is
recorded with each comparison.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import os
import sys
from types import ModuleType
from typing import Any

import torch

from kernelkit.apps.bench import BenchContext, register_benchmark


def load_official() -> tuple[ModuleType | None, str]:
    """The official ``unireplknet`` module, or ``None`` and the reason it could not be imported."""
    extra = os.environ.get("UNIREPLKNET_OFFICIAL_DIR")
    if extra and extra not in sys.path:
        sys.path.insert(0, extra)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            module = importlib.import_module("unireplknet")
    except Exception as exc:  # ImportError, or its own imports failing
        return None, f"official unireplknet.py not importable ({type(exc).__name__}: {exc})"
    if not hasattr(module, "UniRepLKNet"):
        return None, "a module named unireplknet was found but it is not the official implementation"
    return module, ""


def _official_model(module: ModuleType, variant: str, deploy: bool) -> torch.nn.Module:
    with contextlib.redirect_stdout(io.StringIO()):
        return getattr(module, f"unireplknet_{variant}")(deploy=deploy, attempt_use_lk_impl=False).eval()


@register_benchmark("unireplknet_inference", title="UniRepLKNet inference: deploy vs train form, fast conv, official")
def bench_inference(ctx: BenchContext) -> None:
    from kernelkit.layers.reparam import randomize_for_reparam_check, use_fast_depthwise
    from kernelkit.models import create_model, reparameterize
    from kernelkit.models.unireplknet import use_fused_inference

    official, why = load_official()
    cases = [("a", 1, 96)] if ctx.quick else [("a", 1, 224), ("a", 32, 224), ("t", 1, 224), ("t", 32, 224)]
    for variant, batch, res in cases:
        torch.manual_seed(0)
        train = randomize_for_reparam_check(create_model(f"unireplknet_{variant}"), seed=0).eval()
        deploy = create_model(f"unireplknet_{variant}", deploy=True).eval()
        deploy.load_state_dict(reparameterize(copy.deepcopy(train)).state_dict(), strict=True)
        x = torch.randn(batch, 3, res, res)
        tag = f"{variant.upper()} b{batch} {res}²"
        imgs: dict[str, Any] = {"images": batch}

        def fwd(model: torch.nn.Module, fast: bool = True, x: torch.Tensor = x, fused: bool = True):
            def run() -> torch.Tensor:
                with torch.no_grad(), use_fast_depthwise(fast), use_fused_inference(fused):
                    return model(x)
            return run

        with torch.no_grad():
            err = ((deploy(x) - train(x)).abs().max() / train(x).abs().max()).item()
        ctx.compare(f"{tag}: deploy vs training form", kernelkit=fwd(deploy), baseline=fwd(train),
                    baseline_name="kernelkit train form", reparam_rel_err=f"{err:.2e}", **imgs)
        ctx.compare(f"{tag}: fast depthwise on vs off (deploy)", kernelkit=fwd(deploy, True),
                    baseline=fwd(deploy, False), baseline_name="F.conv2d (fast off)", **imgs)
        ctx.compare(f"{tag}: fused deploy blocks on vs off", kernelkit=fwd(deploy),
                    baseline=fwd(deploy, fused=False), baseline_name="plain torch ops (fused off)", **imgs)
        if official is None:
            ctx.compare(f"{tag}: deploy vs official deploy", kernelkit=fwd(deploy), baseline=None,
                        baseline_name="official", note=why, **imgs)
            continue
        ref = _official_model(official, variant, deploy=True)
        ref.load_state_dict(deploy.state_dict(), strict=True)
        with torch.no_grad():
            want = ref(x)
            rel = ((deploy(x) - want).abs().max() / want.abs().max()).item()
        ctx.compare(f"{tag}: deploy vs official deploy", kernelkit=fwd(deploy), baseline=fwd(ref),
                    baseline_name="official deploy", rel_diff_vs_official=f"{rel:.1e}", **imgs)
