"""Options and helpers shared by every ``kernelkit`` command, so all commands speak alike.

Every computing command takes ``--out --device --seed --threads --data-dir --json --quiet``: declared
once by :func:`run_options`, which hands them to the command as one :class:`RunOptions` (commands with
a different set use the aliases below directly), and starts its run with :func:`start_run`.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from kernelkit.apps.configs.base import INT64_MAX, RunSettings

S = TypeVar("S", bound=RunSettings)
R = TypeVar("R")

OutOpt = Annotated[Path | None, typer.Option("--out", help="Run directory (default: runs/<name>-<timestamp>).")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")]
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit
THREADS_MAX = 4096
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=SEED_MAX, help="Random seed.")]
ThreadsOpt = Annotated[int, typer.Option("--threads", min=0, max=THREADS_MAX, help="Torch CPU threads (0 = default).")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", help="Data root (default: $KERNELKIT_DATA, then ~/.cache/kernelkit).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables.")]


@dataclass(frozen=True)
class RunOptions:
    """The common run options of a computing command, as :func:`run_options` passes them (``opts``)."""

    out: Path | None = None
    device: str = RunSettings.device
    seed: int = RunSettings.seed
    threads: int = RunSettings.threads
    data_dir: Path | None = None
    as_json: bool = False
    quiet: bool = False

    def settings(self) -> dict[str, Any]:
        """The :class:`RunSettings` fields these options set: ``Config(..., **opts.settings())``."""
        return {"device": self.device, "seed": self.seed, "threads": self.threads,
                "data_root": str(self.data_dir) if self.data_dir else None}


_RUN_OPTION_TYPES: dict[str, Any] = {"out": OutOpt, "device": DeviceOpt, "seed": SeedOpt, "threads": ThreadsOpt,
                                     "data_dir": DataDirOpt, "as_json": JsonOpt, "quiet": QuietOpt}


def run_options(defaults: type[RunSettings] = RunSettings) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command the seven common options (``--out --device --seed --threads --data-dir --json
    --quiet``, after its own) and pass them to it as one keyword argument ``opts: RunOptions``.

    ``--device``, ``--seed`` and ``--threads`` default to the fields of ``defaults`` (the command's config
    class); the others to None/False. Put it under ``@app.command(...)``::

        @app.command("analytic")
        @run_options(NtkAnalyticConfig)
        def analytic_cmd(inputs: InputsOpt = ..., *, opts: RunOptions) -> None: ...
    """
    option_defaults = {"out": None, "device": defaults.device, "seed": defaults.seed, "threads": defaults.threads,
                       "data_dir": None, "as_json": False, "quiet": False}

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        # typer reads the wrapper's signature as given (a __signature__ is never string-evaluated), so build it
        # from the evaluated one: real annotation objects throughout.
        sig = inspect.signature(fn, eval_str=True)
        own = [p for name, p in sig.parameters.items() if name != "opts"]
        if "opts" not in sig.parameters or sig.parameters["opts"].kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"@run_options: {fn.__qualname__} must take the keyword-only parameter 'opts'")
        clash = sorted(set(option_defaults) & {p.name for p in own})
        if clash:
            raise TypeError(f"@run_options: {fn.__qualname__} already has {', '.join(clash)}")
        added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option_defaults[name],
                                   annotation=_RUN_OPTION_TYPES[name]) for name in option_defaults]
        new_sig = sig.replace(parameters=[*own, *added])

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> R:
            from kernelkit.data.dataset import DataFormatError
            from kernelkit.data.root import DataNotFoundError
            from kernelkit.runs import ConfigMismatchError
            from kernelkit.utils.checkpoint import CheckpointError

            bound = new_sig.bind(*args, **kwargs)
            bound.apply_defaults()
            check_int_ranges({name: (_flag(new_sig.parameters[name]), value)
                              for name, value in bound.arguments.items()})
            opts = RunOptions(**{name: bound.arguments.pop(name) for name in option_defaults})
            try:
                return fn(*bound.args, **bound.kwargs, opts=opts)
            except (DataFormatError, DataNotFoundError) as exc:  # a data file is missing or corrupt: one line
                abort(str(exc))
            except ConfigMismatchError as exc:  # a rerun into --out with other settings: a usage error
                refuse_rerun(opts.out, exc)
            except CheckpointError as exc:  # no intact checkpoint to resume from
                abort(str(exc))

        wrapper.__signature__ = new_sig  # type: ignore[attr-defined]
        wrapper.__annotations__ = {
            **{p.name: p.annotation for p in new_sig.parameters.values() if p.annotation is not p.empty},
            **({} if new_sig.return_annotation is sig.empty else {"return": new_sig.return_annotation}),
        }
        return wrapper

    return decorate


def _flag(param: inspect.Parameter) -> str:
    """The option a parameter is given by (``--batch-size``), from its typer declaration."""
    for meta in getattr(param.annotation, "__metadata__", ()):
        decls = [d for d in getattr(meta, "param_decls", None) or () if d.startswith("--")]
        if decls:
            return decls[0]
    return "--" + param.name.replace("_", "-")


def check_int_ranges(values: dict[str, tuple[str, Any]]) -> None:
    """Exit 2 naming the option when an integer (or one in a list) is beyond 64 bits, which no count, size
    or seed can be: ``values`` maps a parameter name to ``(option, value)``."""
    for option, value in values.values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for v in items:
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64_MAX:
                fail(f"{option}: {v} is out of range (at most {INT64_MAX})")


def fail(message: str) -> NoReturn:
    """Stop with exit status 2 and one plain line on stderr naming the option or file (bad arguments or input).

    Plain text rather than a boxed panel, so long paths and task names are never cut at the terminal width.
    """
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(2)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty), for :func:`fail`
    and :func:`abort`."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def abort(message: str) -> NoReturn:
    """Stop with exit status 1 (a runtime failure: a corrupt data file, work that failed) and one line on
    stderr naming the file or step, never a traceback."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(1)


def refuse_rerun(out: Path | None, exc: Exception) -> NoReturn:
    """Exit 2 for a rerun into ``--out`` with other settings, naming the differing keys with both values."""
    detail = getattr(exc, "detail", None) or str(exc)
    fail(f"--out {out}: holds a run with other settings ({detail}); use a new --out or the same options")


def make_config(cls: Callable[..., R], **kwargs: Any) -> R:
    """Build a command's config; its checks raise ``ValueError("--option: ...")``, which exits 2 here."""
    try:
        return cls(**kwargs)
    except ValueError as exc:
        fail(str(exc))


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
        fail(f"--device: {exc}")
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


def _refuse_under_a_file(option: str, path: Path) -> None:
    """Exit 2 naming ``option`` when the nearest existing folder above ``path`` is a file."""
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        fail(f"{option} {path}: cannot create it ({above} is a file)")


def check_out(out: Path | None) -> None:
    """Exit 2 naming ``--out`` when it is a file or lies under one (a command checks it before its work)."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")
    _refuse_under_a_file("--out", out)


def check_file_out(option: str, path: Path) -> None:
    """Exit 2 naming ``option`` when the file to write is a directory or lies under a file (checked before work)."""
    if path.is_dir():
        fail(f"{option} {path}: is a directory; name the file to write")
    _refuse_under_a_file(option, path)


def check_rerun(out: Path | None, config: Any) -> None:
    """Exit 2 when ``--out`` holds a run with other settings than ``config`` (a resolved dataclass): what
    :func:`start_run` refuses, checked before slow preparation such as loading a model."""
    from kernelkit.runs import ConfigMismatchError, refuse_other_config

    if out is None or not out.is_dir():
        return
    try:
        refuse_other_config(out, asdict(config) if is_dataclass(config) and not isinstance(config, type) else config)
    except ConfigMismatchError as exc:
        refuse_rerun(out, exc)


def start_run(name: str, config: Any, out: Path | None, quiet: bool):
    """Create the run directory for a command; ``config`` (a resolved dataclass) becomes ``config.json``
    as ``asdict(config)``. An ``--out`` that is a file or cannot be created, or that holds a run with other
    settings, exits 2 naming it (the files of that run stay as they were)."""
    from kernelkit.runs import ConfigMismatchError, Run

    check_out(out)
    try:
        return Run.create(name, asdict(config) if is_dataclass(config) and not isinstance(config, type) else config,
                          out=out, quiet=quiet)
    except ConfigMismatchError as exc:
        refuse_rerun(out, exc)
    except OSError as exc:
        where = f"--out {out}" if out is not None else "run directory"
        fail(f"{where}: cannot create it ({exc.strerror or exc})")


def announce(run: Any, as_json: bool, quiet: bool) -> None:
    """After a run is closed: say where the report is, or print the results as JSON (``--json``)."""
    from kernelkit.console import console

    report = run.dir / "report.html"
    if as_json:
        sys.stdout.write(json.dumps(run.results(), indent=2, default=str) + "\n")
    elif not quiet:
        console.print(f"[green]report:[/] {report}")


def create_model_or_fail(name: str, *, blame: str | None = None, **kwargs: Any) -> Any:
    """``kernelkit.models.create_model`` for commands: an unknown name or bad argument exits 2 naming it
    (``blame``: the option that set ``kwargs``, named for a bad argument instead of ``--model``)."""
    from kernelkit.models import create_model

    try:
        return create_model(name, **kwargs)
    except KeyError as exc:
        fail(f"--model: {exc.args[0] if exc.args else exc}")
    except (TypeError, ValueError) as exc:
        fail(f"{blame or f'--model {name}'}: {exc}")
