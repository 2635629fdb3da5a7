"""``kernelkit m4le`` with bad input: every case ends with exit 2 (usage) or 1 (runtime failure), a message
naming the option or file, and no Python traceback; a run whose requests all fail exits 1 and says "failed"
with the counts; partial failures are counted; ``--quiet`` hides the model-loading bars."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kernelkit.apps.cli.m4le import app
from kernelkit.longctx.backends.base import Result
from kernelkit.longctx.records import Record, write_records

UNREACHABLE = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


def _flat(output: str) -> str:
    """The output without the error box drawn by typer and without whitespace (the box breaks long lines
    anywhere, even inside a path)."""
    return "".join(re.sub(r"[╭╮╰╯│─]", " ", output).split())


def _holds(output: str, needle: str) -> bool:
    return _flat(needle) in _flat(output)


def _records(path: Path, n: int = 2) -> Path:
    write_records(path, [Record("Answer.", f"Question {i}: x\nAnswer: item{i}", [f"item{i}"], 8, 10, 1000,
                                {"task": "nq-open", "id": f"s{i}"}) for i in range(n)])
    return path


@pytest.fixture
def files(tmp_path):
    """Named inputs: a good records file, an empty one, a directory, a text file, a results file."""
    records = _records(tmp_path / "records.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    (tmp_path / "adir").mkdir()
    (tmp_path / "notes.txt").write_text("just some text\n")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00\x81" * 10 + b"\n")
    (tmp_path / "unknown_task.jsonl").write_text(json.dumps(
        {"key": "k", "model": "m", "task": "no-such-task", "bucket": 1000, "prediction": "x", "answers": ["x"]}) + "\n")
    return {"records": str(records), "empty": str(tmp_path / "empty.jsonl"), "blank": str(tmp_path / "blank.jsonl"),
            "dir": str(tmp_path / "adir"), "text": str(tmp_path / "notes.txt"),
            "binary": str(tmp_path / "binary.jsonl"), "missing": str(tmp_path / "missing.jsonl"),
            "unknown_task": str(tmp_path / "unknown_task.jsonl"), "out": str(tmp_path / "out")}


#: (case, arguments with {placeholders} from ``files``, exit code, text the message must hold)
CASES = [
    ("run: records is a directory", ["run", "--records", "{dir}"], 2, "--records: {dir}: is a directory"),
    ("run: records missing", ["run", "--records", "{missing}"], 2, "--records: {missing}: no such file"),
    ("run: records empty", ["run", "--records", "{empty}"], 2, "--records {empty}: no records"),
    ("run: records blank lines only", ["run", "--records", "{blank}"], 2, "--records {blank}: no records"),
    ("run: records not json", ["run", "--records", "{text}"], 2, "{text}:1: malformed JSON line"),
    ("run: records not utf-8", ["run", "--records", "{binary}"], 2, "{binary}:1: not UTF-8 text"),
    ("run: results is a directory", ["run", "--records", "{records}", "--results", "{dir}"], 2,
     "--results {dir}: is a directory"),
    ("run: hf model missing", ["run", "--records", "{records}", "--backend", "hf", "--model", "/nonexistent"], 2,
     "--model /nonexistent: no such folder"),
    ("run: hf model empty folder", ["run", "--records", "{records}", "--backend", "hf", "--model", "{dir}"], 2,
     "--model {dir}: no config.json"),
    ("run: hf model is a file", ["run", "--records", "{records}", "--backend", "hf", "--model", "{text}"], 2,
     "--model {text}: not a folder"),
    ("run: unreachable server", ["run", "--records", "{records}", "--limit", "1", "--backend", "openai",
                                 "--base-url", UNREACHABLE, "--model", "m"], 1,
     f"--base-url {UNREACHABLE}: 1 of 1 requests failed"),
    ("run: unknown --task", ["run", "--records", "{records}", "--task", "no-such-task"], 2,
     "--task: unknown m4le task 'no-such-task'"),
    ("run: unknown --official", ["run", "--official", "no-such-config"], 2,
     "--official: unknown m4le task 'no-such-config'"),
    ("serve: hf model missing", ["serve", "--backend", "hf", "--model", "/nonexistent"], 2,
     "--model /nonexistent: no such folder"),
    ("serve: hf model empty folder", ["serve", "--backend", "hf", "--model", "{dir}"], 2,
     "--model {dir}: no config.json"),
    ("report: a records file", ["report", "{records}"], 2, "{records}: row 1 is not a result"),
    ("report: a directory", ["report", "{dir}"], 2, "{dir}: is a directory"),
    ("report: not utf-8", ["report", "{binary}"], 2, "{binary}: not UTF-8 text"),
    ("report: missing", ["report", "{missing}"], 2, "{missing}: no such results file"),
    ("report: empty", ["report", "{empty}"], 2, "{empty}: no results to score"),
    ("report: unknown task", ["report", "{unknown_task}"], 2, "{unknown_task}: "),
    ("score: a records file", ["score", "{records}"], 2, "{records}: row 1 is not a result"),
    ("score: a directory", ["score", "{dir}"], 2, "{dir}: is a directory"),
]


@pytest.mark.parametrize(("args", "code", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_with_a_message_and_no_traceback(files, args, code, needle):
    argv = [a.format(**files) for a in args] + (["--out", files["out"]] if args[0] != "serve" else [])
    res = CliRunner().invoke(app, argv)
    assert res.exit_code == code, res.output
    # an exception escaping the command is what a user sees as a traceback
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    assert _holds(res.output, needle.format(**files)), res.output
    if code == 1:  # the runtime message is one line (not wrapped), naming the option
        line = next(ln for ln in res.output.splitlines() if needle.format(**files) in ln)
        assert line.startswith(needle.split(":")[0])
    if code == 2:  # a usage error never leaves a run directory behind
        assert not Path(files["out"]).exists()


def test_unknown_task_in_results_names_the_task(files):
    res = CliRunner().invoke(app, ["score", files["unknown_task"], "--out", files["out"]])
    assert res.exit_code == 2 and _holds(res.output, "no-such-task"), res.output


def test_a_run_whose_requests_all_fail_exits_1_and_reports_failed(files):
    out = Path(files["out"])
    res = CliRunner().invoke(app, ["run", "--records", files["records"], "--backend", "openai", "--base-url",
                                   UNREACHABLE, "--model", "m", "--out", str(out), "--json"])
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "Connection refused" in res.output
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "failed"
    sec = results["sections"]["run"]
    assert sec["status"] == "failed" and sec["failed"] == 2 and sec["attempted"] == 2 and sec["generated"] == 0
    html = (out / "report.html").read_text()
    assert "2 of 2 requests failed" in html and ">ok<" not in html


class _FlakyEcho:
    """Answers each prompt's last word; the prompt of record 0 fails every time it is asked."""

    name = "flaky"

    def generate(self, requests):
        return [Result(r.key, error="model crashed") if "Question 0:" in r.prompt
                else Result(r.key, text=r.prompt.split()[-1], info={"stop": "eos"}) for r in requests]

    def describe(self):
        return {"backend": "flaky"}


def test_partial_failures_are_counted_in_the_report(files, tmp_path):
    from kernelkit.longctx.serve import OpenAICompatServer

    records = _records(tmp_path / "three.jsonl", 3)
    out = Path(files["out"])
    with OpenAICompatServer(_FlakyEcho()) as server:
        res = CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "openai", "--base-url",
                                       server.url, "--model", "flaky", "--out", str(out)])
    assert res.exit_code == 0, res.output  # some answers exist: the run is partial, not failed
    assert "1 of 3 requests failed" in res.output
    results = json.loads((out / "results.json").read_text())
    assert results["status"] == "partial" and results["sections"]["run"]["status"] == "partial"
    assert results["sections"]["run"]["failed"] == 1 and results["sections"]["run"]["generated"] == 2
    assert "1 of 3 requests failed" in (out / "report.html").read_text()


def test_quiet_hides_the_model_loading_bar(tmp_path, smollm2):
    """``--quiet`` hides transformers' loading bar (shown without it) and leaves the setting as it was: "Loading
    weights" on 5.x, "Loading checkpoint shards" on 4.x (shown for a checkpoint in several files only)."""
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    _, tok = smollm2
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    folder = tmp_path / "tiny"
    LlamaForCausalLM(cfg).save_pretrained(folder, max_shard_size="1MB")
    tok.save_pretrained(folder)
    bar = "Loading weights" if int(transformers.__version__.split(".")[0]) >= 5 else "Loading checkpoint shards"
    records = _records(tmp_path / "records.jsonl", 1)
    was = hf_logging.is_progress_bar_enabled()
    outputs = {}
    for quiet in (False, True):
        res = CliRunner().invoke(app, ["run", "--records", str(records), "--backend", "hf", "--model", str(folder),
                                       "--max-new-tokens", "1", "--out", str(tmp_path / f"o{quiet}"),
                                       *(["--quiet"] if quiet else [])])
        assert res.exit_code == 0, res.output
        outputs[quiet] = res.output
    assert bar in outputs[False]  # the bar this test looks for exists
    assert bar not in outputs[True] and outputs[True].strip() == ""
    assert hf_logging.is_progress_bar_enabled() == was


def test_loading_bars_restores_the_settings():
    pytest.importorskip("transformers")
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    from kernelkit.longctx.backends.hf import loading_bars

    for start in (True, False):
        (hf_logging.enable_progress_bar if start else hf_logging.disable_progress_bar)()
        hub = hub_utils.are_progress_bars_disabled()
        try:
            with loading_bars(False):
                assert not hf_logging.is_progress_bar_enabled()
            assert hf_logging.is_progress_bar_enabled() is start and hub_utils.are_progress_bars_disabled() == hub
        finally:
            hf_logging.enable_progress_bar()
