"""Scores from result rows: task x bucket tables, ability aggregates, normalisation, slopes, plots.

The reference ships no aggregation code; its README normalises each task by a reference model's 1k
score. The exact formula is not in the code, so the normaliser is pluggable (:data:`NORMALISERS`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kernelkit.longctx.shards import ShardPlan, missing_parts, read_plan
from kernelkit.longctx.tasks import bucket_scores

#: s / (2 * s_ref_1k) and s / (s + s_ref_1k): both give the reference model 0.5 at 1k, as published.
NORMALISERS: dict[str, Callable[[float, float], float]] = {
    "half": lambda s, ref: s / (2 * ref) if ref else float("nan"),
    "share": lambda s, ref: s / (s + ref) if (s + ref) else float("nan"),
}


class DuplicateResultsError(ValueError):
    """The same result key in more than one of the results files merged (one line naming files, count, a key)."""


@dataclass
class MergedResults:
    """Rows of several results files and what a merge of shards lacks (sentences; empty when complete)."""

    rows: list[dict[str, Any]]
    missing: list[str] = field(default_factory=list)
    shards: dict[str, ShardPlan] = field(default_factory=dict)  # results file -> its shard plan


def merge_results(paths: Sequence[str | os.PathLike[str]]) -> MergedResults:
    """The rows of ``paths`` together (each file read by :func:`kernelkit.longctx.runner.load_results`).

    A key found in two files (the same file given twice, or overlapping runs) raises
    :class:`DuplicateResultsError`; files that are shards of a run (a plan written by ``m4le run --shard``)
    are checked for absent shards and unanswered keys (:func:`kernelkit.longctx.shards.missing_parts`).
    A missing, unreadable or non-results file raises :class:`ValueError` naming it.
    """
    from kernelkit.longctx.runner import load_results

    owner: dict[str, int] = {}  # key -> position of the first file holding it
    dupes: dict[tuple[int, int], list[str]] = defaultdict(list)
    rows: list[dict[str, Any]] = []
    keys: dict[str, set[str]] = {}
    plans: dict[str, ShardPlan] = {}
    names = [str(p) for p in paths]
    for pos, name in enumerate(names):
        if not os.path.exists(name):
            raise ValueError(f"{name}: no such results file")
        got = load_results(name)
        keys[name] = {row["key"] for row in got}
        for row in got:
            first = owner.setdefault(row["key"], pos)
            if first != pos:
                dupes[(first, pos)].append(row["key"])
                continue
            rows.append(row)
        plan = read_plan(name)
        if plan is not None:
            plans[name] = plan
    if dupes:
        (i, j), shown = next(iter(dupes.items()))
        a, b = names[i], names[j]
        total = sum(len(v) for v in dupes.values())
        files = list(dict.fromkeys(names[f] for pair in sorted(dupes) for f in pair))
        same = "; the same file is given twice" if os.path.realpath(a) == os.path.realpath(b) else ""
        raise DuplicateResultsError(f"{', '.join(files)}: {total} result key(s) in more than one file, e.g. {shown[0]} "
                                    f"(in {a} and {b}{same}); give each answer once (shards of one run never overlap)")
    return MergedResults(rows, missing_parts(plans, keys), plans)


def task_bucket_scores(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, task, bucket): ``score`` with the task's metric and ``n`` answers."""
    grouped: dict[tuple[str, str], list[tuple[int, str, list[str]]]] = defaultdict(list)
    ability: dict[str, str | None] = {}
    for row in rows:
        grouped[(row["model"], row["task"])].append((int(row["bucket"]), row["prediction"], row["answers"]))
        ability.setdefault(row["task"], row.get("ability"))
    out = []
    for (model, task), items in sorted(grouped.items()):
        counts: dict[int, int] = defaultdict(int)
        for bucket, _p, _a in items:
            counts[bucket] += 1
        for bucket, value in bucket_scores(task, items).items():
            out.append({"model": model, "task": task, "ability": ability.get(task) or _ability_of(task),
                        "bucket": bucket, "n": counts[bucket], "score": value})
    return out


def _ability_of(task: str) -> str:
    from kernelkit.longctx.tasks import TASKS

    return TASKS.get(task).ability if task in TASKS else "unknown"


def normalise(table: Sequence[dict[str, Any]], reference_model: str, method: str = "half",
              reference_bucket: int | None = None) -> list[dict[str, Any]]:
    """Add ``normalised``: each task's score relative to ``reference_model``'s score at its first bucket."""
    if method not in NORMALISERS:
        raise ValueError(f"unknown normaliser {method!r}; expected one of {sorted(NORMALISERS)}")
    fn = NORMALISERS[method]
    refs: dict[str, float] = {}
    for row in table:
        if row["model"] != reference_model:
            continue
        first = reference_bucket or min(r["bucket"] for r in table if r["task"] == row["task"])
        if row["bucket"] == first:
            refs[row["task"]] = row["score"]
    if not refs:
        raise ValueError(f"reference model {reference_model!r} has no scores")
    return [{**row, "normalised": fn(row["score"], refs[row["task"]]) if row["task"] in refs else float("nan")}
            for row in table]


def aggregate(table: Sequence[dict[str, Any]], by: Sequence[str] = ("model", "ability", "bucket"),
              value: str = "score") -> list[dict[str, Any]]:
    """Mean of ``value`` over tasks (equal weight per task) for each group of ``by``."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in table:
        v = row.get(value)
        if v is not None and v == v:
            groups[tuple(row[k] for k in by)].append(float(v))
    return [{**dict(zip(by, key, strict=True)), value: sum(vs) / len(vs), "tasks": len(vs)}
            for key, vs in sorted(groups.items())]


def slope(values: Sequence[float]) -> float:
    """OLS slope of ``values`` against their index 0, 1, ... (the leaderboard's slope over buckets)."""
    n = len(values)
    if n < 2:
        return float("nan")
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den


def plot_by_ability(table: Sequence[dict[str, Any]], value: str = "score"):
    """Score vs length bucket, one panel per ability, one line per model (a ``matplotlib.figure.Figure``)."""
    from matplotlib.figure import Figure

    agg = aggregate(table, value=value)
    abilities = sorted({r["ability"] for r in agg})
    fig = Figure(figsize=(3.2 * max(1, len(abilities)), 3))
    axes = fig.subplots(1, max(1, len(abilities)), squeeze=False)
    for ax, ability in zip(axes[0], abilities, strict=False):
        for model in sorted({r["model"] for r in agg}):
            pts = sorted((r["bucket"], r[value]) for r in agg if r["ability"] == ability and r["model"] == model)
            ax.plot([p[0] / 1000 for p in pts], [p[1] for p in pts], marker="o", label=model)
        ax.set_title(ability.replace("_", " "))
        ax.set_xlabel("bucket (k words/chars)")
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel(value)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_heatmap(table: Sequence[dict[str, Any]], model: str, value: str = "score"):
    """Task x bucket heatmap of one model (a ``matplotlib.figure.Figure``)."""
    import numpy as np
    from matplotlib.figure import Figure

    rows = [r for r in table if r["model"] == model]
    tasks = sorted({r["task"] for r in rows})
    buckets = sorted({r["bucket"] for r in rows})
    grid = np.full((len(tasks), len(buckets)), np.nan)
    for r in rows:
        grid[tasks.index(r["task"]), buckets.index(r["bucket"])] = r[value]
    fig = Figure(figsize=(1.2 + 0.9 * len(buckets), 0.8 + 0.35 * len(tasks)))
    ax = fig.subplots()
    im = ax.imshow(grid, vmin=0, vmax=max(1.0, float(np.nanmax(grid)) if np.isfinite(grid).any() else 1.0),
                   cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(buckets)), [f"{b // 1000}k" for b in buckets])
    ax.set_yticks(range(len(tasks)), tasks)
    for i in range(len(tasks)):
        for j in range(len(buckets)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set_title(model, fontsize=8)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    return fig
