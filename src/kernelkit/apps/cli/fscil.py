"""``kernelkit fscil`` commands: run a few-shot class-incremental benchmark with the baseline and/or TEEN."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
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
    fail,
    setup,
    start_run,
)

app = typer.Typer(no_args_is_help=True)


class Dataset(str, Enum):
    omniglot = "omniglot"
    cifar100 = "cifar100"
    mini_imagenet = "mini_imagenet"
    cub200 = "cub200"
    digits = "digits"


@dataclass(frozen=True)
class _Defaults:
    backbone: str
    temperature: float  # cosine logit scale
    alpha: float  # TEEN shift weight
    augment: str
    size: int  # training image side


# Per-dataset defaults from TEEN's scripts (omniglot and digits: kernelkit's own protocols).
DEFAULTS = {
    "cifar100": _Defaults("resnet20", 16.0, 0.1, "cifar", 32),
    "mini_imagenet": _Defaults("resnet18", 32.0, 0.5, "imagenet", 84),
    "cub200": _Defaults("resnet18", 32.0, 0.5, "imagenet", 224),
    "omniglot": _Defaults("resnet20", 16.0, 0.1, "omniglot", 28),
    "digits": _Defaults("resnet8", 16.0, 0.1, "omniglot", 8),
}


@app.command("run")
def run(
    dataset: Annotated[Dataset, typer.Option("--dataset", help="Benchmark (digits = embedded toy fallback).")],
    backbone: Annotated[str | None, typer.Option(
        "--backbone", help="Any registered model used with num_classes=0 (default per dataset).")] = None,
    method: Annotated[list[str] | None, typer.Option(
        "--method", help="prototype and/or teen (repeatable; default both).")] = None,
    tau: Annotated[float, typer.Option("--tau", help="TEEN softmax temperature.")] = 16.0,
    alpha: Annotated[float | None, typer.Option("--alpha", help="TEEN shift weight (default per dataset).")] = None,
    temperature: Annotated[float | None, typer.Option(
        "--temperature", help="Cosine logit scale (default per dataset).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=0, help="Base-session epochs (0: untrained backbone).")] = 30,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 128,
    lr: Annotated[float, typer.Option("--lr", help="Base learning rate (SGD, Nesterov, cosine).")] = 0.1,
    width: Annotated[int | None, typer.Option("--width", help="Width of a CIFAR ResNet backbone.")] = None,
    split_dir: Annotated[Path | None, typer.Option(
        "--split-dir", help="Official session files (default <data root>/fscil_index_list/<dataset>).")] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", min=0.0, max=0.5, help="Base training rows held out to select the checkpoint.")] = 0.1,
    num_base: Annotated[int, typer.Option("--num-base", min=1, help="Omniglot: base characters.")] = 200,
    way: Annotated[int, typer.Option("--way", min=1, help="Omniglot: classes per session.")] = 10,
    sessions: Annotated[int, typer.Option("--sessions", min=2, help="Omniglot: sessions incl. base.")] = 9,
    out: OutOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train the base model, then run the session plan with the prototype baseline and/or TEEN."""
    from kernelkit.data.root import DataNotFoundError
    from kernelkit.fscil.data import OmniglotProtocol, load_fscil_dataset
    from kernelkit.fscil.methods import list_methods
    from kernelkit.fscil.pipeline import FeatureCache, default_methods, run_methods, train_base_model
    from kernelkit.fscil.protocol import SplitFileError
    from kernelkit.fscil.report import METRIC_NOTE, confusion_rows, plot_sessions, session_table, summary_table
    from kernelkit.fscil.training import BaseTrainConfig, extract_features

    methods = method or ["prototype", "teen"]
    unknown = sorted(set(methods) - set(list_methods()))
    if unknown:
        fail(f"--method {', '.join(unknown)}: unknown; choose from {', '.join(list_methods())}")
    if not 0.0 <= (alpha if alpha is not None else 0.0) <= 1.0:
        fail(f"--alpha must be in [0, 1], got {alpha}")
    s = setup(device=device, seed=seed, threads=threads, data_dir=data_dir)
    d = DEFAULTS[dataset.value]
    arch = backbone or d.backbone
    scale = temperature if temperature is not None else d.temperature
    shift = alpha if alpha is not None else d.alpha
    protocol = OmniglotProtocol(num_base=num_base, way=way, num_sessions=sessions)
    try:
        data = load_fscil_dataset(dataset.value, s["data_root"], seed=seed, split_dir=split_dir,
                                  val_fraction=val_fraction, omniglot=protocol)
    except (SplitFileError, DataNotFoundError, FileNotFoundError, ValueError) as exc:
        fail(f"--dataset {dataset.value}: {exc}")
    cfg = BaseTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, temperature=scale, augment=d.augment,
                          seed=seed)
    table = default_methods(scale, tau, shift, methods)
    config = {**s, "dataset": dataset.value, "backbone": arch, "width": width, "methods": table,
              "train": cfg.__dict__, "split_dir": str(split_dir) if split_dir else None,
              "val_fraction": val_fraction, "omniglot": protocol.__dict__ if dataset.value == "omniglot" else None}
    backbone_kwargs = {"width": width} if width is not None else {}
    with start_run(f"fscil-{dataset.value}", config, out, quiet) as run_:
        sec = run_.section("fscil", f"FSCIL on {dataset.value}: {', '.join(table)}")
        sec.data_source(data.source)
        sec.table("Session plan", data.plan.summary())
        try:
            net, base = train_base_model(data, data.plan, arch, cfg, sec.dir / "base", image_size=d.size,
                                         device=s["device"], section=sec, quiet=quiet, backbone_kwargs=backbone_kwargs)
        except TypeError as exc:
            fail(f"--backbone {arch}: {exc}")
        sec.table("Base model", [{k: v for k, v in base.items() if k not in ("history", "config")}],
                  note="checkpoint selected on held-out validation rows of the base classes, never on test data")
        cache = FeatureCache(net, data.train, s["device"])
        test_features = extract_features(net, data.test, device=s["device"])
        results = {label: [r] for label, r in
                   run_methods(data.plan, data.train.labels, cache, test_features, table).items()}
        sec.table("Summary (%)", summary_table(results), note=METRIC_NOTE)
        sec.table("Per session (%)", session_table(results), note=METRIC_NOTE)
        sec.table("Confusion summary (counts)", [row for label, rs in results.items()
                                                 for row in confusion_rows(rs[0], label)])
        sec.figure(plot_sessions(results, "acc", "accuracy (%)", f"{dataset.value}: accuracy per session"),
                   "accuracy_per_session", "Top-1 accuracy on all seen classes after each session.")
        sec.figure(plot_sessions(results, "new_to_base", "new→base (%)", "New-class samples predicted as base"),
                   "new_to_base", "Fraction of new-class test samples misclassified into base classes.")
        sec.record(base={k: v for k, v in base.items() if k != "history"},
                   sessions={label: rs[0].sessions for label, rs in results.items()},
                   summary={label: rs[0].summary() for label, rs in results.items()})
    announce(run_, as_json, quiet)
