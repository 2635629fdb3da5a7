"""``m4le run --shard i/n`` with ``--tasks/--buckets/--abilities``, merging shards in ``m4le score``/``report``,
and the HF backend's ``--device``/``--device-map`` on ``run`` and ``serve``."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from kernelkit.apps.cli.m4le import app
from kernelkit.apps.configs.m4le import M4leRunConfig, M4leServeConfig
from kernelkit.longctx.records import Record, write_records
from kernelkit.longctx.runner import load_results
from kernelkit.longctx.serve import OpenAICompatServer
from tests.apps.cli.test_m4le import _Echo
from tests.longctx.test_context_limit import short_lm  # noqa: F401  (fixture)

TASKS = [("nq-open", 1000), ("nq-open", 2000), ("hotpotqa", 1000), ("c3", 2000)]


def _records(path, n=12):
    """``n`` records over three tasks and two buckets; every fifth answer is wrong, so scores are not all 1."""
    recs = []
    for i in range(n):
        task, bucket = TASKS[i % len(TASKS)]
        answer = f"item{i}" if i % 5 else "other"
        recs.append(Record("Answer.", f"Question {i}: x\nAnswer: item{i}", [answer], 8, 10, bucket,
                           {"task": task, "id": f"s{i}"}))
    write_records(path, recs)
    return path


def _run(url, records, out, *args):
    return CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "openai", "--base-url", url,
                                    "--model", "echo", "--out", str(out), "--quiet", *args])


def _scores(*files, out):
    res = CliRunner().invoke(app, ["score", *map(str, files), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["sections"]["score"]


def test_shards_merged_score_as_the_unsharded_run(tmp_path):
    records = _records(tmp_path / "r.jsonl")
    with OpenAICompatServer(_Echo()) as server:
        assert _run(server.url, records, tmp_path / "whole").exit_code == 0
        for i in range(2):
            res = _run(server.url, records, tmp_path / f"part{i}", "--shard", f"{i}/2")
            assert res.exit_code == 0, res.output
    shards = [tmp_path / f"part{i}" / f"results.shard-{i}-of-2.jsonl" for i in range(2)]  # default shard paths
    keys = [{r["key"] for r in load_results(p)} for p in shards]
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    whole = tmp_path / "whole" / "results.jsonl"
    assert keys[0] | keys[1] == {r["key"] for r in load_results(whole)}
    merged = _scores(*shards, out=tmp_path / "s")
    assert merged["missing"] == [] and merged["status"] == "ok"
    assert merged["scores"] == _scores(whole, out=tmp_path / "w")["scores"]
    assert any(0 < s["score"] < 1 for s in merged["scores"])
    assert json.loads((tmp_path / "part1" / "config.json").read_text())["shard"] == "1/2"


def test_an_absent_shard_and_duplicate_keys_are_named(tmp_path):
    records = _records(tmp_path / "r.jsonl")
    with OpenAICompatServer(_Echo()) as server:
        for i in (0, 2):
            assert _run(server.url, records, tmp_path / f"p{i}", "--shard", f"{i}/3").exit_code == 0
        assert _run(server.url, records, tmp_path / "whole").exit_code == 0
    shard0, shard2 = (tmp_path / f"p{i}" / f"results.shard-{i}-of-3.jsonl" for i in (0, 2))
    runner = CliRunner()
    res = runner.invoke(app, ["score", str(shard0), str(shard2), "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "shards 1 of 3 missing" in res.output and "results.shard-1-of-3.jsonl" in res.output
    results = json.loads((tmp_path / "s" / "results.json").read_text())
    assert results["status"] == "partial" and "shards 1 of 3 missing" in results["sections"]["score"]["missing"][0]
    res = runner.invoke(app, ["report", str(shard0), str(shard2), "--out", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "shards 1 of 3 missing" in (tmp_path / "r" / "report.html").read_text()
    whole = tmp_path / "whole" / "results.jsonl"
    for command in ("score", "report"):
        res = runner.invoke(app, [command, str(whole), str(shard2), "--out", str(tmp_path / f"d{command}")])
        assert res.exit_code == 2, res.output
        n = len(load_results(shard2))
        assert f"{n} result key(s) in more than one file" in res.output and str(shard2) in res.output
        assert "Traceback" not in res.output and not (tmp_path / f"d{command}").exists()


def test_filters_choose_the_records(tmp_path):
    records = _records(tmp_path / "r.jsonl")
    with OpenAICompatServer(_Echo()) as server:
        res = _run(server.url, records, tmp_path / "a", "--tasks", "nq-open,c3", "--buckets", "2000")
        assert res.exit_code == 0, res.output
        res = _run(server.url, records, tmp_path / "b", "--abilities", "semantic_multiple", "--abilities",
                   "explicit_single")
        assert res.exit_code == 0, res.output
        res = _run(server.url, records, tmp_path / "c", "--tasks", "nq-open", "--tasks", "hotpotqa", "--shard", "0/1")
        assert res.exit_code == 0, res.output
    got = lambda d, name="results.jsonl": {(r["task"], r["bucket"]) for r in load_results(tmp_path / d / name)}  # noqa: E731
    assert got("a") == {("nq-open", 2000), ("c3", 2000)}
    assert got("b") == {("hotpotqa", 1000), ("c3", 2000)}  # hotpotqa: semantic_multiple, c3: explicit_single
    assert got("c", "results.shard-0-of-1.jsonl") == {("nq-open", 1000), ("nq-open", 2000), ("hotpotqa", 1000)}
    cfg = json.loads((tmp_path / "a" / "config.json").read_text())
    assert cfg["tasks"] == ["nq-open", "c3"] and cfg["buckets"] == [2000] and cfg["abilities"] == []


@pytest.mark.parametrize(("args", "needle"), [
    (["--shard", "2/2"], "--shard"), (["--shard", "-1/2"], "--shard"), (["--shard", "1"], "--shard"),
    (["--shard", "0/0"], "--shard"), (["--tasks", "nq-open,nq-opne"], "--tasks"),
    (["--abilities", "global,local"], "--abilities"), (["--buckets", "1k"], "--buckets"),
    (["--buckets", "0"], "--buckets"), (["--tasks", "qmsum"], "--tasks/--buckets/--abilities"),
    (["--device-map", "auto"], "--device-map"), (["--device-map", "everywhere", "--backend", "hf"], "--device-map"),
])
def test_bad_scale_out_options_are_refused(tmp_path, args, needle):
    records = _records(tmp_path / "r.jsonl", n=4)
    res = CliRunner().invoke(app, ["run", "--records", str(records), "--out", str(tmp_path / "x"), *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_device_defaults_to_auto():
    assert M4leRunConfig.device == "auto" and M4leServeConfig.device == "auto"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("command", ["run", "serve"])
def test_cuda_without_cuda_is_refused_naming_device(tmp_path, short_lm, command):  # noqa: F811
    _, folder = short_lm
    records = _records(tmp_path / "r.jsonl", n=1)
    args = ["--records", str(records), "--out", str(tmp_path / "x")] if command == "run" else []
    res = CliRunner().invoke(app, [command, "--backend", "hf", "--model", str(folder), "--device", "cuda", *args])
    assert res.exit_code == 2, res.output
    assert "--device" in res.output and "CUDA" in res.output and "Traceback" not in res.output


def _spy_from_pretrained(monkeypatch, stop: bool = False):
    """Record the keyword arguments of ``AutoModelForCausalLM.from_pretrained`` (``stop``: then refuse to load)."""
    from transformers import AutoModelForCausalLM

    calls: list[dict] = []
    original = AutoModelForCausalLM.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        calls.append(kwargs)
        if stop:
            raise OSError("loading stopped by the test")
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    return calls


def test_device_map_auto_reaches_from_pretrained_and_answers_as_one_device(tmp_path, short_lm, monkeypatch):  # noqa: F811
    """accelerate places the tiny model (on CPU here; over the GPUs where there are several) and the greedy
    answers equal those of the model loaded on one device."""
    _, folder = short_lm
    records = _records(tmp_path / "r.jsonl", n=3)
    calls = _spy_from_pretrained(monkeypatch)
    outs = {}
    for name, extra in (("plain", ["--device", "cpu"]), ("mapped", ["--device-map", "auto"])):
        res = CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "hf", "--model", str(folder),
                                       "--max-new-tokens", "3", "--out", str(tmp_path / name), "--quiet", *extra])
        assert res.exit_code == 0, res.output
        outs[name] = sorted((r["key"], r["prediction"]) for r in load_results(tmp_path / name / "results.jsonl"))
    assert "device_map" not in calls[0] and calls[1]["device_map"] == "auto"
    assert outs["plain"] == outs["mapped"]
    assert json.loads((tmp_path / "mapped" / "config.json").read_text())["device_map"] == "auto"


def test_serve_takes_device_and_device_map(tmp_path, short_lm, monkeypatch):  # noqa: F811
    _, folder = short_lm
    calls = _spy_from_pretrained(monkeypatch, stop=True)
    runner = CliRunner()
    res = runner.invoke(app, ["serve", "--backend", "hf", "--model", str(folder), "--device-map", "auto"])
    assert res.exit_code == 2 and "loading stopped by the test" in res.output, res.output
    assert calls[-1]["device_map"] == "auto"
    res = runner.invoke(app, ["serve", "--backend", "hf", "--model", str(folder), "--device", "cpu"])
    assert res.exit_code == 2 and "device_map" not in calls[-1]
    res = runner.invoke(app, ["serve", "--device-map", "auto"])
    assert res.exit_code == 2 and "--device-map" in res.output and "--backend hf" in res.output
    res = runner.invoke(app, ["serve", "--backend", "hf", "--model", str(folder), "--device", "tpu"])
    assert res.exit_code == 2 and "--device" in res.output and "Traceback" not in res.output


def test_shards_into_one_shared_results_file_are_refused_naming_results(tmp_path):
    records = _records(tmp_path / "r.jsonl")
    shared = tmp_path / "shared.jsonl"
    with OpenAICompatServer(_Echo()) as server:
        res = _run(server.url, records, tmp_path / "p0", "--shard", "0/2", "--results", str(shared))
        assert res.exit_code == 0, res.output
        before = shared.read_bytes()
        res = _run(server.url, records, tmp_path / "p1", "--shard", "1/2", "--results", str(shared))
        assert res.exit_code == 2, res.output
        assert res.output.startswith(f"Error: --results {shared}: holds the answers of shard 0/2")
        assert "Traceback" not in res.output and not (tmp_path / "p1").exists()  # refused before the run began
        assert shared.read_bytes() == before
        from kernelkit.longctx.results_lock import sole_writer

        with sole_writer(shared):  # as another `m4le run` holds it while it writes
            res = _run(server.url, records, tmp_path / "p0b", "--shard", "0/2", "--results", str(shared))
        assert res.exit_code == 2, res.output
        assert f"--results {shared}: another process is writing this results file" in res.output
        assert shared.read_bytes() == before
