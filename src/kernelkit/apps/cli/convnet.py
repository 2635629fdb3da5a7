"""``kernelkit convnet``: the ConvNet systems' commands.

unireplknet (:mod:`kernelkit.apps.cli.unireplknet`): ``erf``, ``train``, ``modality``;
mixconv (:mod:`kernelkit.apps.cli.mixconv`): ``mixconv-ablation``, ``mixnet-info``;
this module: ``export`` (any registered model to ONNX, TorchScript or a ``torch.export`` program) and the
pretrained-weights commands ``predict`` (classify image files), ``validate`` (top-1/top-5 on an image folder) and
``deploy`` (an official training checkpoint to deploy-form safetensors).
Their configs are in :mod:`kernelkit.apps.configs.convnet`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kernelkit.apps.cli import mixconv as cli_mixconv
from kernelkit.apps.cli import unireplknet as cli_unireplknet
from kernelkit.apps.cli.common import (
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    RunOptions,
    SeedOpt,
    ThreadsOpt,
    abort,
    announce,
    check_file_out,
    check_int_ranges,
    check_out,
    check_rerun,
    create_model_or_fail,
    fail,
    first_line,
    make_config,
    prepare,
    run_options,
    start_run,
)
from kernelkit.apps.configs.convnet import DeployConfig, ExportConfig, PredictConfig, ValidateConfig

app = typer.Typer(no_args_is_help=True)
cli_unireplknet.add_commands(app)
cli_mixconv.add_commands(app)


@app.command("export")
def export(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Registered model, e.g. unireplknet_a or "
                                                                "mixnet_s.")],
    fmt: Annotated[str, typer.Option("--format", help="onnx, torchscript or exported-program.")] =
        ExportConfig.format,
    deploy: Annotated[bool, typer.Option("--deploy", help="Re-parameterize to the deploy (inference) form "
                                                          "first.")] = ExportConfig.deploy,
    out: Annotated[Path | None, typer.Option("--out", help="File to write (default: <model>[-deploy].onnx / "
                                                           ".pt / .pt2 here).")] = None,
    input_size: Annotated[int, typer.Option("--input-size", min=32, help="Input side length (fixed in the "
                                                                         "file).")] = ExportConfig.input_size,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Batch size (fixed in the file).")] =
        ExportConfig.batch,
    seed: SeedOpt = ExportConfig.seed,
    threads: ThreadsOpt = ExportConfig.threads,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a model (random weights) to a file, load it back and check it reproduces the eager outputs."""
    import torch

    from kernelkit.models import create_model, reparameterize
    from kernelkit.models.export import MissingExtraError, export_model, load_exported, max_rel_diff, require_onnx
    from kernelkit.models.export import suffix as format_suffix

    check_int_ranges({"input_size": ("--input-size", input_size), "batch": ("--batch", batch)})
    cfg = prepare(make_config(ExportConfig, model=model, format=fmt, deploy=deploy,
                              out=None if out is None else str(out), input_size=input_size, batch=batch, seed=seed,
                              threads=threads))
    path = Path(cfg.out) if cfg.out else Path(f"{cfg.model}{'-deploy' if cfg.deploy else ''}"
                                                 f"{format_suffix(cfg.format)}")
    check_file_out("--out", path)
    if cfg.format == "onnx":
        try:
            require_onnx()
        except MissingExtraError as exc:
            abort(f"--format onnx: {exc}")
    try:
        net = create_model(cfg.model).eval()
    except KeyError as exc:
        fail(f"MODEL: {exc.args[0] if exc.args else exc}")
    if cfg.deploy:
        reparameterize(net)
    x = torch.randn(cfg.batch, getattr(net, "in_chans", 3), cfg.input_size, cfg.input_size,
                    generator=torch.Generator().manual_seed(cfg.seed))
    try:
        with torch.no_grad():
            want = net(x)
    except (ValueError, RuntimeError) as exc:
        fail(f"--input-size {cfg.input_size}: {cfg.model} cannot run on it ({first_line(exc)})")
    try:
        export_model(net, x, cfg.format, path)
    except OSError as exc:
        fail(f"--out {path}: cannot write it ({exc.strerror or exc})")
    except Exception as exc:  # the exporter failed on this model: one line naming the step
        abort(f"exporting {cfg.model} to {cfg.format} failed ({type(exc).__name__}: {first_line(exc)})")
    try:
        with torch.no_grad():
            rel = max_rel_diff(load_exported(path, cfg.format)(x), want)
    except Exception as exc:
        abort(f"{path}: reloading the {cfg.format} file failed ({type(exc).__name__}: {first_line(exc)})")
    size = path.stat().st_size
    result = {"model": cfg.model, "format": cfg.format, "deploy": cfg.deploy, "file": str(path), "bytes": size,
              "input": list(x.shape), "max_rel_diff": rel, "tolerance": cfg.tolerance,
              "reproduces": rel <= cfg.tolerance}
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    elif not quiet:
        typer.echo(f"wrote {path} ({cfg.format}, {size / 1e6:.1f} MB, input {tuple(x.shape)}); "
                   f"reloaded: max relative difference to eager {rel:.2e}")
    if rel > cfg.tolerance:
        abort(f"{path}: the {cfg.format} file does not reproduce the eager outputs (max relative difference "
              f"{rel:.2e} > {cfg.tolerance:g})")


# ---- pretrained weights: predict, validate, deploy -------------------------------------------------

ModelTagOpt = Annotated[str, typer.Option("--model", help="Pretrained tag, e.g. unireplknet_a.in1k or "
                                                          "mixnet_s.ft_in1k (a bare model name takes its first "
                                                          "tag); with --checkpoint, the model of that file.")]
CheckpointOpt = Annotated[Path | None, typer.Option("--checkpoint", help="Load this file (.safetensors or an "
                                                                         "official .pth, training or deploy "
                                                                         "form) instead of the tag's weights.")]
NoDeployOpt = Annotated[bool, typer.Option("--no-deploy", help="Keep the training form (default: the "
                                                               "re-parameterized deploy form).")]


def _pretrained_model(model: str, checkpoint: str | None, deploy: bool) -> Any:
    """The model of a tag with its weights (Hugging Face cache) or ``checkpoint``'s (see :func:`_checkpoint_model`),
    in eval mode and the deploy form when ``deploy``. An unknown tag exits 2 naming --model; weights that cannot be
    had or do not fit exit 1 with the one-line reason."""
    from kernelkit.models import create_model, reparameterize
    from kernelkit.models.pretrained import WeightsUnavailableError
    from kernelkit.utils.checkpoint import CheckpointError

    if checkpoint is not None:
        net = _checkpoint_model(model, Path(checkpoint))[0]
        if not deploy and _is_deploy_form(net):
            fail(f"--no-deploy: {checkpoint} holds the deploy form; the training form cannot be recovered from it")
    else:
        try:
            net = create_model(model, pretrained=True)
        except KeyError as exc:
            fail(f"--model: {exc.args[0] if exc.args else exc}")
        except (TypeError, ValueError) as exc:
            fail(f"--model {model}: {first_line(exc)}")
        except (WeightsUnavailableError, CheckpointError) as exc:
            abort(first_line(exc).replace("checkpoint_path=FILE", "--checkpoint FILE"))
    net.eval()
    return reparameterize(net) if deploy else net


def _checkpoint_model(model: str, checkpoint: Path) -> tuple[Any, dict[str, Any], list[str]]:
    """``(net, state_dict, notes)``: ``model`` (an architecture or a tag) holding the weights of ``checkpoint``
    (an official training checkpoint, a fine-tuned model's file, or a deploy-form file written by ``convnet
    deploy``), in the form the file holds, its classifier sized as the file's. An unknown model exits 2 naming
    --model; an unreadable file or one that does not fit exits 1."""
    from kernelkit.models import list_models
    from kernelkit.models.pretrained import default_cfg, load_pretrained, read_state_dict
    from kernelkit.utils.checkpoint import CheckpointError

    arch = model.split(".", 1)[0]
    if arch not in list_models():
        create_model_or_fail(model)  # exits 2 naming --model with close matches
    base = default_cfg(arch)
    try:
        state_dict, notes = read_state_dict(checkpoint)
    except CheckpointError as exc:
        abort(first_line(exc))
    head = state_dict.get(f"{base.classifier}.weight")
    num_classes = int(head.shape[0]) if head is not None and head.ndim == 2 else None
    classes: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes}
    if _deploy_form_keys(arch, state_dict):
        classes["deploy"] = True
        notes.append("the file holds the deploy (re-parameterized) form")
    net = create_model_or_fail(model, **classes).eval()
    try:
        notes += load_pretrained(net, state_dict, default_cfg(arch, num_classes or 1000), str(checkpoint))
    except CheckpointError as exc:
        abort(first_line(exc))
    return net, state_dict, notes


def _deploy_form_keys(arch: str, state_dict: dict[str, Any]) -> bool:
    """Whether ``state_dict`` has the deploy form's keys rather than the training form's (architectures with a
    deploy form only; the classifier and BN counters are left out of the comparison)."""
    import torch

    from kernelkit.models import create_model

    def keys(**kwargs: Any) -> set[str] | None:
        try:
            with torch.device("meta"):
                sd = create_model(arch, **kwargs).state_dict()
        except (TypeError, ValueError):  # no deploy form
            return None
        return {k for k in sd if not k.endswith("num_batches_tracked")}

    deploy = keys(deploy=True)
    train = keys()
    if deploy is None or train is None or deploy == train:
        return False
    own = {k for k in state_dict if not k.endswith("num_batches_tracked")}
    return len(own ^ deploy) < len(own ^ train)


def _is_deploy_form(net: Any) -> bool:
    stages = getattr(net, "stages", None)
    return stages is not None and any(getattr(b, "deployed", False) for s in stages for b in s)


def _class_labels(cfg: dict[str, Any]) -> list[str]:
    """Human-readable class names for the ImageNet-1K label set, else ``class <i>``."""
    from kernelkit.models.pretrained import imagenet_class_names

    n = int(cfg["num_classes"])
    if cfg.get("label_names") == "imagenet-1k" and n == 1000:
        return imagenet_class_names()
    return [f"class {i}" for i in range(n)]


def _check_checkpoint_option(checkpoint: Path | None) -> None:
    if checkpoint is not None and not checkpoint.is_file():
        fail(f"--checkpoint {checkpoint}: no such file")


@app.command("predict")
def predict(
    images: Annotated[list[Path], typer.Argument(metavar="IMAGE...", help="Image files to classify.")],
    model: ModelTagOpt = PredictConfig.model,
    checkpoint: CheckpointOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Classes to print per image.")] = PredictConfig.top,
    no_deploy: NoDeployOpt = False,
    device: DeviceOpt = PredictConfig.device,
    threads: ThreadsOpt = PredictConfig.threads,
    as_json: JsonOpt = False,
) -> None:
    """Classify image files with a pretrained model: the top classes and their probabilities per image
    (preprocessing from the tag's pretrained_cfg)."""
    import torch

    from kernelkit.data.dataset import DataFormatError
    from kernelkit.models.preprocess import eval_transform, read_image

    check_int_ranges({"top": ("--top", top)})
    _check_checkpoint_option(checkpoint)
    cfg = prepare(make_config(PredictConfig, model=model, images=tuple(str(p) for p in images),
                              checkpoint=None if checkpoint is None else str(checkpoint), top=top,
                              deploy=not no_deploy, device=device, threads=threads))
    try:
        raw = [read_image(p) for p in cfg.images]  # a missing or broken file stops before the model loads
    except DataFormatError as exc:
        abort(str(exc))
    net = _pretrained_model(cfg.model, cfg.checkpoint, cfg.deploy).to(cfg.device)
    pcfg = net.pretrained_cfg
    transform = eval_transform(pcfg)
    labels = _class_labels(pcfg)
    k = min(cfg.top, len(labels))
    with torch.no_grad():
        probs = net(torch.stack([transform(x) for x in raw]).to(cfg.device)).float().softmax(-1).cpu()
    values, indices = probs.topk(k, dim=-1)
    results: list[dict[str, Any]] = [
        {"image": path, "top": [{"rank": r + 1, "index": int(i), "label": labels[int(i)], "prob": float(v)}
                                for r, (v, i) in enumerate(zip(vals, idxs, strict=True))]}
        for path, vals, idxs in zip(cfg.images, values, indices, strict=True)]
    if as_json:
        typer.echo(json.dumps({"model": cfg.model, "checkpoint": cfg.checkpoint,
                               "form": "deploy" if cfg.deploy else "training", "images": results}, indent=2))
        return
    for item in results:
        typer.echo(str(item["image"]))
        for entry in item["top"]:
            typer.echo(f"  {entry['prob']:.4f}  {entry['label']} ({entry['index']})")


def _class_folders(data: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """The class folders of an image folder (sorted) and every ``(image, folder)`` in sorted order."""
    from kernelkit.data.imagefolder import IMAGE_EXTENSIONS

    classes = sorted(d.name for d in data.iterdir() if d.is_dir() and not d.name.startswith("."))
    items = [(f, c) for c in classes for f in sorted((data / c).iterdir())
             if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted({c for _, c in items}), items


def _class_index(classes: list[str], num_classes: int, data: Path) -> tuple[dict[str, int], str]:
    """Folder name → the model's class index, and how it was decided: ImageNet synsets when every folder is one
    (a 1000-class model), else sorted folder order when there is one folder per class; otherwise exit 2."""
    from kernelkit.models.pretrained import imagenet_synsets

    synsets = imagenet_synsets()
    if num_classes == len(synsets) and set(classes) <= set(synsets):
        index = {s: i for i, s in enumerate(synsets)}
        return {c: index[c] for c in classes}, "ImageNet synset folder names"
    if len(classes) == num_classes:
        return {c: i for i, c in enumerate(classes)}, "sorted folder order (one folder per class)"
    fail(f"--data {data}: {len(classes)} class folders are neither ImageNet synsets (n01440764, ...) nor one "
         f"folder per class of the model ({num_classes} classes)")


@app.command("validate")
@run_options(ValidateConfig)
def validate(
    model: ModelTagOpt = ValidateConfig.model,
    data: Annotated[Path | None, typer.Option("--data", help="Image folder: one sub-folder of images per class "
                                                             "(ImageNet synsets such as n01440764, or one per "
                                                             "class in sorted order).")] = None,
    checkpoint: CheckpointOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = ValidateConfig.batch_size,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Evaluate a seeded random subset of this "
                                                                     "many images.")] = ValidateConfig.limit,
    no_deploy: NoDeployOpt = False,
    *,
    opts: RunOptions,
) -> None:
    """Top-1 / top-5 accuracy of a pretrained model on an image folder, beside the tag's published top-1."""
    import torch

    from kernelkit.models.preprocess import eval_transform, read_image

    if data is None:
        fail("--data: name the image folder to evaluate on")
    if not data.is_dir():
        fail(f"--data {data}: no such folder")
    _check_checkpoint_option(checkpoint)
    cfg = prepare(make_config(ValidateConfig, model=model, data=str(data), batch_size=batch_size, limit=limit,
                              checkpoint=None if checkpoint is None else str(checkpoint), deploy=not no_deploy,
                              **opts.settings()))
    classes, items = _class_folders(data)
    if not items:
        fail(f"--data {data}: no images in class sub-folders (expected <class>/<image> files)")
    check_out(opts.out)
    check_rerun(opts.out, cfg)
    net = _pretrained_model(cfg.model, cfg.checkpoint, cfg.deploy).to(cfg.device)
    pcfg = net.pretrained_cfg
    index, mapping = _class_index(classes, int(pcfg["num_classes"]), data)
    if cfg.limit is not None and cfg.limit < len(items):
        keep = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.limit]
        items = [items[i] for i in sorted(keep.tolist())]
    transform = eval_transform(pcfg)
    k = min(5, int(pcfg["num_classes"]))
    batches = [items[i:i + cfg.batch_size] for i in range(0, len(items), cfg.batch_size)]
    with start_run(f"validate-{cfg.model}", cfg, opts.out, opts.quiet) as run:
        sec = run.section("validate", f"{cfg.model} on {data.name}")
        sec.data_source(f"{data}: {len(items)} images in {len(classes)} class folders; class index from {mapping}")
        correct1 = correct5 = 0
        for batch in sec.progress(batches, f"validate {cfg.model}"):
            x = torch.stack([transform(read_image(path)) for path, _ in batch]).to(cfg.device)
            y = torch.tensor([index[c] for _, c in batch])
            with torch.no_grad():
                top = net(x).float().topk(k, dim=-1).indices.cpu()
            correct1 += int((top[:, 0] == y).sum())
            correct5 += int((top == y[:, None]).any(-1).sum())
        n = len(items)
        top1, top5 = 100.0 * correct1 / n, 100.0 * correct5 / n
        form = "deploy" if cfg.deploy else "training"
        weights = cfg.checkpoint or f"{pcfg['hf_hub_id']}/{pcfg['hf_hub_filename']}"
        sec.table("Measured accuracy", [{"model": cfg.model, "data": data.name, "images": n, "form": form,
                                         "top-1 (%)": round(top1, 2), f"top-{k} (%)": round(top5, 2)}],
                  note=f"Weights: {weights}. Preprocessing: {pcfg['input_size'][1]}px, crop_pct {pcfg['crop_pct']}, "
                       f"{pcfg['crop_mode']}, {pcfg['interpolation']}.")
        if pcfg.get("top1") is not None:
            sec.published(f"{pcfg['tag']} ImageNet-1K top-1", [{"model": pcfg["tag"], "top-1 (%)": pcfg["top1"]}],
                          source=str(pcfg["top1_source"]),
                          setting=f"ImageNet-1K val, 50,000 images, {pcfg['input_size'][1]}px",
                          differs=f"{n} images of {data.name} vs the 50,000 ImageNet-val images"
                                  + ("" if cfg.checkpoint is None else f"; weights from {cfg.checkpoint}"))
        sec.record(top1=top1, top5=top5, images=n, correct_top1=correct1, correct_top5=correct5, form=form,
                   class_index=mapping, published_top1=pcfg.get("top1"), weights=weights)
        sec.text(f"{cfg.model} ({form} form) classifies {correct1} of {n} images of {data.name} correctly "
                 f"(top-1 {top1:.2f}%, top-{k} {top5:.2f}%).")
    announce(run, opts.as_json, opts.quiet)


@app.command("deploy")
def deploy(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="Official training checkpoint (.pth, "
                                                                          "or .safetensors in the training "
                                                                          "form).")],
    model: Annotated[str | None, typer.Option("--model", help="Model or tag of the checkpoint, e.g. "
                                                              "unireplknet_a.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The .safetensors file to write.")] = None,
    seed: SeedOpt = DeployConfig.seed,
    threads: ThreadsOpt = DeployConfig.threads,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert an official training checkpoint to the re-parameterized deploy form: both forms are checked to give
    the same outputs on a random input before the safetensors file is written."""
    import copy

    import torch
    from safetensors.torch import save_file

    from kernelkit.models import reparameterize
    from kernelkit.models.export import max_rel_diff
    from kernelkit.utils.io import atomic_path, file_sha256

    if model is None:
        fail("--model: name the model of the checkpoint, e.g. --model unireplknet_a")
    if out is None:
        fail("--out: name the .safetensors file to write")
    if out.suffix != ".safetensors":
        fail(f"--out {out}: must end in .safetensors")
    if not checkpoint.is_file():
        fail(f"CHECKPOINT {checkpoint}: no such file")
    check_file_out("--out", out)
    cfg = prepare(make_config(DeployConfig, checkpoint=str(checkpoint), model=model, out=str(out), seed=seed,
                              threads=threads))
    arch = cfg.model.split(".", 1)[0]
    net, state_dict, notes = _checkpoint_model(cfg.model, checkpoint)
    if _is_deploy_form(net):
        abort(f"{checkpoint}: already holds the deploy form of {arch}; nothing to convert, nothing written")
    num_classes = getattr(net, "num_classes", None)
    deployed = reparameterize(copy.deepcopy(net)).eval()
    n_train, n_deploy = (sum(p.numel() for p in m.parameters()) for m in (net, deployed))
    size = tuple(int(v) for v in net.pretrained_cfg["input_size"])
    x = torch.randn(cfg.batch, *size, generator=torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        rel = max_rel_diff(deployed(x), net(x))
    result = {"checkpoint": str(checkpoint), "model": cfg.model, "out": str(out), "num_classes": num_classes,
              "params_training": n_train, "params_deploy": n_deploy, "input": [cfg.batch, *size],
              "max_rel_diff": rel, "tolerance": cfg.tolerance, "notes": notes}
    if not quiet and not as_json:
        typer.echo(f"read {checkpoint} ({len(state_dict)} tensors)")
        for note in notes:
            typer.echo(f"  {note}")
        typer.echo(f"parameters: training form {n_train:,} -> deploy form {n_deploy:,}")
        typer.echo(f"deploy vs training form on a random input {tuple(x.shape)}: max relative difference {rel:.2e}")
    if rel > cfg.tolerance:
        abort(f"{checkpoint}: the deploy form does not reproduce the training form (max relative difference "
              f"{rel:.2e} > {cfg.tolerance:g}); nothing written")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in deployed.state_dict().items()}
    metadata = {"format": "kernelkit deploy form", "model": cfg.model, "architecture": arch,
                "num_classes": str(num_classes or ""), "source_file": checkpoint.name,
                "source_sha256": file_sha256(checkpoint), "max_rel_diff": f"{rel:.3e}"}
    try:
        with atomic_path(out) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except OSError as exc:
        fail(f"--out {out}: cannot write it ({exc.strerror or exc})")
    result["sha256_source"] = metadata["source_sha256"]
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    elif not quiet:
        typer.echo(f"wrote {out} (deploy form; load it into create_model({arch!r}, deploy=True"
                   + (f", num_classes={num_classes}" if num_classes is not None else "") + "))")
