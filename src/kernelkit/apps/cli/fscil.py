"""``kernelkit fscil`` commands: run a few-shot class-incremental benchmark with the baseline and/or TEEN."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from kernelkit.apps.cli.common import RunOptions, announce, fail, prepare, run_options, start_run
from kernelkit.apps.configs.fscil import DATASET_DEFAULTS, FscilRunConfig

app = typer.Typer(no_args_is_help=True)

Dataset = Enum("Dataset", {name: name for name in DATASET_DEFAULTS}, type=str)  # type: ignore[misc]


@app.command("run")
@run_options(FscilRunConfig)
def run(
    dataset: Annotated[Dataset, typer.Option("--dataset", help="Benchmark (digits = embedded toy fallback).")],
    backbone: Annotated[str | None, typer.Option(
        "--backbone",
        help="Any registered model used with num_classes=0 (default per dataset).")] = FscilRunConfig.backbone,
    method: Annotated[list[str] | None, typer.Option(
        "--method", help="prototype and/or teen (repeatable; default both).")] = None,
    tau: Annotated[float, typer.Option("--tau", help="TEEN softmax temperature.")] = FscilRunConfig.tau,
    alpha: Annotated[float | None, typer.Option(
        "--alpha", help="TEEN shift weight (default per dataset).")] = FscilRunConfig.alpha,
    temperature: Annotated[float | None, typer.Option(
        "--temperature", help="Cosine logit scale (default per dataset).")] = FscilRunConfig.temperature,
    epochs: Annotated[int, typer.Option(
        "--epochs", min=0, help="Base-session epochs (0: untrained backbone).")] = FscilRunConfig.epochs,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = FscilRunConfig.batch_size,
    lr: Annotated[float, typer.Option("--lr", help="Base learning rate (SGD, Nesterov, cosine).")] = FscilRunConfig.lr,
    width: Annotated[int | None, typer.Option(
        "--width", min=1, help="Width of a CIFAR ResNet backbone.")] = FscilRunConfig.width,
    split_dir: Annotated[Path | None, typer.Option(
        "--split-dir", help="Official session files (default <data root>/fscil_index_list/<dataset>).")] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", min=0.0, max=0.5,
        help="Base training rows held out to select the checkpoint.")] = FscilRunConfig.val_fraction,
    num_base: Annotated[int, typer.Option(
        "--num-base", min=1, help="Omniglot: base characters.")] = FscilRunConfig.num_base,
    way: Annotated[int, typer.Option("--way", min=1, help="Omniglot: classes per session.")] = FscilRunConfig.way,
    sessions: Annotated[int, typer.Option(
        "--sessions", min=2, help="Omniglot: sessions incl. base.")] = FscilRunConfig.sessions,
    *,
    opts: RunOptions,
) -> None:
    """Train the base model, then run the session plan with the prototype baseline and/or TEEN."""
    from kernelkit.apps.recipes.fscil_omniglot import add_teen_published
    from kernelkit.data.root import DataNotFoundError
    from kernelkit.fscil.data import load_fscil_dataset
    from kernelkit.fscil.methods import list_methods
    from kernelkit.fscil.pipeline import FeatureCache, default_methods, run_methods, train_base_model
    from kernelkit.fscil.protocol import SplitFileError
    from kernelkit.fscil.report import METRIC_NOTE, confusion_rows, plot_sessions, session_table, summary_table
    from kernelkit.fscil.training import extract_features

    if split_dir is not None and not split_dir.is_dir():
        fail(f"--split-dir {split_dir}: {'is not a directory' if split_dir.exists() else 'does not exist'}")
    methods = tuple(method) if method else FscilRunConfig.methods
    unknown = sorted(set(methods) - set(list_methods()))
    if unknown:
        fail(f"--method {', '.join(unknown)}: unknown; choose from {', '.join(list_methods())}")
    try:
        cfg = FscilRunConfig(
            dataset=dataset.value, backbone=backbone, width=width, methods=methods, tau=tau, alpha=alpha,
            temperature=temperature, epochs=epochs, batch_size=batch_size, lr=lr,
            split_dir=str(split_dir) if split_dir else None, val_fraction=val_fraction, num_base=num_base, way=way,
            sessions=sessions, **opts.settings()).resolved()
    except ValueError as exc:  # the config's checks name the option
        fail(str(exc))
    cfg = prepare(cfg)
    assert cfg.backbone is not None and cfg.data_root is not None and cfg.temperature is not None
    teen = cfg.teen()
    try:
        data = load_fscil_dataset(cfg.dataset, cfg.data_root, seed=cfg.seed, split_dir=cfg.split_dir,
                                  val_fraction=cfg.val_fraction, omniglot=cfg.protocol())
    except (SplitFileError, DataNotFoundError, FileNotFoundError, ValueError) as exc:
        fail(f"--dataset {cfg.dataset}: {exc}")
    train_cfg = cfg.train()
    table = default_methods(cfg.temperature, teen.tau, teen.alpha, list(cfg.methods))
    backbone_kwargs = {"width": cfg.width} if cfg.width is not None else {}
    arch = cfg.backbone
    with start_run(f"fscil-{cfg.dataset}", cfg, opts.out, opts.quiet) as run_:
        sec = run_.section("fscil", f"FSCIL on {cfg.dataset}: {', '.join(table)}")
        sec.data_source(data.source)
        sec.table("Session plan", data.plan.summary())
        try:
            net, base = train_base_model(data, data.plan, arch, train_cfg, sec.dir / "base",
                                         image_size=cfg.defaults.size, device=cfg.device, section=sec, quiet=opts.quiet,
                                         backbone_kwargs=backbone_kwargs)
        except TypeError as exc:
            fail(f"--backbone {arch}: {exc}")
        sec.table("Base model", [{k: v for k, v in base.items() if k not in ("history", "config")}],
                  note="checkpoint selected on held-out validation rows of the base classes, never on test data")
        cache = FeatureCache(net, data.train, cfg.device)
        test_features = extract_features(net, data.test, device=cfg.device)
        results = {label: [r] for label, r in
                   run_methods(data.plan, data.train.labels, cache, test_features, table).items()}
        sec.table("Summary (%)", summary_table(results), note=METRIC_NOTE)
        sec.table("Per session (%)", session_table(results), note=METRIC_NOTE)
        add_teen_published(sec, [rs[0] for label, rs in results.items() if label.startswith("teen")],
                           data=cfg.dataset, plan=data.plan,
                           backbone=f"{arch}{f' of width {cfg.width}' if cfg.width is not None else ''} "
                                    f"({base['params']} params)", epochs=cfg.epochs)
        sec.table("Confusion summary (counts)", [row for label, rs in results.items()
                                                 for row in confusion_rows(rs[0], label)])
        sec.figure(plot_sessions(results, "acc", "accuracy (%)", f"{cfg.dataset}: accuracy per session"),
                   "accuracy_per_session", "Top-1 accuracy on all seen classes after each session.")
        sec.figure(plot_sessions(results, "new_to_base", "new→base (%)", "New-class samples predicted as base"),
                   "new_to_base", "Fraction of new-class test samples misclassified into base classes.")
        sec.record(base={k: v for k, v in base.items() if k != "history"},
                   sessions={label: rs[0].sessions for label, rs in results.items()},
                   summary={label: rs[0].summary() for label, rs in results.items()})
    announce(run_, opts.as_json, opts.quiet)
