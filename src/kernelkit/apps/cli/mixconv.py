"""``kernelkit convnet`` commands of the mixconv system: ``mixconv-ablation``, ``mixnet-info``."""

from __future__ import annotations

from typing import Annotated

import typer

from kernelkit.apps.cli.common import (
    DataDirOpt,
    DeviceOpt,
    JsonOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    ThreadsOpt,
    announce,
    create_model_or_fail,
    fail,
    setup,
    start_run,
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


def mixconv_ablation(
    quick: Annotated[bool, typer.Option("--quick", help="Tiny images/epochs (same code path).")] = False,
    dataset: Annotated[str, typer.Option("--dataset", help="cifar10_jpg, mnist or digits.")] = "cifar10_jpg",
    kernel_sets: Annotated[str, typer.Option("--kernel-sets", help="';'-separated kernel sets.")] =
        "3;5;7;9;3,5;3,5,7;3,5,7,9",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per kernel set.")] = 3,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Override the epochs.")] = None,
    image_size: Annotated[int | None, typer.Option("--image-size", min=8, help="Override the image side.")] = None,
    width: Annotated[float | None, typer.Option("--width", min=0.05, help="Override the width multiplier.")] = None,
    train_per_class: Annotated[int | None, typer.Option("--train-per-class", min=1,
                                                        help="Limit train images per class.")] = None,
    report_only: Annotated[bool, typer.Option("--report-only", help="Train nothing: report the runs already "
                                              "finished in --out (same settings).")] = False,
    out: OutOpt = None,
    device: DeviceOpt = "cpu",
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Kernel-mix ablation: MobileNetV2-style net with depthwise kernels {3},{5},...,{3,5,7,9} on real images."""
    from dataclasses import asdict, replace
    from pathlib import Path

    from kernelkit.apps.recipes.mixconv_ablation import DATASETS, QUICK, AblationConfig, report_ablation, run_ablation

    if dataset not in DATASETS:
        fail(f"--dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
    cfg = replace(QUICK) if quick else AblationConfig()
    cfg = replace(cfg, dataset=dataset, kernel_sets=_parse_kernel_sets(kernel_sets),
                  seeds=tuple(seed + i for i in range(seeds)))
    for name, value in (("epochs", epochs), ("image_size", image_size), ("width", width),
                        ("train_per_class", train_per_class)):
        if value is not None:
            cfg = replace(cfg, **{name: value})  # type: ignore[arg-type]
    if report_only and out is None:
        fail("--report-only needs --out: the run directory whose finished runs are reported")
    s = setup(device=device, seed=seed, threads=threads, data_dir=data_dir)
    import torch

    with start_run("mixconv-ablation", {**s, **asdict(cfg)}, out, quiet) as run:
        sec = run.section("mixconv_ablation", "Kernel-mix ablation")
        rows, source = run_ablation(cfg, sec.dir / "ablation", Path(s["data_root"]), torch.device(s["device"]),
                                    sec, quiet=True, train_missing=not report_only)
        if not rows:
            fail(f"--report-only: no finished runs with these settings under {sec.dir / 'ablation'}")
        report_ablation(sec, cfg, rows, source)
    announce(run, as_json, quiet)


def mixnet_info(
    model: Annotated[str, typer.Option("--model", help="mixnet_s, mixnet_m, mixnet_l, mixnet_xl, ...")] = "mixnet_s",
    size: Annotated[int, typer.Option("--size", min=32, help="Input side for MACs.")] = 224,
    num_classes: Annotated[int, typer.Option("--num-classes", min=0)] = 1000,
    out: OutOpt = None,
    device: DeviceOpt = "cpu",
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Parameters, MACs and the block table of a MixNet (or any registered model)."""
    from kernelkit.layers.mixconv import use_impl
    from kernelkit.utils.counting import count_macs, count_params

    s = setup(device=device, seed=seed, threads=threads, data_dir=data_dir)
    net = create_model_or_fail(model, num_classes=num_classes)
    with use_impl("split"):
        macs = count_macs(net, (1, 3, size, size))
    assert isinstance(macs, int)
    params = count_params(net)
    stats = sum(b.numel() for n, b in net.named_buffers() if "running" in n)
    with start_run(f"mixnet-info-{model}", {**s, "model": model, "size": size, "num_classes": num_classes},
                   out, quiet) as run:
        sec = run.section("info", f"{model}: size and structure")
        sec.data_source("no data (architecture only)")
        sec.table("Size", [{"model": model, "params": params, "params + BN running stats": params + stats,
                            f"MACs at {size}² (conv+linear)": int(macs)}])
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
        sec.record(model=model, params=params, params_with_bn_stats=params + stats, macs=int(macs), size=size)
    announce(run, as_json, quiet)


def add_commands(app: typer.Typer) -> None:
    """Attach this system's commands to the ``convnet`` group."""
    app.command("mixconv-ablation")(mixconv_ablation)
    app.command("mixnet-info")(mixnet_info)
