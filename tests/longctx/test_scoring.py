"""Scoring, normalisation, slopes and plots (the ``kernelkit m4le`` commands are tested in tests/apps/cli)."""

from __future__ import annotations

import pytest

from kernelkit.longctx import scoring

LEADERBOARD = {  # published normalised scores 1k..8k and slopes (README figure)
    "GPT-3.5-Turbo-16K": ([0.50, 0.47, 0.42, 0.39, 0.36], -0.036),
    "Vicuna-13B-v1.5-16K": ([0.48, 0.45, 0.40, 0.33, 0.23], -0.062),
    "LLaMA2-7B": ([0.39, 0.33, 0.25, 0.13, 0.07], -0.084),
}


@pytest.mark.parametrize("model", sorted(LEADERBOARD))
def test_slope_reproduces_published_slopes(model):
    values, published = LEADERBOARD[model]
    assert round(scoring.slope(values), 3) == published


def _rows():
    rows = []
    for model, preds in (("ref", ["paris", "x", "rome", "rome"]), ("m", ["paris", "paris", "x", "x"])):
        for i, (bucket, pred) in enumerate(zip([1000, 1000, 2000, 2000], preds, strict=True)):
            answers = ["paris"] if i < 2 else ["rome"]
            rows.append({"key": f"{model}{i}", "model": model, "task": "nq-open", "bucket": bucket,
                         "prediction": pred, "answers": answers, "ability": "semantic_single"})
    return rows


def test_task_bucket_scores_and_normalisers():
    table = scoring.task_bucket_scores(_rows())
    got = {(r["model"], r["bucket"]): r["score"] for r in table}
    assert got == {("ref", 1000): 0.5, ("ref", 2000): 1.0, ("m", 1000): 1.0, ("m", 2000): 0.0}
    half = {(r["model"], r["bucket"]): r["normalised"] for r in scoring.normalise(table, "ref", "half")}
    assert half[("ref", 1000)] == 0.5 and half[("m", 1000)] == 1.0 and half[("ref", 2000)] == 1.0
    share = {(r["model"], r["bucket"]): r["normalised"] for r in scoring.normalise(table, "ref", "share")}
    assert share[("ref", 1000)] == 0.5 and share[("m", 1000)] == pytest.approx(2 / 3)
    agg = scoring.aggregate(table)
    assert {(a["model"], a["bucket"]): a["score"] for a in agg}[("m", 1000)] == 1.0
    with pytest.raises(ValueError, match="no scores"):
        scoring.normalise(table, "nobody")


def test_plots_are_plain_figures_and_leave_the_backend_alone():
    import sys

    import matplotlib
    from matplotlib.figure import Figure

    from kernelkit.longctx.perplexity import plot_position_losses

    backend = matplotlib.get_backend()
    table = scoring.task_bucket_scores(_rows())
    figs = [scoring.plot_by_ability(table), scoring.plot_heatmap(table, "m"),
            plot_position_losses({"plain": [{"start": 0, "end": 10, "loss": 1.0}]}, trained=5)]
    assert all(type(f) is Figure for f in figs)
    assert matplotlib.get_backend() == backend
    plt = sys.modules.get("matplotlib.pyplot")
    assert plt is None or plt.get_fignums() == []  # nothing registered with pyplot
