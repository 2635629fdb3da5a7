"""UniRepLKNet deploy inference: kernelkit (eager, fused deploy blocks) vs ONNX Runtime on the ONNX export.

Both sides hold the same deploy weights (a training-form model with random BN statistics and scales,
re-parameterized); the ONNX file is kernelkit's own export of that deploy model
(:func:`kernelkit.models.export.export_model`, ``torch.onnx.export(dynamo=True)``) for the row's batch size.
ONNX Runtime runs it on the CPU execution provider with all graph optimizations and as many intra-op threads
as torch uses (``kernelkit bench --threads N``). Each row records the largest relative difference between the
two outputs. A second row per case runs both ONNX files in ONNX Runtime: kernelkit's export against the
export of the official deploy model with the same weights (when the official ``unireplknet.py`` is importable,
as in :mod:`kernelkit.apps.bench.unireplknet`). Needs the ``onnx`` extra; without it the rows say so.
Each kernelkit-vs-ONNX-Runtime row also carries the compute floor of the case
(:mod:`kernelkit.apps.bench.compute_floor`) and whether 1.5× ONNX Runtime's time lies below it.
"""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kernelkit.apps.bench import BenchContext, register_benchmark

ORT_TARGET = 1.5  # the speed target against ONNX Runtime that each row's compute-floor note checks


def _ort_session(path: Path) -> Callable[[torch.Tensor], Callable[[], object]]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def bind(x: torch.Tensor) -> Callable[[], object]:
        feed = {name: x.numpy()}
        return lambda: session.run(None, feed)[0]

    return bind


@register_benchmark("unireplknet_onnx", title="UniRepLKNet deploy: kernelkit eager vs ONNX Runtime (same weights)")
def bench_onnx(ctx: BenchContext) -> None:
    from kernelkit.apps.bench.compute_floor import floor_notes, model_flops
    from kernelkit.apps.bench.unireplknet import _official_model, load_official
    from kernelkit.layers.reparam import randomize_for_reparam_check
    from kernelkit.models import create_model, reparameterize
    from kernelkit.models.export import MissingExtraError, export_model, max_rel_diff, require_onnx

    cases = [("a", 1, 96)] if ctx.quick else [("a", 1, 224), ("a", 32, 224), ("t", 1, 224), ("t", 32, 224)]
    try:
        require_onnx()
        why = ""
    except MissingExtraError as exc:
        why = str(exc)
    official, official_why = load_official()
    for variant, batch, res in cases:
        tag = f"{variant.upper()} b{batch} {res}²: deploy vs ONNX Runtime"
        imgs: dict[str, Any] = {"images": batch}
        torch.manual_seed(0)
        train = randomize_for_reparam_check(create_model(f"unireplknet_{variant}"), seed=0).eval()
        deploy = create_model(f"unireplknet_{variant}", deploy=True).eval()
        deploy.load_state_dict(reparameterize(copy.deepcopy(train)).state_dict(), strict=True)
        del train
        x = torch.randn(batch, 3, res, res, generator=torch.Generator().manual_seed(1))

        def kernelkit_run(model: torch.nn.Module = deploy, x: torch.Tensor = x) -> torch.Tensor:
            with torch.no_grad():
                return model(x)

        if why:
            ctx.compare(tag, kernelkit=kernelkit_run, baseline=None, baseline_name="ONNX Runtime", note=why, **imgs)
            continue
        with tempfile.TemporaryDirectory(prefix="kernelkit-onnx-") as tmp:
            path = export_model(deploy, x, "onnx", Path(tmp) / f"unireplknet_{variant}_b{batch}.onnx")
            ort_run = _ort_session(path)(x)
            rel = max_rel_diff(torch.from_numpy(ort_run()), kernelkit_run())  # type: ignore[arg-type]
            floor = functools.partial(floor_notes, model_flops(deploy, x), target=ORT_TARGET, baseline="onnxruntime")
            ctx.compare(tag, kernelkit=kernelkit_run, baseline=ort_run, baseline_name="ONNX Runtime (CPU EP)",
                        derived=floor,
                        rel_diff_vs_onnx=f"{rel:.1e}", threads=torch.get_num_threads(), **imgs)
            label = f"{variant.upper()} b{batch} {res}²: ONNX Runtime on kernelkit's export vs the official export"
            if official is None:
                ctx.compare(label, kernelkit=ort_run, baseline=None, baseline_name="ONNX Runtime, official export",
                            note=official_why, **imgs)
                continue
            ref = _official_model(official, variant, deploy=True)
            ref.load_state_dict(deploy.state_dict(), strict=True)
            ref_path = export_model(ref, x, "onnx", Path(tmp) / f"official_{variant}_b{batch}.onnx")
            ref_run = _ort_session(ref_path)(x)
            rel = max_rel_diff(torch.from_numpy(ref_run()), torch.from_numpy(ort_run()))  # type: ignore[arg-type]
            ctx.compare(label, kernelkit=ort_run, baseline=ref_run, baseline_name="ONNX Runtime, official export",
                        rel_diff_between_exports=f"{rel:.1e}", **imgs)
