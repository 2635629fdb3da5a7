"""Side-by-side timing on ``torch.utils.benchmark``.

Each benchmark is one module in ``kernelkit/apps/bench/`` that registers itself::

    @register_benchmark("depthwise_conv", title="Large-kernel depthwise conv vs F.conv2d")
    def bench(b: BenchContext) -> None:
        x = ...
        b.compare("K=31 forward", kernelkit=lambda: depthwise_conv2d(x, w),
                  baseline=lambda: F.conv2d(x, w, groups=C, padding=15), baseline_name="F.conv2d")

Both callables are timed in the same process, alternating rounds, and the ratio
``baseline median / kernelkit median`` is printed (> 1 means kernelkit is faster).
:func:`run_benchmarks` writes the results as JSON and as a markdown page that names the command, date,
commit and machine that produced them: measured numbers live there, not in docstrings.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.utils.benchmark as tbench

from kernelkit.registry import Registry

BenchFn = Callable[["BenchContext"], None]
#: Notes computed from a row's measured times: ``(kernelkit_s, baseline_s) -> {name: value}``.
Derived = Callable[[float | None, float | None], dict[str, Any]]
BENCHMARKS: Registry[BenchFn] = Registry("benchmark", discover=("kernelkit.apps.bench",))


def register_benchmark(name: str, *, title: str, devices: Sequence[str] = ("cpu",)) -> Callable[[BenchFn], BenchFn]:
    """Register a benchmark; ``devices`` are the device types it measures (``BenchContext.device``)."""
    return BENCHMARKS.register(name, title=title, devices=tuple(devices))


@dataclass
class Comparison:
    """One measured pair: medians in seconds and ``ratio = baseline / kernelkit``."""

    benchmark: str
    label: str
    kernelkit_s: float | None
    baseline_s: float | None
    baseline_name: str
    ratio: float | None
    extra: dict[str, Any] = field(default_factory=dict)


def _median_time(fn: Callable[[], Any], min_run_time: float) -> float:
    import torch

    # Timer defaults to one thread; time with the threads the user chose (--threads / torch default).
    timer = tbench.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return float(m.median)


@dataclass
class BenchContext:
    """Given to each benchmark: ``compare`` pairs, ``quick`` for a smoke-sized run."""

    name: str
    quick: bool = False
    min_run_time: float = 0.5
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # for benchmarks that support it
    rounds: int = 3
    results: list[Comparison] = field(default_factory=list)
    on_result: Callable[[Comparison], None] | None = None

    def compare(self, label: str, kernelkit: Callable[[], Any] | None, baseline: Callable[[], Any] | None,
                baseline_name: str = "baseline", *, derived: Derived | None = None, **extra: Any) -> Comparison:
        """Time both callables in alternating rounds; report medians over rounds and the ratio.

        Either side may be ``None`` (e.g. an optional reference that is not installed); the ratio is
        then ``None`` and ``extra`` can say why. ``derived(kernelkit_s, baseline_s)`` adds notes computed from
        the measured medians (see :meth:`record`).
        """
        fns = {"k": kernelkit, "b": baseline}
        for fn in fns.values():  # warm up (allocations, lazy init, autotuning)
            if fn is not None:
                fn()
        times: dict[str, list[float]] = {"k": [], "b": []}
        mrt = self.min_run_time / self.rounds
        for _ in range(self.rounds):
            for key, fn in fns.items():
                if fn is not None:
                    times[key].append(_median_time(fn, mrt))
        k = statistics.median(times["k"]) if times["k"] else None
        b = statistics.median(times["b"]) if times["b"] else None
        return self.record(label, k, b, baseline_name, derived=derived, **extra)

    def record(self, label: str, kernelkit_s: float | None, baseline_s: float | None,
               baseline_name: str, *, derived: Derived | None = None, **extra: Any) -> Comparison:
        """Record times measured elsewhere in this process (e.g. images/s loops, a reference library).

        ``derived(kernelkit_s, baseline_s)``, when given, returns notes computed from the two times (e.g. how a
        target relates to a compute floor); they join ``extra`` before the row is stored and shown.
        """
        ratio = (baseline_s / kernelkit_s) if (kernelkit_s and baseline_s) else None
        notes = {**extra, **(derived(kernelkit_s, baseline_s) if derived is not None else {})}
        res = Comparison(self.name, label, kernelkit_s, baseline_s, baseline_name, ratio, notes)
        self.results.append(res)
        if self.on_result:
            self.on_result(res)
        return res


def run_benchmarks(names: Sequence[str], quick: bool = False, min_run_time: float = 0.5,
                   json_path: str | Path | None = None, quiet: bool = False,
                   device: str | torch.device = "cpu") -> list[Comparison]:
    """Run benchmarks by name, print a table per result, optionally write JSON (atomically).

    ``device`` is handed to each benchmark as ``BenchContext.device``; benchmarks that only measure CPU
    paths ignore it and say so in their rows. Timing synchronizes CUDA (``torch.utils.benchmark.Timer``).
    """
    from rich.table import Table

    from kernelkit.console import console
    from kernelkit.utils.allocator import retain_freed_memory
    from kernelkit.utils.io import write_json

    retain_freed_memory()  # both sides of every comparison reuse freed blocks rather than page-fault new ones

    all_results: list[Comparison] = []
    table = Table(title="kernelkit benchmarks (ratio = baseline / kernelkit; > 1 is faster)")
    for col in ("benchmark", "case", "kernelkit", "baseline", "baseline time", "ratio"):
        table.add_column(col, justify="left" if col in ("benchmark", "case", "baseline") else "right", overflow="fold")

    def fmt(s: float | None) -> str:
        return "—" if s is None else (f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s")

    def show(r: Comparison) -> None:
        if not quiet:
            ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
            console.print(f"[bold]{r.benchmark}[/] {r.label}: kernelkit {fmt(r.kernelkit_s)}, "
                          f"{r.baseline_name} {fmt(r.baseline_s)}, ratio {ratio}"
                          + (f"  {r.extra}" if r.extra else ""))
        table.add_row(r.benchmark, r.label, fmt(r.kernelkit_s), r.baseline_name, fmt(r.baseline_s),
                      "—" if r.ratio is None else f"{r.ratio:.2f}×")

    dev = torch.device(device)
    for name in names:
        fn = BENCHMARKS.get(name)
        ctx = BenchContext(name, quick=quick, min_run_time=min_run_time, device=dev, on_result=show)
        measured = BENCHMARKS.entry(name).meta.get("devices", ("cpu",))
        if dev.type not in measured:
            ctx.record(f"not run on {dev}", None, None, "—", note=f"measures {', '.join(measured)} only")
        else:
            fn(ctx)
        all_results.extend(ctx.results)
    if not quiet:
        console.print(table)
    if json_path is not None:
        from kernelkit.runs import environment_info
        from kernelkit.utils.io import write_text

        env = environment_info()
        write_json(json_path, {"environment": env, "results": all_results})
        write_text(Path(json_path).with_suffix(".md"), results_markdown(all_results, env))
    return all_results


def results_markdown(results: Sequence[Comparison], env: dict[str, Any]) -> str:
    """A markdown page of benchmark results headed by the command, date, commit and machine that produced them."""

    def fmt(s: float | None) -> str:
        return "—" if s is None else (f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s")

    machine = f"{env.get('processor')}, {env.get('cpu_count')} CPUs, {env.get('torch_threads')} torch threads"
    if env.get("cuda_device"):
        machine += f", {env['cuda_device']}"
    lines = [
        "# kernelkit benchmark results",
        "",
        f"- command: `{' '.join(str(a) for a in env.get('argv') or [])}`",
        f"- date: {env.get('time')}",
        f"- commit: {env.get('git_commit') or 'unknown'}",
        f"- machine: {machine}; {env.get('platform')}",
        f"- versions: kernelkit {env.get('kernelkit')}, torch {env.get('torch')}, python {env.get('python')}",
        "",
        "ratio = baseline median / kernelkit median (> 1: kernelkit is faster); both sides timed in this process,",
        "alternating rounds, same warm-up and statistic.",
        "",
        "| benchmark | case | kernelkit | baseline | baseline time | ratio | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        notes = "; ".join(f"{k}: {v}" for k, v in r.extra.items()).replace("|", "/")
        lines.append(f"| {r.benchmark} | {r.label} | {fmt(r.kernelkit_s)} | {r.baseline_name} | {fmt(r.baseline_s)} "
                     f"| {ratio} | {notes} |")
    return "\n".join(lines) + "\n"
