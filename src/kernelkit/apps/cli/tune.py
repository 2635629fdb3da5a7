"""``kernelkit tune mixconv|depthwise|ntk|model|show|clear``: measure path choices once, reuse them later.

By default every ``auto`` choice (MixConv paths, depthwise conv strategies, the empirical-NTK route on
convolution chains) follows a fixed rule and nothing is timed. ``kernelkit tune`` measures the choices
for a representative set of shapes (or for every layer of one model) and writes them to the one cache
file (``$KERNELKIT_CACHE/tune.json``); runs with ``KERNELKIT_TUNE=1`` then use them (and measure any
shape not yet in the cache). See :mod:`kernelkit.tune`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from typing import Annotated, Any

import typer

from kernelkit.apps.cli.common import (
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    SeedOpt,
    ThreadsOpt,
    make_config,
    prepare,
)
from kernelkit.apps.configs.tune import (
    DEPTHWISE_DENSE,
    DEPTHWISE_DILATED,
    DEPTHWISE_INPUT,
    MIXCONV_BATCHES,
    MIXCONV_KERNELS,
    MIXCONV_SHAPES,
    NTK_OUTPUTS,
    TuneConfig,
)

app = typer.Typer(no_args_is_help=True, help="Measure and cache path choices (opt-in; KERNELKIT_TUNE=1 uses them).")

QuickOpt = Annotated[bool, typer.Option("--quick", help="One small shape per target (a smoke run).")]


def _measure_mixconv(cfg: TuneConfig) -> None:
    import torch

    from kernelkit.layers.mixconv import MixConv2d

    shapes = MIXCONV_SHAPES[:1] if cfg.quick else MIXCONV_SHAPES
    batches = MIXCONV_BATCHES[:1] if cfg.quick else MIXCONV_BATCHES
    for channels, size in shapes:
        for batch in batches:
            for grad in (False, True):
                m = MixConv2d(channels, kernel_sizes=MIXCONV_KERNELS).to(cfg.device)
                x = torch.randn(batch, channels, size, size, device=cfg.device, requires_grad=grad)
                with torch.set_grad_enabled(grad):
                    m.choose_impl(x)


def _measure_depthwise(cfg: TuneConfig) -> None:
    import torch

    from kernelkit.layers.depthwise import depthwise_conv2d

    n, c, size = (2, 16, 16) if cfg.quick else DEPTHWISE_INPUT
    cases = [(k, 1) for k in (DEPTHWISE_DENSE[:1] if cfg.quick else DEPTHWISE_DENSE)]
    cases += list(DEPTHWISE_DILATED[-1:] if cfg.quick else DEPTHWISE_DILATED)
    for k, dilation in cases:
        for grad in (False, True):
            x = torch.randn(n, c, size, size, device=cfg.device, requires_grad=grad)
            w = torch.randn(c, 1, k, k, device=cfg.device, requires_grad=grad)
            with torch.set_grad_enabled(grad):
                depthwise_conv2d(x, w, None, 1, "same", dilation)  # "auto": measured and cached here


def _measure_ntk(cfg: TuneConfig) -> None:
    import torch
    from torch import nn

    from kernelkit.ntk import empirical

    outputs = NTK_OUTPUTS[:1] if cfg.quick else NTK_OUTPUTS
    traces: tuple[str | None, ...] = ("mean",) if cfg.quick else ("mean", "sum", None)
    for o in outputs:
        model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                              nn.ReLU(), nn.Flatten(), nn.Linear(32 * 8 * 8, o)).to(cfg.device).eval()
        x1 = torch.randn(cfg.samples, 3, 16, 16, device=cfg.device)
        x2 = torch.randn(cfg.samples, 3, 16, 16, device=cfg.device)
        for trace in traces:
            empirical(model, x1, x2, trace=trace)


def _measure_model(cfg: TuneConfig) -> None:
    import torch

    from kernelkit.apps.cli.common import create_model_or_fail

    assert cfg.model is not None
    model = create_model_or_fail(cfg.model).to(cfg.device)
    x = torch.randn(cfg.batch, 3, cfg.size, cfg.size, device=cfg.device)
    if cfg.train:
        model.train()
        out = model(x)
        out.float().sum().backward()
    else:
        model.eval()
        with torch.no_grad():
            model(x)


MEASURE = {"mixconv": _measure_mixconv, "depthwise": _measure_depthwise, "ntk": _measure_ntk, "model": _measure_model}


def _rows(entries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for key, entry in sorted(entries.items()):
        op, torch_version, device, threads, rest = key.split("|", 4)
        rows.append({"op": op, "key": rest, "choice": entry["choice"], "ms": entry.get("ms", {}),
                     "torch": torch_version.removeprefix("torch"), "device": device,
                     "threads": threads.removeprefix("threads")})
    return rows


def _print(rows: list[dict[str, Any]], title: str, as_json: bool, quiet: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    if quiet:
        return
    from rich.table import Table

    from kernelkit.console import Console

    table = Table(title=title)
    for col in ("op", "key", "choice", "ms per path"):
        table.add_column(col, overflow="fold")
    for r in rows:
        ms = ", ".join(f"{k} {v:.3g}" for k, v in sorted(r["ms"].items(), key=lambda kv: kv[1]))
        table.add_row(r["op"], r["key"], r["choice"], ms)
    Console().print(table)


def _tune(cfg: TuneConfig, as_json: bool, quiet: bool) -> None:
    from kernelkit import tune

    cfg = prepare(cfg)
    with tune.enabled() as path:
        cfg = replace(cfg, cache=str(path))
        before = tune.entries()
        try:
            MEASURE[cfg.target](cfg)
        except typer.Exit:  # a usage error already reported (fail): keep its exit status
            raise
        except (RuntimeError, ValueError) as exc:
            typer.echo(f"kernelkit tune {cfg.target}: {exc}", err=True)
            raise typer.Exit(1) from None
        after = tune.entries()
    new = {k: v for k, v in after.items() if before.get(k) != v}
    what = cfg.model if cfg.target == "model" else cfg.target
    _print(_rows(new), f"{len(new)} choices measured for {what} -> {path}", as_json, quiet)
    if not new and not as_json and not quiet:
        typer.echo(f"nothing new to measure (every choice is already in {path})")


@app.command("mixconv")
def mixconv_cmd(device: DeviceOpt = TuneConfig.device, threads: ThreadsOpt = TuneConfig.threads,
                seed: SeedOpt = TuneConfig.seed, quick: QuickOpt = TuneConfig.quick, as_json: JsonOpt = False,
                quiet: QuietOpt = False) -> None:
    """MixConv (3,5,7,9) paths at the benchmark shapes, inference and training."""
    cfg = make_config(TuneConfig, target="mixconv", device=device, threads=threads, seed=seed, quick=quick)
    _tune(cfg, as_json, quiet)


@app.command("depthwise")
def depthwise_cmd(device: DeviceOpt = TuneConfig.device, threads: ThreadsOpt = TuneConfig.threads,
                  seed: SeedOpt = TuneConfig.seed, quick: QuickOpt = TuneConfig.quick, as_json: JsonOpt = False,
                  quiet: QuietOpt = False) -> None:
    """Depthwise conv strategies for the large kernels and dilated branches of the benchmark."""
    cfg = make_config(TuneConfig, target="depthwise", device=device, threads=threads, seed=seed, quick=quick)
    _tune(cfg, as_json, quiet)


@app.command("ntk")
def ntk_cmd(samples: Annotated[int, typer.Option("--samples", help="Samples per input set.")] = TuneConfig.samples,
            device: DeviceOpt = TuneConfig.device, threads: ThreadsOpt = TuneConfig.threads,
            seed: SeedOpt = TuneConfig.seed, quick: QuickOpt = TuneConfig.quick, as_json: JsonOpt = False,
            quiet: QuietOpt = False) -> None:
    """The empirical-NTK route (structured or Jacobian) of the benchmark CNN."""
    cfg = make_config(TuneConfig, target="ntk", samples=samples, device=device, threads=threads, seed=seed,
                      quick=quick)
    _tune(cfg, as_json, quiet)


@app.command("model")
def model_cmd(model: Annotated[str, typer.Argument(help="A model name (kernelkit list models).")],
              batch: Annotated[int, typer.Option("--batch", help="Batch size.")] = TuneConfig.batch,
              size: Annotated[int, typer.Option("--size", help="Input side in pixels.")] = TuneConfig.size,
              train: Annotated[bool, typer.Option("--train/--eval", help="Forward + backward, or inference.")]
              = TuneConfig.train,
              device: DeviceOpt = TuneConfig.device, threads: ThreadsOpt = TuneConfig.threads,
              seed: SeedOpt = TuneConfig.seed, as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Every tunable layer of one model (MixConv, large depthwise convs) on one input shape."""
    _tune(make_config(TuneConfig, target="model", model=model, batch=batch, size=size, train=train, device=device,
                  threads=threads, seed=seed), as_json, quiet)


@app.command("show")
def show_cmd(as_json: JsonOpt = False) -> None:
    """The choices in the cache file (all machines, torch versions and thread counts)."""
    from kernelkit import tune

    rows = _rows(tune.entries())
    _print(rows, f"{len(rows)} choices in {tune.cache_path()} (this machine: {tune.platform_key()})", as_json, False)


@app.command("clear")
def clear_cmd() -> None:
    """Delete the cache file (later runs with KERNELKIT_TUNE=1 measure again)."""
    from kernelkit import tune

    path = tune.cache_path()
    tune.clear(disk=True)
    typer.echo(f"removed {path}")
