"""Run directories: every command that computes writes one.

Layout of ``runs/<name>-<timestamp>/`` (or ``--out``)::

    config.json        fully resolved configuration of the command
    environment.json   versions, threads, device, data root, git commit
    metrics.jsonl      streamed metrics, one JSON object per line
    results.json       final results, one key per section
    plots/*.png        matplotlib figures
    report.html        self-contained report (tables and embedded plots)

All files are written atomically (temporary file + rename); ``metrics.jsonl`` is append-only.

Usage::

    with Run.create("ntk-analytic", config, out=None) as run:
        sec = run.section("ntk", "Neural tangent kernels")
        sec.table("Kernel summary", rows, columns=["name", "value"])
        sec.figure(fig, "kernel_heatmap", caption="NTK of the training set")
        sec.record(max_error=1e-9)
    # report.html and results.json are written on exit (also after an exception, marked failed,
    # unless the directory held a finished run and this one failed before computing anything)
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kernelkit.utils.io import append_jsonl, repair_jsonl_tail, to_jsonable, write_bytes, write_json

T = TypeVar("T")

DEFAULT_RUNS_DIR = Path("runs")

# Settings that may differ between a run and a rerun into its directory: they do not change the results.
RERUN_VOLATILE = frozenset({"threads"})


class ConfigMismatchError(ValueError):
    """An output directory holds a run with another configuration (or data / process count) than this one.

    ``keys`` names the differing fields; ``detail`` lists them with both values (``lr: 0.1 -> 0.2``) and the
    message is one line naming them.
    """

    def __init__(self, message: str, keys: list[str], detail: str = "") -> None:
        super().__init__(message)
        self.keys = keys
        self.detail = detail or message


def config_differences(saved: dict[str, Any], current: dict[str, Any],
                       ignore: frozenset[str] = frozenset()) -> dict[str, tuple[Any, Any]]:
    """The fields whose values differ between two JSON configs, as ``{key: (saved, current)}`` (sorted)."""
    import json

    now = json.loads(json.dumps(to_jsonable(current)))  # tuples -> lists, paths -> str, nan -> "nan"
    keys = sorted((set(saved) | set(now)) - ignore)
    return {k: (saved.get(k), now.get(k)) for k in keys if saved.get(k) != now.get(k)}


def refuse_other_config(directory: Path, config: dict[str, Any]) -> None:
    """Raise :class:`ConfigMismatchError` when ``directory`` holds a run (its ``config.json``) whose settings
    differ from ``config`` in more than :data:`RERUN_VOLATILE`."""
    import json

    try:
        saved = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no earlier run here (config.json is written atomically, so never torn)
    if not isinstance(saved, dict):
        return
    diff = config_differences(saved, config, RERUN_VOLATILE)
    if diff:
        detail = "; ".join(f"{k}: {json.dumps(a)} -> {json.dumps(b)}" for k, (a, b) in diff.items())
        raise ConfigMismatchError(f"{directory}: holds a run with a different config ({detail}); "
                                  "use a new directory or the same config", list(diff), detail)


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def environment_info(device: str | None = None, data_root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Versions and machine facts that make a result interpretable."""
    import torch

    from kernelkit import __version__

    info: dict[str, Any] = {
        "kernelkit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "device": device,
        "data_root": os.fspath(data_root) if data_root else None,
        "time": _dt.datetime.now().isoformat(timespec="seconds"),
        "argv": sys.argv,
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    info["git_commit"] = _git_commit()
    return info


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class RecordedTable(Table):
    """A table of numbers recorded by an earlier run (not this one), with what produced them."""

    command: str = ""
    date: str = ""
    commit: str = ""
    what: str = ""


@dataclass
class PublishedTable(Table):
    """Numbers a paper published (not measured by this run): where they come from, in which setting, and how
    that setting differs from this run's."""

    source: str = ""
    setting: str = ""
    differs: str = ""


@dataclass
class Figure:
    name: str
    path: Path
    caption: str = ""


@dataclass
class Section:
    """One part of a run (one system or experiment): collects tables, figures, text and results."""

    run: Run
    key: str
    title: str
    items: list[Any] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    status: str = "ok"
    seconds: float | None = None

    # -- content ------------------------------------------------------------------------------
    def text(self, paragraph: str) -> None:
        """A paragraph of plain text (HTML-escaped in the report)."""
        self.items.append(("text", paragraph))

    def data_source(self, description: str) -> None:
        """Say which data this section used (real files or an embedded fallback)."""
        self.results.setdefault("data", []).append(description)
        self.items.append(("data", description))

    def table(self, title: str, rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]],
              columns: Sequence[str] | None = None, note: str = "") -> Table:
        """Add a table; ``rows`` are sequences (give ``columns``) or dicts (columns from keys)."""
        t = _make_table(title, rows, columns, note)
        self.items.append(("table", t))
        return t

    def recorded(self, title: str, rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]],
                 columns: Sequence[str] | None = None, *, command: str, date: str, commit: str,
                 what: str = "", note: str = "") -> RecordedTable:
        """Add a table of numbers recorded earlier, not measured by this run.

        The report shows it in a separate box headed "Recorded earlier (not this run)" with ``command``,
        ``date`` and ``commit`` (all required and non-empty) that produced it; ``what`` says what ran.
        It does not count as output of this run (:meth:`Run.produced_output`).
        """
        for name, value in (("command", command), ("date", date), ("commit", commit)):
            if not str(value).strip():
                raise ValueError(f"recorded table {title!r}: {name} is empty")
        t = _make_table(title, rows, columns, note)
        rec = RecordedTable(t.title, t.columns, t.rows, t.note, command=command, date=date, commit=commit,
                            what=what)
        self.items.append(("recorded", rec))
        return rec

    def published(self, title: str, rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]],
                  columns: Sequence[str] | None = None, *, source: str, setting: str, differs: str,
                  note: str = "") -> PublishedTable:
        """Add a table of a paper's published numbers, beside this run's.

        The report shows it in a separate box headed "Published (``source``, ``setting``)" followed by
        ``differs``, one generated line saying where this run's setting differs (dataset, backbone, budget).
        All three are required and non-empty. It does not count as output of this run.
        """
        for name, value in (("source", source), ("setting", setting), ("differs", differs)):
            if not str(value).strip():
                raise ValueError(f"published table {title!r}: {name} is empty")
        t = _make_table(title, rows, columns, note)
        pub = PublishedTable(t.title, t.columns, t.rows, t.note, source=source, setting=setting, differs=differs)
        self.items.append(("published", pub))
        return pub

    def figure(self, fig: Any, name: str, caption: str = "", dpi: int = 110) -> Path:
        """Save a ``matplotlib.figure.Figure`` as ``plots/<section>_<name>.png`` (atomic).

        A figure made through pyplot is closed afterwards; a plain ``Figure`` needs no pyplot at all.
        """
        import io

        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{self.key}_{name}")
        path = self.run.dir / "plots" / f"{safe}.png"
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
        if getattr(fig.canvas, "manager", None) is not None:  # registered with pyplot: release it
            import matplotlib.pyplot as plt

            plt.close(fig)
        write_bytes(path, buf.getvalue())
        self.items.append(("figure", Figure(name, path, caption)))
        return path

    def record(self, **values: Any) -> None:
        """Store final results of this section (written to ``results.json``)."""
        self.results.update(to_jsonable(values))

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Stream metrics to ``metrics.jsonl`` tagged with this section."""
        self.run.log(section=self.key, step=step, **metrics)

    def progress(self, iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate with a progress bar (silent when the run is quiet)."""
        return self.run.progress(iterable, description, total)

    @property
    def dir(self) -> Path:
        """A folder for this section's extra artifacts (kernels, checkpoints, ...)."""
        d = self.run.dir / self.key
        d.mkdir(parents=True, exist_ok=True)
        return d


def _make_table(title: str, rows: Sequence[Sequence[Any]] | Sequence[dict[str, Any]],
                columns: Sequence[str] | None, note: str) -> Table:
    items: list[Any] = list(rows)
    if items and isinstance(items[0], dict):
        columns = list(columns or dict.fromkeys(k for r in items for k in r))
        body = [[r.get(c, "") for c in columns] for r in items]
    else:
        if columns is None:
            raise ValueError(f"table {title!r}: give columns for sequence rows")
        body = [list(r) for r in items]
        for r in body:
            if len(r) != len(columns):
                raise ValueError(f"table {title!r}: row {r} has {len(r)} cells, expected {len(columns)}")
    return Table(title, list(columns), to_jsonable(body), note)


def _finished_run_files(directory: Path) -> dict[str, bytes]:
    """The files of a finished run (``results.json`` status ok or partial) in ``directory``, else ``{}``."""
    import json

    try:
        status = json.loads((directory / "results.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return {}
    if status not in ("ok", "partial"):
        return {}
    names = ("config.json", "environment.json", "results.json", "report.html")
    return {n: (directory / n).read_bytes() for n in names if (directory / n).is_file()}


class Run:
    """A run directory plus the sections that fill its report.

    :meth:`create` refuses a directory that holds a run with other settings. Reusing the directory of a
    finished run (``results.json`` says ok or partial) with the same settings is safe when the new
    attempt fails before it computes anything (see :meth:`produced_output`): its ``config.json``,
    ``environment.json``, ``results.json`` and ``report.html`` are left as the finished run wrote them.
    """

    def __init__(self, directory: Path, name: str, config: dict[str, Any], quiet: bool = False,
                 environment: dict[str, Any] | None = None) -> None:
        self.dir = directory
        self.name = name
        self.config = config
        self.quiet = quiet
        self.sections: list[Section] = []
        self.started = time.time()
        self.status = "running"
        self._logged = 0  # metric records this run appended
        self._previous = _finished_run_files(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "plots").mkdir(exist_ok=True)
        repair_jsonl_tail(self.dir / "metrics.jsonl")  # a line torn by a killed earlier attempt
        (self.dir / "metrics.jsonl").touch()
        write_json(self.dir / "config.json", config)
        write_json(self.dir / "environment.json", environment or environment_info(
            device=config.get("device"), data_root=config.get("data_root")))

    @classmethod
    def create(cls, name: str, config: dict[str, Any], out: str | os.PathLike[str] | None = None,
               quiet: bool = False, runs_dir: str | os.PathLike[str] | None = None) -> Run:
        """Make ``out`` or ``runs/<name>-<timestamp>`` (a numeric suffix avoids collisions).

        An ``out`` that holds a run with other settings (its ``config.json`` differs in a field other than
        :data:`RERUN_VOLATILE`) is refused with :class:`ConfigMismatchError` before anything in it is
        touched; a rerun with the same settings reuses the directory (commands resume or recompute).
        """
        if out is not None:
            directory = Path(out)
            refuse_other_config(directory, config)
        else:
            base = Path(runs_dir) if runs_dir else DEFAULT_RUNS_DIR
            directory = base / f"{name}-{timestamp()}"
            k = 1
            while directory.exists():
                k += 1
                directory = base / f"{name}-{timestamp()}-{k}"
        return cls(directory, name, config, quiet=quiet)

    # -- content ------------------------------------------------------------------------------
    def section(self, key: str, title: str) -> Section:
        sec = Section(self, key, title)
        self.sections.append(sec)
        return sec

    def log(self, **record: Any) -> None:
        record = {"time": round(time.time() - self.started, 3), **record}
        append_jsonl(self.dir / "metrics.jsonl", record)
        self._logged += 1

    def produced_output(self) -> bool:
        """Whether this run has computed anything: a table, figure, text, result or metric record
        (a section's ``data_source``, a table recorded earlier or published numbers alone do not count)."""
        not_output = ("data", "recorded", "published")
        return self._logged > 0 or any(
            any(kind not in not_output for kind, _ in s.items) or any(k != "data" for k in s.results)
            for s in self.sections)

    def progress(self, iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        from kernelkit.console import progress

        return progress(iterable, description, total=total, disable=self.quiet)

    # -- output -------------------------------------------------------------------------------
    def results(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "seconds": round(time.time() - self.started, 2),
            "sections": {
                s.key: {"title": s.title, "status": s.status, "seconds": s.seconds, **s.results}
                for s in self.sections
            },
        }

    def write(self) -> Path:
        """Write ``results.json`` and ``report.html``; return the report path."""
        from kernelkit.report import render_report

        write_json(self.dir / "results.json", self.results())
        html = render_report(self)
        path = self.dir / "report.html"
        write_bytes(path, html.encode("utf-8"))
        return path

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self._previous and not self.produced_output():
            # A rerun into the directory of a finished run died before computing anything: keep that
            # run's files as they were (this attempt's config.json and environment.json are undone).
            for name, data in self._previous.items():
                write_bytes(self.dir / name, data)
            self.status = "not started"
            return
        if exc_type is None:
            statuses = [s.status for s in self.sections]
            if statuses and all(st == "failed" for st in statuses):
                self.status = "failed"  # the run's work all failed: never "ok" nor "partial"
            else:
                self.status = "ok" if all(st == "ok" for st in statuses) else "partial"
        else:
            self.status = "interrupted" if exc_type is KeyboardInterrupt else "failed"
            if self.sections and exc_type is not KeyboardInterrupt:
                last = self.sections[-1]
                last.status = "failed"
                last.text("Error: " + "".join(traceback.format_exception_only(exc_type, exc)).strip())
        self.write()
