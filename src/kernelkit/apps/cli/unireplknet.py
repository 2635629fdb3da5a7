"""``kernelkit convnet`` commands of the unireplknet system: ``erf``, ``train``, ``modality``.

Each command parses its options into a config from :mod:`kernelkit.apps.configs.convnet`, prepares
the run (:func:`~kernelkit.apps.cli.common.prepare`) and calls the library.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kernelkit.apps.cli.common import (
    RunOptions,
    abort,
    announce,
    create_model_or_fail,
    fail,
    first_line,
    make_config,
    prepare,
    run_options,
    start_run,
)
from kernelkit.apps.configs.convnet import MODALITIES, TRAIN_DATA, ConvnetTrainConfig, ErfConfig, ModalityConfig

TORUS_DEFAULT_IMAGES = 4000  # generated images for ``--data torus`` without ``--limit``


@run_options(ErfConfig)
def erf(
    model: Annotated[str, typer.Option("--model", help="Registered model, e.g. unireplknet_a.")] = ErfConfig.model,
    images: Annotated[int, typer.Option("--images", min=1, help="Images to aggregate over.")] = ErfConfig.images,
    size: Annotated[int, typer.Option("--size", min=32, help="Input side length (images are resized).")] =
        ErfConfig.size,
    compare_kernel: Annotated[int | None, typer.Option(
        "--compare-kernel", help="Also measure the same architecture with every large kernel set to this size "
        "(e.g. 3); 0 disables.")] = ErfConfig.compare_kernel,
    *,
    opts: RunOptions,
) -> None:
    """Effective receptive field: heatmap and high-contribution area ratios (t = 20/30/50/99%)."""
    from functools import partial

    import torch

    from kernelkit.models.erf import erf_images, measure_erf, plot_erf

    cfg = prepare(ErfConfig(model=model, images=images, size=size, compare_kernel=compare_kernel, **opts.settings()))
    variants: dict[str, dict[str, Any]] = {cfg.model: {}}
    if cfg.compare_kernel:
        variants[f"{cfg.model} (large kernels → {cfg.compare_kernel})"] = {"large_kernel": cfg.compare_kernel}
    # the plain model is built first, so a bad argument of the comparison is the kernel size's
    nets = {label: create_model_or_fail(cfg.model, deploy=True, blame=f"--compare-kernel {cfg.compare_kernel}" if kw
                                        else None, **kw).eval().to(cfg.device)
            for label, kw in variants.items()}
    x, source = erf_images(cfg.images, cfg.size, cfg.data_root, cfg.seed)
    x = x.to(cfg.device)
    with start_run(f"erf-{cfg.model}", cfg, opts.out, opts.quiet) as run:
        sec = run.section("erf", f"Effective receptive field of {cfg.model}")
        sec.data_source(source)
        maps, ratios = {}, {}
        for label, net in nets.items():
            torch.manual_seed(cfg.seed)
            maps[label], ratios[label] = measure_erf(net, x, progress=partial(sec.progress, description=f"ERF {label}"))
            sec.log(model=label, **ratios[label])
        sec.table("High-contribution area ratio (larger = larger ERF)",
                  [{"model": k, **{t: round(v, 4) for t, v in r.items()}} for k, r in ratios.items()],
                  note="Fraction of the input area of the smallest centred square holding > t of the "
                       "log-scaled contribution scores; randomly initialised weights (deploy form; no pretrained "
                       "weights are fetched).")
        sec.figure(plot_erf(maps, ratios), "erf_heatmaps", "ERF heatmaps (log-scaled, max-normalised)")
        sec.record(area_ratios=ratios, data=source,
                   weights="random initialisation (deploy form; no pretrained weights are fetched)")
    announce(run, opts.as_json, opts.quiet)


@run_options(ConvnetTrainConfig)
def train(
    model: Annotated[str, typer.Option("--model", help="Registered model, e.g. unireplknet_a.")] =
        ConvnetTrainConfig.model,
    data: Annotated[str, typer.Option("--data", help="cifar10_jpg (CIFAR-10 test JPEGs split into train/val) or "
                                                    "torus (the generated long-range task: two dots on a torus).")] =
        ConvnetTrainConfig.data,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = ConvnetTrainConfig.epochs,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop after this many steps.")] =
        ConvnetTrainConfig.max_steps,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = ConvnetTrainConfig.batch_size,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="AdamW peak learning rate.")] = ConvnetTrainConfig.lr,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0.0)] = ConvnetTrainConfig.weight_decay,
    drop_path: Annotated[float, typer.Option("--drop-path", min=0.0, max=1.0)] = ConvnetTrainConfig.drop_path,
    image_size: Annotated[int, typer.Option("--image-size", min=32, help="Training resolution.")] =
        ConvnetTrainConfig.image_size,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=10, help=f"Use only this many images (torus: generate this many; default "
        f"{TORUS_DEFAULT_IMAGES}).")] = ConvnetTrainConfig.limit,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.05, max=0.5)] =
        ConvnetTrainConfig.val_fraction,
    pretrained: Annotated[str | None, typer.Option(
        "--pretrained", help="Fine-tune from this pretrained tag (e.g. unireplknet_a.in1k; sets --model); the head "
        "is re-initialised for the dataset's classes and inputs are normalised with the tag's mean/std.")] =
        ConvnetTrainConfig.pretrained,
    layer_decay: Annotated[float | None, typer.Option(
        "--layer-decay", min=0.0, max=1.0, help="Layer-wise LR decay: layer i of n trains at lr * d^(n + 1 - i) "
        "(the official UniRepLKNet fine-tuning recipe, e.g. 0.8).")] = ConvnetTrainConfig.layer_decay,
    *,
    opts: RunOptions,
) -> None:
    """Train a model on the foundation trainer (from scratch, or fine-tuned from a pretrained tag); the report has
    the loss/accuracy curves and the deploy check."""
    import copy

    import torch

    from kernelkit.models import reparameterize
    from kernelkit.train import TrainConfig, Trainer

    if data not in TRAIN_DATA:
        fail(f"--data {data}: unknown dataset; choose {' or '.join(TRAIN_DATA)}")
    tag_cfg = _pretrained_cfg_or_fail(pretrained) if pretrained else None
    if tag_cfg is not None:
        if model not in (ConvnetTrainConfig.model, tag_cfg.architecture):
            fail(f"--model {model}: --pretrained {pretrained} is a {tag_cfg.architecture}; leave --model out")
        model = tag_cfg.architecture
    cfg = prepare(make_config(
        ConvnetTrainConfig, model=model, data=data, epochs=epochs, max_steps=max_steps, batch_size=batch_size, lr=lr,
        weight_decay=weight_decay, drop_path=drop_path, image_size=image_size, limit=limit, val_fraction=val_fraction,
        pretrained=pretrained, layer_decay=layer_decay, **opts.settings()))
    try:
        train_set, val_set, source, in_chans, classes = _training_data(
            cfg, None if tag_cfg is None else (tag_cfg.mean, tag_cfg.std))
    except (FileNotFoundError, ValueError) as exc:
        fail(f"--data {cfg.data}: {exc}")
    build: dict[str, Any] = {"num_classes": classes, "in_chans": in_chans}
    if cfg.drop_path:  # only then: models without stochastic depth (resnet) train too
        build["drop_path_rate"] = cfg.drop_path
    net = (_pretrained_backbone(cfg.pretrained, **build) if cfg.pretrained
           else create_model_or_fail(cfg.model, **build))
    param_groups = None
    if cfg.layer_decay is not None:
        from functools import partial

        from kernelkit.models.layer_decay import layer_decay_param_groups, layer_ids

        try:
            layer_ids(net)
        except ValueError as exc:
            fail(f"--layer-decay: {exc}")
        param_groups = partial(layer_decay_param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay,
                               layer_decay=cfg.layer_decay)
    tc = TrainConfig(epochs=cfg.epochs, max_steps=cfg.max_steps, batch_size=cfg.batch_size, optimizer="adamw",
                     lr=cfg.lr, weight_decay=cfg.weight_decay, schedule="cosine", warmup_steps=min(50, cfg.epochs * 5),
                     label_smoothing=0.1, checkpoint_every=0, seed=cfg.seed)
    with start_run(f"train-{cfg.model}-{cfg.data}", cfg, opts.out, opts.quiet) as run:
        sec = run.section("train", f"Training {cfg.model} on {cfg.data}")
        sec.data_source(source)
        if cfg.pretrained:
            sec.text(f"Fine-tuned from {cfg.pretrained} (head re-initialised for {classes} classes"
                     + (f", first conv adapted to {in_chans} input channel(s)" if in_chans != 3 else "")
                     + (f"; layer-wise LR decay {cfg.layer_decay}" if cfg.layer_decay is not None else "") + ").")
        trainer = Trainer(net, train_set, tc, sec.dir / "trainer", val_set=val_set, device=cfg.device,
                          section=sec, quiet=opts.quiet, param_groups=param_groups)
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
        sec.record(final=final, reparam_rel_err=err, val_acc=final.get("val_acc"), train_config=tc.to_dict())
        sec.text(f"Final validation accuracy {final.get('val_acc')}; train→deploy relative output error {err:.2e}.")
    announce(run, opts.as_json, opts.quiet)


def _pretrained_cfg_or_fail(tag: str) -> Any:
    """The :class:`~kernelkit.models.pretrained.PretrainedCfg` of ``--pretrained``; unknown: exit 2 naming it."""
    from kernelkit.models import list_models
    from kernelkit.models.pretrained import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(tag)
    except KeyError as exc:
        fail(f"--pretrained: {exc.args[0] if exc.args else exc}")
    if cfg.architecture not in list_models():
        fail(f"--pretrained {tag}: its model {cfg.architecture} is not registered")
    return cfg


def _pretrained_backbone(tag: str, **kwargs: Any) -> Any:
    """``create_model(tag, pretrained=True, **kwargs)``; weights that cannot be had exit 1 with the reason."""
    from kernelkit.models import create_model
    from kernelkit.models.pretrained import WeightsUnavailableError
    from kernelkit.utils.checkpoint import CheckpointError

    try:
        return create_model(tag, pretrained=True, **kwargs)
    except (TypeError, ValueError) as exc:
        fail(f"--pretrained {tag}: {exc}")
    except (WeightsUnavailableError, CheckpointError) as exc:
        abort(first_line(exc))


def _training_data(cfg: ConvnetTrainConfig, mean_std: tuple[Any, Any] | None = None) -> tuple[Any, Any, str, int, int]:
    """``(train, val, source, in_chans, num_classes)`` for ``--data``; images are normalised with ``mean_std``
    (a pretrained model's) when given, else with the CIFAR-10 statistics."""
    import torch

    if cfg.data == "torus":
        from torch.utils.data import TensorDataset

        from kernelkit.data.longrange import TorusPairConfig, torus_pair_dataset

        n = cfg.limit or TORUS_DEFAULT_IMAGES
        task = TorusPairConfig(size=cfg.image_size)
        x, y = torus_pair_dataset(n, task, seed=cfg.seed)
        n_val = max(1, int(n * cfg.val_fraction))
        return (TensorDataset(x[n_val:], y[n_val:]), TensorDataset(x[:n_val], y[:n_val]),
                f"generated two-dots-on-a-torus task ({n} images, {task}, seed {cfg.seed})", 1, 2)
    from kernelkit.data.dataset import train_val_split
    from kernelkit.data.imagefolder import load_cifar10_jpg
    from kernelkit.data.root import DataNotFoundError
    from kernelkit.data.stats import CIFAR10_MEAN, CIFAR10_STD
    from kernelkit.data.transforms import Compose, Normalize, Resize

    try:
        ds = load_cifar10_jpg(root=cfg.data_root)
    except DataNotFoundError as exc:
        raise FileNotFoundError(str(exc)) from None
    if cfg.limit:
        ds = ds.subset(torch.randperm(len(ds), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.limit])
    steps: list[Any] = [Normalize(*(mean_std or (CIFAR10_MEAN, CIFAR10_STD)))]
    if cfg.image_size != 32:
        steps.insert(0, Resize((cfg.image_size, cfg.image_size)))
    ds = ds.with_transform(Compose(steps))
    tr, va = train_val_split(ds, cfg.val_fraction, cfg.seed)
    return tr, va, f"{ds.source}; stratified train/val split ({len(tr)}/{len(va)}, seed {cfg.seed})", 3, 10


@run_options(ModalityConfig)
def modality(
    kind: Annotated[str, typer.Option("--modality", help=f"One of {', '.join(MODALITIES)}.")] =
        ModalityConfig.modality,
    model: Annotated[str, typer.Option("--model", help="A registered UniRepLKNet, e.g. unireplknet_a.")] =
        ModalityConfig.model,
    input_file: Annotated[Path | None, typer.Option(
        "--input", help="A .npy file with the raw input: audio (B, samples), timeseries (B, length, variables), "
        "pointcloud (B, points, 3), video (B, 3, frames, H, W). Default: generated, seeded.")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Generated samples.")] = ModalityConfig.batch,
    num_classes: Annotated[int, typer.Option("--num-classes", min=1)] = ModalityConfig.num_classes,
    view_size: Annotated[int, typer.Option("--view-size", min=32, help="Point-cloud view side.")] =
        ModalityConfig.view_size,
    frame_size: Annotated[int, typer.Option("--frame-size", min=8, help="Generated video frame side.")] =
        ModalityConfig.frame_size,
    d_model: Annotated[int, typer.Option("--d-model", min=2, help="Time-series embedding width.")] =
        ModalityConfig.d_model,
    *,
    opts: RunOptions,
) -> None:
    """Audio, time series, point clouds or video → C'×H×W maps → a UniRepLKNet forward; reports every shape."""
    import torch

    from kernelkit.models.modalities import modality_maps

    if kind not in MODALITIES:
        fail(f"--modality {kind}: choose one of {', '.join(MODALITIES)}")
    if input_file is not None and not input_file.is_file():
        fail(f"--input {input_file}: no such file")
    cfg = prepare(ModalityConfig(
        modality=kind, model=model, input=str(input_file) if input_file else None, batch=batch,
        num_classes=num_classes, view_size=view_size, frame_size=frame_size, d_model=d_model, **opts.settings()))
    try:
        raw = _load_npy(Path(cfg.input)) if cfg.input else _generated_input(cfg)
        maps, per_sample = modality_maps(cfg.modality, raw, **_map_options(cfg))
    except (OSError, ValueError) as exc:
        fail(f"--input {cfg.input}: {exc}" if cfg.input else f"--modality {cfg.modality}: {exc}")
    net = create_model_or_fail(cfg.model, in_chans=maps.shape[1], num_classes=cfg.num_classes).eval().to(cfg.device)
    try:
        net.check_input(maps)
    except (AttributeError, ValueError) as exc:
        fail(f"--model {cfg.model}: {exc}")
    with start_run(f"modality-{cfg.modality}-{cfg.model}", cfg, opts.out, opts.quiet) as run:
        sec = run.section("modality", f"{cfg.modality} → {cfg.model}")
        sec.data_source(f"{cfg.input} (numpy array)" if cfg.input else
                        f"generated {cfg.modality} input (seed {cfg.seed}, batch {cfg.batch})")
        with torch.no_grad():
            logits = net(maps.to(cfg.device))
            pooled = logits.view(raw.shape[0], per_sample, -1).mean(1)  # average over views of one sample
        shapes = {"raw input": list(raw.shape), "network input (maps)": list(maps.shape),
                  "logits": list(logits.shape), "per-sample logits": list(pooled.shape)}
        sec.table("Shapes", [{"tensor": k, "shape": "×".join(map(str, v))} for k, v in shapes.items()],
                  note=f"{cfg.model} built with in_chans={maps.shape[1]} (only the stem changes with the modality); "
                       "randomly initialised weights."
                       + (f" Each sample is {per_sample} maps (views); their logits are averaged." if per_sample > 1
                          else ""))
        sec.record(shapes=shapes, in_chans=int(maps.shape[1]), maps_per_sample=per_sample,
                   logits_finite=bool(torch.isfinite(pooled).all()))
    announce(run, opts.as_json, opts.quiet)


def _load_npy(path: Path) -> Any:
    import numpy as np
    import torch

    return torch.from_numpy(np.load(path, allow_pickle=False)).float()


def _generated_input(cfg: ModalityConfig) -> Any:
    """A seeded raw input of the modality: tones + noise, a noisy multivariate sine, a noisy sphere, moving blobs."""
    import math

    import torch

    g = torch.Generator().manual_seed(cfg.seed)
    b = cfg.batch
    if cfg.modality == "audio":
        t = torch.arange(int(cfg.sample_rate * cfg.seconds)) / cfg.sample_rate
        freqs = 200 + 1800 * torch.rand(b, 1, generator=g)
        return torch.sin(2 * math.pi * freqs * t) + 0.05 * torch.randn(b, t.numel(), generator=g)
    if cfg.modality == "timeseries":
        t = torch.arange(cfg.length, dtype=torch.float32)[None, :, None]
        phase = 2 * math.pi * torch.rand(b, 1, cfg.variables, generator=g)
        return torch.sin(t / 6 + phase) + 0.1 * torch.randn(b, cfg.length, cfg.variables, generator=g)
    if cfg.modality == "pointcloud":
        p = torch.randn(b, cfg.points, 3, generator=g)
        return p / p.norm(dim=-1, keepdim=True) * (1 + 0.05 * torch.randn(b, cfg.points, 1, generator=g))
    s, n = cfg.frame_size, cfg.video_frames
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    start = torch.rand(b, 3, 2, generator=g) * s
    frames = []
    for f in range(n):
        cy, cx = (start[..., 0] + f) % s, (start[..., 1] + 2 * f) % s
        frames.append(torch.exp(-((yy - cy[..., None, None]) ** 2 + (xx - cx[..., None, None]) ** 2) / (s / 4) ** 2))
    return torch.stack(frames, dim=2)  # (B, 3, T, H, W)


def _map_options(cfg: ModalityConfig) -> dict[str, Any]:
    if cfg.modality == "audio":
        return {"sample_rate": cfg.sample_rate, "n_mels": cfg.n_mels, "frames": cfg.frames}
    if cfg.modality == "timeseries":
        return {"d_model": cfg.d_model}
    if cfg.modality == "pointcloud":
        return {"views": cfg.views, "size": cfg.view_size}
    return {}


def add_commands(app: typer.Typer) -> None:
    """Attach this system's commands to the ``convnet`` group."""
    app.command("erf")(erf)
    app.command("train")(train)
    app.command("modality")(modality)
