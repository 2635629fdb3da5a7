"""``kernelkit convnet``: the ConvNet systems' commands.

unireplknet (:mod:`kernelkit.apps.cli.unireplknet`): ``erf``, ``train``, ``modality``;
mixconv (:mod:`kernelkit.apps.cli.mixconv`): ``mixconv-ablation``, ``mixnet-info``;
this module: ``export`` (any registered model to ONNX, TorchScript or a ``torch.export`` program).
Their configs are in :mod:`kernelkit.apps.configs.convnet`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernelkit.apps.cli import mixconv as cli_mixconv
from kernelkit.apps.cli import unireplknet as cli_unireplknet
from kernelkit.apps.cli.common import (
    JsonOpt,
    QuietOpt,
    SeedOpt,
    ThreadsOpt,
    abort,
    check_file_out,
    check_int_ranges,
    fail,
    make_config,
    prepare,
)
from kernelkit.apps.configs.convnet import ExportConfig

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
        fail(f"--input-size {cfg.input_size}: {cfg.model} cannot run on it ({_first_line(exc)})")
    try:
        export_model(net, x, cfg.format, path)
    except OSError as exc:
        fail(f"--out {path}: cannot write it ({exc.strerror or exc})")
    except Exception as exc:  # the exporter failed on this model: one line naming the step
        abort(f"exporting {cfg.model} to {cfg.format} failed ({type(exc).__name__}: {_first_line(exc)})")
    try:
        with torch.no_grad():
            rel = max_rel_diff(load_exported(path, cfg.format)(x), want)
    except Exception as exc:
        abort(f"{path}: reloading the {cfg.format} file failed ({type(exc).__name__}: {_first_line(exc)})")
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
