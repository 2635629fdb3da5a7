"""Tables and plots of FSCIL results (shared by the CLI and the recipes).

Plots are bare :class:`matplotlib.figure.Figure` objects: no pyplot state and no backend switch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from kernelkit.fscil.core import HM_VARIANT
from kernelkit.fscil.sessions import FSCILResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRIC_NOTE = (f"acc: top-1 on the joint test set of all seen classes; base/new: mean per-class accuracy of base "
               f"classes / of all new classes seen so far; hm: {HM_VARIANT}; new->base: fraction of new-class "
               f"test samples predicted as a base class. Accuracies are per sample (TEEN's code averages per-batch "
               f"accuracies with batch 100, which differs only when a test set is not a multiple of 100).")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value), ignoring NaN."""
    v = np.asarray([x for x in values if not (isinstance(x, float) and math.isnan(x))], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def fmt(mean: float, std: float | None = None, scale: float = 100.0) -> str:
    if math.isnan(mean):
        return "-"
    return f"{scale * mean:.2f}" if not std else f"{scale * mean:.2f} ± {scale * std:.2f}"


def session_table(results: dict[str, list[FSCILResult]]) -> list[dict[str, Any]]:
    """One row per (session, method): metrics as mean ± std over the runs (seeds) given."""
    rows = []
    n_sessions = len(next(iter(results.values()))[0].sessions)
    for t in range(n_sessions):
        for label, runs in results.items():
            row: dict[str, Any] = {"session": t, "method": label}
            for key in ("acc", "base_acc", "new_acc", "hm", "new_to_base"):
                row[key] = fmt(*mean_std([r.sessions[t][key] for r in runs]))
            rows.append(row)
    return rows


def summary_table(results: dict[str, list[FSCILResult]]) -> list[dict[str, Any]]:
    """Average accuracy, performance drop and last-session metrics per method (mean ± std over runs)."""
    rows = []
    for label, runs in results.items():
        s = [r.summary() for r in runs]
        rows.append({"method": label, "runs": len(runs),
                     "avg": fmt(*mean_std([x["avg"] for x in s])), "pd": fmt(*mean_std([x["pd"] for x in s])),
                     "last": fmt(*mean_std([x["last"] for x in s])),
                     "last new": fmt(*mean_std([x["last_new_acc"] for x in s])),
                     "last hm": fmt(*mean_std([x["last_hm"] for x in s])),
                     "last new->base": fmt(*mean_std([x["last_new_to_base"] for x in s]))})
    return rows


def confusion_rows(result: FSCILResult, label: str) -> list[dict[str, Any]]:
    """Block confusion counts per session: base/new true class x base/new predicted class."""
    return [{"method": label, "session": s["session"], "base->base": s["bb"], "base->new": s["bn"],
             "new->base": s["nb"], "new->new": s["nn"], "new->base rate": fmt(s["new_to_base"])}
            for s in result.sessions]


def plot_sessions(results: dict[str, list[FSCILResult]], key: str, ylabel: str, title: str) -> Figure:
    """Metric per session per method (mean over runs, error bars = std)."""
    from matplotlib import figure

    fig = figure.Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    for label, runs in results.items():
        n = len(runs[0].sessions)
        stats = [mean_std([r.sessions[t][key] for r in runs]) for t in range(n)]
        xs = [t for t in range(n) if not math.isnan(stats[t][0])]
        ax.errorbar(xs, [100 * stats[t][0] for t in xs], yerr=[100 * stats[t][1] for t in xs], marker="o",
                    capsize=3, label=label)
    ax.set_xlabel("session")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig
