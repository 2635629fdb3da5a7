"""``m4le run --rope ... --max-context``: evaluating past the trained context from the command line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from kernelkit.apps.cli.m4le import app
from kernelkit.longctx.records import Record, write_records
from kernelkit.longctx.runner import load_results
from tests.longctx.test_context_limit import short_lm  # noqa: F401  (fixture)


def _long_record(tok, path):
    words = " ".join(f"w{i}" for i in range(400))
    text = tok.decode(tok(words)["input_ids"][:300])
    write_records(path, [Record("Answer.", text + "\nAnswer:", ["w1"], 300, 310, 1000,
                                {"task": "nq-open", "id": "s0"})])


@pytest.mark.parametrize(("args", "whole"), [
    ([], False), (["--rope", "linear", "--rope-factor", "4"], True), (["--rope", "yarn", "--rope-factor", "4"], True),
    (["--rope", "linear", "--rope-factor", "4", "--max-context", "150"], False)])
def test_a_scaled_rope_keeps_a_prompt_past_the_trained_context_whole(short_lm, tmp_path, args, whole):  # noqa: F811
    tok, folder = short_lm
    records = tmp_path / "r.jsonl"
    _long_record(tok, records)
    res = CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "hf", "--model", str(folder),
                                   "--max-new-tokens", "4", "--out", str(tmp_path / "run"), "--quiet", *args])
    assert res.exit_code == 0, res.output
    (row,) = load_results(tmp_path / "run" / "results.jsonl")
    assert row["truncated"] is (not whole)
    if whole:
        assert row["prompt_tokens"] > 300  # instruction + 300 tokens, past the 128 trained positions
    else:
        limit = 150 if "--max-context" in args else 128
        assert row["prompt_tokens"] == limit - 4 and row["prompt_tokens_before_cut"] > 300


@pytest.mark.parametrize(("args", "needle"), [(["--max-context", "0"], "--max-context"),
                                              (["--max-context", "abc"], "--max-context"),
                                              (["--backend", "openai", "--base-url", "http://127.0.0.1:9",
                                                "--model", "m", "--max-context", "100"], "--max-context")])
def test_bad_max_context_is_refused(tmp_path, args, needle):
    records = tmp_path / "r.jsonl"
    write_records(records, [Record("I.", "Q?\nAnswer:", ["a"], 3, 4, 1000, {"task": "nq-open", "id": "s0"})])
    res = CliRunner().invoke(app, ["run", "--records", str(records), "--out", str(tmp_path / "x"), *args])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert not (tmp_path / "x").exists()


def test_run_spreads_requests_over_several_base_urls(tmp_path):
    from kernelkit.longctx.serve import OpenAICompatServer
    from tests.longctx.test_openai_client_server import _Recorder

    records = tmp_path / "r.jsonl"
    write_records(records, [Record("I.", f"Q{i}?\nAnswer:", ["a"], 3, 4, 1000, {"task": "nq-open", "id": f"s{i}"})
                            for i in range(4)])
    a, b = _Recorder("x"), _Recorder("y")
    with OpenAICompatServer(a) as sa, OpenAICompatServer(b) as sb:
        res = CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "openai", "--model", "rec",
                                       "--base-url", sa.url, "--base-url", sb.url, "--concurrency", "1",
                                       "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert len(a.seen) == len(b.seen) == 2
    assert sorted(r["prediction"] for r in load_results(tmp_path / "run" / "results.jsonl")) == ["x", "x", "y", "y"]
