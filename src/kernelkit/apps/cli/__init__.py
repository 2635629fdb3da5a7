"""``kernelkit`` command line: info, reproduce, bench, list, and one group per system."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kernelkit.apps.cli.common import (
    DataDirOpt,
    DeviceOpt,
    JsonOpt,
    QuietOpt,
    RunOptions,
    ThreadsOpt,
    announce,
    check_file_out,
    fail,
    make_config,
    prepare,
    run_options,
    setup,
    start_run,
)
from kernelkit.apps.configs.reproduce import BenchConfig, ReproduceConfig

app = typer.Typer(
    name="kernelkit",
    help="Kernels in deep learning: NTK, large-kernel ConvNets, MixConv, TEEN FSCIL, M4LE long-context.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help that wraps long option names, paths and defaults instead of cutting them
)


def _add_system_groups() -> None:
    from kernelkit.apps.cli.convnet import app as convnet_app
    from kernelkit.apps.cli.fscil import app as fscil_app
    from kernelkit.apps.cli.m4le import app as m4le_app
    from kernelkit.apps.cli.ntk import app as ntk_app

    app.add_typer(ntk_app, name="ntk", help="Neural tangent kernels: analytic, empirical, predict.")
    app.add_typer(convnet_app, name="convnet", help="Large-kernel ConvNets and MixConv/MixNet.")
    app.add_typer(fscil_app, name="fscil", help="Few-shot class-incremental learning with TEEN.")
    app.add_typer(m4le_app, name="m4le", help="M4LE long-context evaluation and RoPE scaling.")
    app.add_typer(__import__("kernelkit.apps.cli.tune", fromlist=["app"]).app, name="tune")


@app.command()
def info(
    data_dir: DataDirOpt = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Versions, threads, device, data root and which datasets it finds."""
    from kernelkit.data.catalog import scan, task_sources
    from kernelkit.data.root import data_root_source
    from kernelkit.longctx.tasks import TASKS
    from kernelkit.runs import environment_info

    s = setup(device=device, threads=threads, data_dir=data_dir)
    env = environment_info(device=s["device"], data_root=s["data_root"])
    env["data_root_source"] = data_root_source()
    env["datasets"] = scan(extra=task_sources("m4le", ((e.name, e.obj.data_files) for e in TASKS.entries())))
    if as_json:
        sys.stdout.write(json.dumps(env, indent=2) + "\n")
        return
    from rich.table import Table

    from kernelkit.console import Console

    out = Console()
    for key in ("kernelkit", "python", "torch", "numpy", "torch_threads", "cpu_count", "device",
                "cuda_available", "platform"):
        out.print(f"[bold]{key}[/]: {env.get(key)}")
    out.print(f"[bold]data root[/]: {env['data_root']} (from {env['data_root_source']})")
    table = Table(title="datasets")
    table.add_column("dataset", overflow="fold")
    table.add_column("found")
    table.add_column("where / how to get it", overflow="fold")  # wrap paths, never cut them
    for row in env["datasets"]:
        table.add_row(row["name"], {"found": "yes", "missing": "no"}.get(row["status"], row["status"]), row["detail"])
    out.print(table)


@app.command()
@run_options(ReproduceConfig)
def reproduce(
    quick: Annotated[bool, typer.Option("--quick", help="Small, fast settings (same code paths).")] = False,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Experiment or system name (repeatable): ntk, unireplknet, mixconv, fscil, m4le.")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the registered experiments and exit.")] = False,
    *,
    opts: RunOptions,
) -> None:
    """Run every registered experiment and write one combined report."""
    import torch

    from kernelkit.apps.recipes import EXPERIMENTS, SYSTEMS, recipe_configs, run_experiments, select
    from kernelkit.console import console

    if list_:
        for e in EXPERIMENTS.entries():
            typer.echo(f"{e.name:28s} {e.meta['system']:12s} {e.meta['title']}")
        return
    try:
        names = select(only)
    except ValueError as exc:
        fail(str(exc))
    config = prepare(ReproduceConfig(quick=quick, only=list(only or []), experiments=names,
                                     recipes=recipe_configs(names, quick), **opts.settings()))
    with start_run("reproduce-quick" if quick else "reproduce", config, opts.out, opts.quiet) as run:
        if not names:
            sec = run.section("no_systems", "No systems registered")
            sec.text("No experiments are registered in this installation yet, so nothing was run. "
                     "Each system registers its experiments in kernelkit/<system>/experiments.")
            sec.status = "skipped"
        else:
            systems = sorted({EXPERIMENTS.entry(n).meta["system"] for n in names}, key=list(SYSTEMS).index)
            if not opts.quiet:
                console.print(f"running {len(names)} experiments from {', '.join(systems)}"
                              f"{' (quick)' if quick else ''} → {run.dir}")
            bar = iter(run.progress(range(len(names)), "experiments"))
            next(bar, None)

            def done(name: str, sec) -> None:
                next(bar, None)
                if not opts.quiet:
                    console.print(f"  {name}: [{'green' if sec.status == 'ok' else 'red'}]{sec.status}[/]"
                                  f" in {sec.seconds:.1f} s")

            run_experiments(run, names, quick=quick, seed=opts.seed, device=torch.device(config.device),
                            data_root=Path(str(config.data_root)), on_done=done)
    announce(run, opts.as_json, opts.quiet)
    failed = [sec.key for sec in run.sections if sec.status == "failed"]
    if failed:
        typer.echo(f"failed experiments: {', '.join(failed)}", err=True)
        raise typer.Exit(1)


@app.command()
def bench(
    names: Annotated[list[str] | None, typer.Argument(help="Benchmark names (default: all).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List benchmarks and exit.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="Smoke-sized problems (for CI).")] = False,
    min_run_time: Annotated[float, typer.Option(help="Seconds of timing per measurement.")] = BenchConfig.min_run_time,
    out: Annotated[Path | None, typer.Option(
        "--out", help="JSON file for the results; a markdown page (same name, .md) is written beside it.")] = None,
    device: Annotated[str, typer.Option(
        "--device", help="cpu (default) or cuda / cuda:N: where the benchmarks that support it run.")] = "cpu",
    threads: ThreadsOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Time kernelkit against named baselines side by side; print medians and ratios."""
    from kernelkit.apps.bench import BENCHMARKS, run_benchmarks
    from kernelkit.registry import RegistryError

    if list_:
        for e in BENCHMARKS.entries():
            typer.echo(f"{e.name:28s} {e.meta['title']}")
        return
    chosen = names or BENCHMARKS.names()
    for n in chosen:
        if n not in BENCHMARKS:
            fail(str(RegistryError(BENCHMARKS.unknown_message(n))))
    config = make_config(BenchConfig, names=list(chosen), quick=quick, min_run_time=min_run_time, threads=threads,
                         device=device)
    dev = setup(device=config.device, threads=config.threads)["device"]
    if out is None:
        from kernelkit.runs import timestamp

        out = Path("runs") / f"bench-{timestamp()}.json"
    check_file_out("--out", out)
    run_benchmarks(config.names, quick=config.quick, min_run_time=config.min_run_time, json_path=out, quiet=quiet,
                   device=dev)
    if not quiet:
        typer.echo(f"results: {out} and {out.with_suffix('.md')}", err=True)


@app.command("list")
def list_cmd(
    kind: Annotated[str, typer.Argument(help="models, experiments, benchmarks or datasets")],
    pattern: Annotated[str | None, typer.Argument(help="Shell-style filter, e.g. 'unireplknet_*'")] = None,
) -> None:
    """List registered models, experiments, benchmarks or datasets."""
    from kernelkit.apps.bench import BENCHMARKS
    from kernelkit.apps.recipes import EXPERIMENTS
    from kernelkit.data.catalog import DATASETS
    from kernelkit.models import MODELS
    from kernelkit.registry import Registry

    registries: dict[str, Registry[Any]] = {
        "models": MODELS, "experiments": EXPERIMENTS, "benchmarks": BENCHMARKS, "datasets": DATASETS}
    if kind not in registries:
        fail(f"unknown kind {kind!r}; expected one of {', '.join(registries)}")
    for name in registries[kind].names(pattern):
        typer.echo(name)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    return f"Warning: {message}\n"


def main() -> None:
    """Console entry point. Warnings print as one line (no source line) in this process only."""
    import warnings

    warnings.formatwarning = _one_line_warning
    _add_system_groups()
    app()


def bench_script_main(*names: str) -> None:
    """Entry point for ``benchmarks/<claim>.py`` scripts: ``kernelkit bench NAME ...`` with argv flags."""
    sys.argv = ["kernelkit", "bench", *names, *sys.argv[1:]]
    main()


if __name__ == "__main__":
    main()
