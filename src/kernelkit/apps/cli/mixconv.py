"""``kernelkit convnet`` commands of the mixconv system: ``mixconv-ablation``, ``mixnet-info``.

Options are parsed into configs from :mod:`kernelkit.apps.configs.convnet`; ``config.json`` is ``asdict`` of them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kernelkit.apps.cli.common import RunOptions, announce, create_model_or_fail, fail, prepare, run_options, start_run
from kernelkit.apps.configs.convnet import (
    ABLATION_DATASETS,
    AblationConfig,
    MixconvAblationCommandConfig,
    MixnetInfoConfig,
)


def _parse_kernel_sets(text: str) -> tuple[tuple[int, ...], ...]:
    """``"3;5;7;9;3,5;3,5,7;3,5,7,9"`` → ((3,), (5,), ...)."""
    sets = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            ks = tuple(int(k) for k in part.split(","))
        except ValueError:
            fail(f"--kernel-sets: {part!r} is not a comma-separated list of ints (e.g. '3;5;3,5,7')")
        if any(k < 1 or k % 2 == 0 for k in ks):
            fail(f"--kernel-sets: kernel sizes must be odd and >= 1, got {part!r}")
        sets.append(ks)
    if not sets:
        fail("--kernel-sets: give at least one kernel set, e.g. '3;3,5,7'")
    return tuple(sets)


def _format_kernel_sets(sets: tuple[tuple[int, ...], ...]) -> str:
    """((3,), (3, 5)) → ``"3;3,5"`` (the ``--kernel-sets`` syntax)."""
    return ";".join(",".join(map(str, ks)) for ks in sets)


@run_options(MixconvAblationCommandConfig)
def mixconv_ablation(
    quick: Annotated[bool, typer.Option("--quick", help="Tiny images/epochs (same code path).")] =
        MixconvAblationCommandConfig.quick,
    dataset: Annotated[str, typer.Option("--dataset", help="cifar10_jpg, mnist or digits.")] = AblationConfig.dataset,
    kernel_sets: Annotated[str, typer.Option("--kernel-sets", help="';'-separated kernel sets.")] =
        _format_kernel_sets(AblationConfig.kernel_sets),
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per kernel set.")] = len(AblationConfig.seeds),
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Override the epochs.")] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", min=8, help="Override the image side.")] = None,
    width: Annotated[float | None, typer.Option("--width", min=0.05, help="Override the width multiplier.")] = None,
    train_per_class: Annotated[int | None, typer.Option("--train-per-class", min=1,
                                                        help="Limit train images per class.")] = None,
    report_only: Annotated[bool, typer.Option("--report-only", help="Train nothing: report the runs already "
                                              "finished in --out (same settings).")] =
        MixconvAblationCommandConfig.report_only,
    *,
    opts: RunOptions,
) -> None:
    """Kernel-mix ablation: MobileNetV2-style net with depthwise kernels {3},{5},...,{3,5,7,9} on real images."""
    from dataclasses import replace
    from pathlib import Path

    import torch

    from kernelkit.apps.recipes.mixconv_ablation import report_ablation, run_ablation

    if dataset not in ABLATION_DATASETS:
        fail(f"--dataset {dataset!r}: expected one of {', '.join(ABLATION_DATASETS)}")
    abl = AblationConfig.quick() if quick else AblationConfig()
    abl = replace(abl, dataset=dataset, kernel_sets=_parse_kernel_sets(kernel_sets),
                  seeds=tuple(opts.seed + i for i in range(seeds)))
    for name, value in (("epochs", epochs), ("image_size", image_size), ("width", width),
                        ("train_per_class", train_per_class)):
        if value is not None:
            try:
                abl = replace(abl, **{name: value})  # type: ignore[arg-type]
            except ValueError as exc:  # AblationConfig's checks name the option
                fail(str(exc))
    if report_only and opts.out is None:
        fail("--report-only needs --out: the run directory whose finished runs are reported")
    cfg = prepare(MixconvAblationCommandConfig(quick=quick, report_only=report_only, ablation=abl,
                                               **opts.settings()))
    assert cfg.data_root is not None
    with start_run("mixconv-ablation", cfg, opts.out, opts.quiet) as run:
        sec = run.section("mixconv_ablation", "Kernel-mix ablation")
        rows, source = run_ablation(cfg.ablation, sec.dir / "ablation", Path(cfg.data_root), torch.device(cfg.device),
                                    sec, quiet=True, train_missing=not cfg.report_only)
        if not rows:
            fail(f"--report-only: no finished runs with these settings under {sec.dir / 'ablation'}")
        report_ablation(sec, cfg.ablation, rows, source)
    announce(run, opts.as_json, opts.quiet)


@run_options(MixnetInfoConfig)
def mixnet_info(
    model: Annotated[str, typer.Option("--model", help="mixnet_s, mixnet_m, mixnet_l, mixnet_xl, ...")] =
        MixnetInfoConfig.model,
    size: Annotated[int, typer.Option("--size", min=32, help="Input side for MACs.")] = MixnetInfoConfig.size,
    num_classes: Annotated[int, typer.Option("--num-classes", min=0)] = MixnetInfoConfig.num_classes,
    *,
    opts: RunOptions,
) -> None:
    """Parameters, MACs and the block table of a MixNet (or any registered model)."""
    from kernelkit.layers.mixconv import use_impl
    from kernelkit.utils.counting import count_macs, count_params

    cfg = prepare(MixnetInfoConfig(model=model, size=size, num_classes=num_classes, **opts.settings()))
    net = create_model_or_fail(cfg.model, num_classes=cfg.num_classes)
    with use_impl("split"):
        macs = count_macs(net, (1, 3, cfg.size, cfg.size))
    assert isinstance(macs, int)
    params = count_params(net)
    stats = sum(b.numel() for n, b in net.named_buffers() if "running" in n)
    with start_run(f"mixnet-info-{cfg.model}", cfg, opts.out, opts.quiet) as run:
        sec = run.section("info", f"{cfg.model}: size and structure")
        sec.data_source("no data (architecture only)")
        sec.table("Size", [{"model": cfg.model, "params": params, "params + BN running stats": params + stats,
                            f"MACs at {cfg.size}² (conv+linear)": int(macs)}])
        spec = getattr(net, "spec", None)
        if spec is not None:
            rows = []
            for i, stage in enumerate(spec.stages):
                for b in stage:
                    rows.append({"stage": i, "kind": b.kind, "repeats": b.repeats, "expansion": b.expansion,
                                 "kernels": ",".join(map(str, b.kernels)),
                                 "groups (expand/project)": f"{b.expand_groups}/{b.project_groups}", "out": b.out,
                                 "stride": b.stride, "SE": b.se or "-", "act": b.act})
            sec.table("Block table", rows, note=f"stem {spec.stem}, head {spec.head}, dropout {spec.dropout}")
        sec.record(model=cfg.model, params=params, params_with_bn_stats=params + stats, macs=int(macs), size=cfg.size)
    announce(run, opts.as_json, opts.quiet)


def add_commands(app: typer.Typer) -> None:
    """Attach this system's commands to the ``convnet`` group."""
    app.command("mixconv-ablation")(mixconv_ablation)
    app.command("mixnet-info")(mixnet_info)
