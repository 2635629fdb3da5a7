"""``kernelkit m4le`` commands end to end without a model: config.json is the command's config, usage errors
exit 2 naming the option or file."""

from __future__ import annotations

import json
from dataclasses import asdict

from typer.testing import CliRunner

from kernelkit.apps.cli.m4le import app
from kernelkit.apps.configs.m4le import M4leReportConfig, M4leRunConfig, M4leScoreConfig
from kernelkit.longctx.backends.base import Result
from kernelkit.longctx.records import Record, read_records, write_records
from kernelkit.longctx.runner import GenParams, load_results
from kernelkit.utils.device import resolve_device
from tests.conftest import needs_data
from tests.longctx.test_scoring import _rows


def _config(run_dir):
    return json.loads((run_dir / "config.json").read_text())


def test_cli_score_and_report(tmp_path):
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(results), "--out", str(tmp_path / "s"), "--json"])
    assert res.exit_code == 0, res.output
    scores = json.loads(res.stdout)["sections"]["score"]["scores"]
    assert len(scores) == 4
    assert _config(tmp_path / "s") == json.loads(json.dumps(asdict(M4leScoreConfig(results=(str(results),)))))
    res = runner.invoke(app, ["report", str(results), "--reference-model", "ref", "--out",
                              str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "report.html").exists()
    assert len(list((tmp_path / "r" / "plots").glob("*.png"))) == 3
    assert _config(tmp_path / "r") == {"results": [str(results)], "reference_model": "ref",
                                       "normaliser": M4leReportConfig.normaliser}
    bad = runner.invoke(app, ["report", str(results), "--reference-model", "nobody", "--out",
                              str(tmp_path / "b")])
    assert bad.exit_code == 2 and "no scores" in bad.output
    bad = runner.invoke(app, ["report", str(results), "--normaliser", "median", "--out", str(tmp_path / "b2")])
    assert bad.exit_code == 2 and "--normaliser" in bad.output
    bad = runner.invoke(app, ["run", "--records", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "missing.jsonl" in bad.output


def test_cli_run_usage_errors_name_the_option(tmp_path):
    runner = CliRunner()
    records = tmp_path / "records.jsonl"
    write_records(records, [Record("I.", "Q?\nAnswer:", ["a"], 3, 4, 1000, {"task": "nq-open", "id": "s0"})])
    for args, needle in ((["--rope", "magic"], "--rope"), (["--dtype", "int8"], "--dtype"),
                         (["--truncation", "sideways"], "--truncation"), (["--backend", "hf"], "--model"),
                         (["--backend", "openai"], "--base-url"), (["--backend", "nope"], "nope")):
        res = runner.invoke(app, ["run", "--records", str(records), "--out", str(tmp_path / "x"), *args])
        assert res.exit_code == 2 and needle in res.output, (args, res.output)
    for buckets in ("0,1000", "1k"):
        res = runner.invoke(app, ["build", "nq-open", "--buckets", buckets, "--out", str(tmp_path / "b")])
        assert res.exit_code == 2 and "--buckets" in res.output, res.output


class _Echo:
    """A model-free backend answering each prompt's last word."""

    name = "echo"

    def generate(self, requests):
        return [Result(r.key, text=r.prompt.split()[-1], info={"stop": "eos"}) for r in requests]

    def describe(self):
        return {"backend": "echo"}


def test_cli_run_records_every_input_in_config_json(tmp_path):
    from kernelkit.longctx.serve import OpenAICompatServer

    records = tmp_path / "records.jsonl"
    write_records(records, [Record("Answer.", f"Question {i}: x\nAnswer: item{i}", [f"item{i}"], 8, 10, 1000,
                                   {"task": "nq-open", "id": f"s{i}"}) for i in range(3)])
    with OpenAICompatServer(_Echo()) as server:
        res = CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "openai", "--base-url",
                                       server.url, "--model", "echo", "--limit", "2", "--max-new-tokens", "5",
                                       "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    cfg = _config(tmp_path / "run")
    expected = asdict(M4leRunConfig(records=str(records), backend="openai", model="echo", base_url=[server.url],
                                    limit=2, gen=GenParams(max_new_tokens=5)))
    resolved = {"device", "threads", "data_root"}  # filled in by apps.cli.common.prepare
    assert set(cfg) == set(expected)
    assert {k: v for k, v in cfg.items() if k not in resolved} == json.loads(json.dumps(
        {k: v for k, v in expected.items() if k not in resolved}))
    assert cfg["gen"]["max_new_tokens"] == 5 and cfg["device"] == str(resolve_device("auto"))  # default auto
    rows = load_results(tmp_path / "run" / "results.jsonl")
    assert sorted(r["prediction"] for r in rows) == ["item0", "item1"]


def test_cli_runs_the_official_records_of_a_config(tmp_path):
    """``--official CONFIG`` reads the official records (here a local folder in the hub layout, whose rows have
    no task field) and records them under that config."""
    from kernelkit.longctx.serve import OpenAICompatServer

    folder = tmp_path / "m4le" / "qa"
    folder.mkdir(parents=True)
    rows = [Record("Answer.", f"Question {i}\nAnswer: city{i}", [f"city{i}"], 4, 5, 1000).to_dict() for i in range(2)]
    (folder / "nq-open.jsonl").write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    runner = CliRunner()
    with OpenAICompatServer(_Echo()) as server:
        res = runner.invoke(app, ["run", "--official", "nq-open", "--records", str(tmp_path / "m4le"), "--backend",
                                  "openai", "--base-url", server.url, "--model", "echo", "--out", str(tmp_path / "o"),
                                  "--quiet"])
    assert res.exit_code == 0, res.output
    assert _config(tmp_path / "o")["official"] == "nq-open"
    got = load_results(tmp_path / "o" / "results.jsonl")
    assert {r["task"] for r in got} == {"nq-open"} and sorted(r["prediction"] for r in got) == ["city0", "city1"]
    bad = runner.invoke(app, ["run", "--official", "hotpotqa", "--records", str(tmp_path / "m4le"),
                              "--out", str(tmp_path / "h")])
    assert bad.exit_code == 2 and "hotpotqa.jsonl" in bad.output
    bad = runner.invoke(app, ["run", "--out", str(tmp_path / "n")])
    assert bad.exit_code == 2 and "--records" in bad.output


@needs_data("nq_open_lost_in_the_middle/nq-open-oracle.jsonl.gz")
def test_cli_build_writes_records(tmp_path, shared_data):
    res = CliRunner().invoke(app, ["build", "nq-open", "--buckets", "1000,2000", "--n", "3", "--data-dir",
                                   str(shared_data), "--out", str(tmp_path / "b"), "--quiet"])
    assert res.exit_code == 0, res.output
    recs = read_records(tmp_path / "b" / "records.jsonl")
    assert sorted(r.length_bucket for r in recs) == [1000] * 3 + [2000] * 3
    cfg = _config(tmp_path / "b")
    assert cfg["tasks"] == ["nq-open"] and cfg["buckets"] == [1000, 2000] and cfg["n"] == 3
    assert cfg["seed"] == 111 and cfg["one_shot"] is True and cfg["device"] == "cpu"
    bad = CliRunner().invoke(app, ["build", "nq_open", "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "nq-open" in bad.output


def test_cli_lists_the_tasks_with_their_metric(tmp_path):
    result = CliRunner().invoke(app, ["tasks", "--json", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {r["task"]: r for r in json.loads(result.output)}
    assert {"tedtalks-zh2en", "thucnews_semantic-multiple", "booksum", "clts+", "wow"} <= set(rows)
    assert rows["booksum"]["ability"] == "global" and rows["booksum"]["data"] == "missing"
    assert rows["tedtalks-zh2en"]["metric"] == "bleu" and rows["nq-open"]["metric"] == "acc"
