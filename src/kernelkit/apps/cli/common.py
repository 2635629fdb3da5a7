"""Options and helpers shared by every ``kernelkit`` command, so all commands speak alike.

Every computing command takes ``--out --device --seed --threads --data-dir --json --quiet`` via these
aliases and starts its run with :func:`start_run`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass, replace
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from kernelkit.apps.configs.base import RunSettings

S = TypeVar("S", bound=RunSettings)

OutOpt = Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/<name>-<timestamp>).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, mps.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=0, help="Torch CPU threads (0 = default).")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", help="Data root (default: $KERNELKIT_DATA, then ~/.cache/kernelkit).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]


def fail(message: str) -> NoReturn:
    """Stop with exit status 2 and a message naming the problem (bad arguments or input)."""
    raise typer.BadParameter(message)


def setup(device: str = "auto", seed: int = 0, threads: int = 0, data_dir: Path | None = None) -> dict[str, Any]:
    """Apply threads, data root and seed; validate the device; keep freed large CPU blocks for reuse
    (:mod:`kernelkit.utils.allocator`). Returns the resolved settings."""
    from kernelkit.data.root import DataNotFoundError, data_root, set_data_root
    from kernelkit.utils.allocator import retain_freed_memory
    from kernelkit.utils.device import resolve_device, set_threads
    from kernelkit.utils.seed import seed_everything

    try:
        dev = resolve_device(device)
    except ValueError as exc:
        fail(str(exc))
    try:
        set_data_root(data_dir)
    except DataNotFoundError as exc:
        fail(f"--data-dir: {exc}")
    n = set_threads(threads)
    seed_everything(seed)
    retain_freed_memory()
    return {"device": str(dev), "seed": seed, "threads": n, "data_root": str(data_root())}


def prepare(config: S) -> S:
    """:func:`setup` from a command's config; returns the config with device, threads and data root resolved."""
    s = setup(device=config.device, seed=config.seed, threads=config.threads,
              data_dir=Path(config.data_root) if config.data_root else None)
    return replace(config, device=s["device"], threads=s["threads"], data_root=s["data_root"])


def start_run(name: str, config: Any, out: Path | None, quiet: bool):
    """Create the run directory for a command; ``config`` (a resolved dataclass) becomes ``config.json``
    as ``asdict(config)``."""
    from kernelkit.runs import Run

    return Run.create(name, asdict(config) if is_dataclass(config) and not isinstance(config, type) else config,
                      out=out, quiet=quiet)


def announce(run: Any, as_json: bool, quiet: bool) -> None:
    """After a run is closed: say where the report is, or print the results as JSON (``--json``)."""
    from kernelkit.console import console

    report = run.dir / "report.html"
    if as_json:
        sys.stdout.write(json.dumps(run.results(), indent=2, default=str) + "\n")
    elif not quiet:
        console.print(f"[green]report:[/] {report}")


def create_model_or_fail(name: str, **kwargs: Any) -> Any:
    """``kernelkit.models.create_model`` for commands: an unknown name or bad argument exits 2 naming it."""
    from kernelkit.models import create_model

    try:
        return create_model(name, **kwargs)
    except KeyError as exc:
        fail(f"--model: {exc.args[0] if exc.args else exc}")
    except (TypeError, ValueError) as exc:
        fail(f"--model {name}: {exc}")
