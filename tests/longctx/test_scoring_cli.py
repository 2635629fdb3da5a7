"""Scoring, normalisation and slopes; the ``kernelkit m4le`` commands end to end without a model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kernelkit.longctx import scoring
from tests.conftest import needs_data

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


def test_cli_score_and_report(tmp_path):
    from kernelkit.apps.cli.m4le import app

    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(results), "--out", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)["sections"]["score"]["scores"]
    assert len(scores) == 4
    res = runner.invoke(app, ["report", str(results), "--reference-model", "ref", "--out",
                              str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "report.html").exists()
    assert len(list((tmp_path / "r" / "plots").glob("*.png"))) == 3
    bad = runner.invoke(app, ["report", str(results), "--reference-model", "nobody", "--out",
                              str(tmp_path / "b")])
    assert bad.exit_code == 2 and "no scores" in bad.output
    bad = runner.invoke(app, ["run", "--records", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "missing.jsonl" in bad.output


@needs_data("nq_open_lost_in_the_middle/nq-open-oracle.jsonl.gz")
def test_cli_build_writes_records(tmp_path, shared_data):
    from kernelkit.apps.cli.m4le import app
    from kernelkit.longctx.records import read_records

    res = CliRunner().invoke(app, ["build", "nq-open", "--buckets", "1000,2000", "--n", "3", "--data-dir",
                                   str(shared_data), "--out", str(tmp_path / "b"), "--quiet"])
    assert res.exit_code == 0, res.output
    recs = read_records(tmp_path / "b" / "records.jsonl")
    assert sorted(r.length_bucket for r in recs) == [1000] * 3 + [2000] * 3
    bad = CliRunner().invoke(app, ["build", "nq_open", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "nq-open" in bad.output
