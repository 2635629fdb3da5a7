"""``kernelkit convnet`` commands of the unireplknet system: ``erf``, ``train``, ``reparam``."""

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

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def erf(
    model: Annotated[str, typer.Option("--model", help="Registered model, e.g. unireplknet_a.")] = "unireplknet_a",
    images: Annotated[int, typer.Option("--images", min=1, help="Images to aggregate over.")] = 16,
    size: Annotated[int, typer.Option("--size", min=32, help="Input side length (images are resized).")] = 224,
    compare_kernel: Annotated[int | None, typer.Option(
        "--compare-kernel", help="Also measure the same architecture with every large kernel set to this size "
        "(e.g. 3); 0 disables.")] = 3,
    out: OutOpt = None,
    device: DeviceOpt = "cpu",
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Effective receptive field: heatmap and high-contribution area ratios (t = 20/30/50/99%)."""
    import torch

    from kernelkit.models.erf import (
        area_ratios,
        erf_images,
        erf_scores,
        last_stage_features,
        normalise_scores,
        plot_erf,
    )

    s = setup(device=device, seed=seed, threads=threads, data_dir=data_dir)
    variants = {model: {}}
    if compare_kernel:
        variants[f"{model} (large kernels → {compare_kernel})"] = {"large_kernel": compare_kernel}
    nets = {label: create_model_or_fail(model, deploy=True, **kw).eval().to(s["device"])
            for label, kw in variants.items()}
    config = {**s, "model": model, "images": images, "size": size, "compare_kernel": compare_kernel,
              "weights": "random initialisation (deploy form; no pretrained weights are fetched)"}
    x, source = erf_images(images, size, s["data_root"], seed)
    x = x.to(s["device"])
    with start_run(f"erf-{model}", config, out, quiet) as run:
        sec = run.section("erf", f"Effective receptive field of {model}")
        sec.data_source(source)
        maps, ratios = {}, {}
        for label, net in nets.items():
            torch.manual_seed(seed)
            scores = erf_scores(last_stage_features(net), x,
                                progress=lambda it, label=label: sec.progress(it, f"ERF {label}", len(x)))
            maps[label] = normalise_scores(scores.cpu())
            ratios[label] = area_ratios(scores.cpu())
            sec.log(model=label, **ratios[label])
        sec.table("High-contribution area ratio (larger = larger ERF)",
                  [{"model": k, **{t: round(v, 4) for t, v in r.items()}} for k, r in ratios.items()],
                  note="Fraction of the input area of the smallest centred square holding > t of the "
                       "log-scaled contribution scores; randomly initialised weights.")
        sec.figure(plot_erf(maps, ratios), "erf_heatmaps", "ERF heatmaps (log-scaled, max-normalised)")
        sec.record(area_ratios=ratios, data=source)
    announce(run, as_json, quiet)


def train(
    model: Annotated[str, typer.Option("--model", help="Registered model, e.g. unireplknet_a.")] = "unireplknet_a",
    data: Annotated[str, typer.Option("--data", help="cifar10_jpg (CIFAR-10 test JPEGs split into train/val) or "
                                                    "pathfinder (generated long-range task).")] = "cifar10_jpg",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="AdamW peak learning rate.")] = 2e-3,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0)] = 0.05,
    drop_path: Annotated[float, typer.Option("--drop-path", min=0.0, max=1.0)] = 0.0,
    image_size: Annotated[int, typer.Option("--image-size", min=32, help="Training resolution.")] = 32,
    limit: Annotated[int | None, typer.Option("--limit", min=10, help="Use only this many images.")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.05, max=0.5)] = 0.2,
    out: OutOpt = None,
    device: DeviceOpt = "auto",
    seed: SeedOpt = 0,
    threads: ThreadsOpt = 0,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a model on the foundation trainer; the report has the loss/accuracy curves and the deploy check."""
    import copy

    import torch

    from kernelkit.models import reparameterize
    from kernelkit.train import TrainConfig, Trainer

    s = setup(device=device, seed=seed, threads=threads, data_dir=data_dir)
    try:
        train_set, val_set, source, in_chans, classes = _training_data(data, s["data_root"], image_size, val_fraction,
                                                                        limit, seed)
    except (FileNotFoundError, ValueError) as exc:
        fail(f"--data {data}: {exc}")
    net = create_model_or_fail(model, num_classes=classes, in_chans=in_chans, drop_path_rate=drop_path)
    cfg = TrainConfig(epochs=epochs, max_steps=max_steps, batch_size=batch_size, optimizer="adamw", lr=lr,
                      weight_decay=weight_decay, schedule="cosine", warmup_steps=min(50, epochs * 5),
                      label_smoothing=0.1, checkpoint_every=0, seed=seed)
    config = {**s, "model": model, "data": data, "image_size": image_size, "train": cfg.__dict__,
              "val_fraction": val_fraction, "limit": limit}
    with start_run(f"train-{model}-{data}", config, out, quiet) as run:
        sec = run.section("train", f"Training {model} on {data}")
        sec.data_source(source)
        trainer = Trainer(net, train_set, cfg, sec.dir / "trainer", val_set=val_set, device=s["device"],
                          section=sec, quiet=quiet)
        result = trainer.fit()
        sec.table("Per-epoch history", [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()}
                                        for h in result.history])
        net.eval()
        deploy = reparameterize(copy.deepcopy(net).cpu()).eval()
        xb = torch.stack([val_set[i][0] for i in range(min(16, len(val_set)))])
        with torch.no_grad():
            a, b = net.cpu()(xb), deploy(xb)
        err = float((a - b).abs().max() / a.abs().max())
        final = result.history[-1] if result.history else {}
        sec.record(final=final, reparam_rel_err=err, val_acc=final.get("val_acc"))
        sec.text(f"Final validation accuracy {final.get('val_acc')}; train→deploy relative output error {err:.2e}.")
    announce(run, as_json, quiet)


def _training_data(name: str, root, image_size: int, val_fraction: float, limit: int | None, seed: int):
    """``(train, val, source, in_chans, num_classes)`` for ``--data``."""
    import torch
    from torch.utils.data import TensorDataset

    if name == "pathfinder":
        from kernelkit.data.pathfinder import PathfinderConfig, pathfinder_dataset

        n = limit or 4000
        cfg = PathfinderConfig(size=image_size)
        x, y = pathfinder_dataset(n, cfg, seed=seed)
        n_val = max(1, int(n * val_fraction))
        return (TensorDataset(x[n_val:], y[n_val:]), TensorDataset(x[:n_val], y[:n_val]),
                f"generated Pathfinder-style task ({n} images, {cfg}, seed {seed})", 2, 2)
    if name == "cifar10_jpg":
        from kernelkit.data.dataset import train_val_split
        from kernelkit.data.imagefolder import load_cifar10_jpg
        from kernelkit.data.root import DataNotFoundError
        from kernelkit.data.transforms import Compose, Normalize, Resize

        try:
            ds = load_cifar10_jpg(root=root)
        except DataNotFoundError as exc:
            raise FileNotFoundError(str(exc)) from None
        if limit:
            ds = ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:limit])
        steps = [Normalize(CIFAR_MEAN, CIFAR_STD)]
        if image_size != 32:
            steps.insert(0, Resize((image_size, image_size)))
        ds = ds.with_transform(Compose(steps))
        tr, va = train_val_split(ds, val_fraction, seed)
        return tr, va, f"{ds.source}; stratified train/val split ({len(tr)}/{len(va)}, seed {seed})", 3, 10
    raise ValueError("unknown dataset; choose cifar10_jpg or pathfinder")


def add_commands(app: typer.Typer) -> None:
    """Attach this system's commands to the ``convnet`` group."""
    app.command("erf")(erf)
    app.command("train")(train)
