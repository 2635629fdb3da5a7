"""The OpenAI client against a server this project did not write: `transformers serve` (transformers' serving
extra) running the offline default model, offline on CPU. Under greedy decoding it gives the same scored answers as
the in-process HF backend. Skips, saying why, when the extra is missing or the server does not start within
START_TIMEOUT seconds."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kernelkit.apps.bench.m4le_throughput import (
    START_TIMEOUT,
    ServerStartError,
    TransformersServe,
    qa_requests,
    save_smollm2,
)
from kernelkit.apps.cli.m4le import app
from kernelkit.longctx.records import Record, write_records
from kernelkit.longctx.tasks import prepare

runner = CliRunner()


@pytest.fixture(scope="module")
def served(smollm2, tmp_path_factory):
    """A running `transformers serve` of SmolLM2 saved to a temporary folder."""
    folder = save_smollm2(tmp_path_factory.mktemp("smollm2_served"))
    server = TransformersServe(folder, timeout=START_TIMEOUT, log_path=folder / "serve.log")
    try:
        server.start()
    except ServerStartError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


def _records() -> list[Record]:
    """Four short nq-open records (the prompts of the throughput benchmark)."""
    reqs = qa_requests(4, 16)
    return [Record(*r.prompt.split("\n", 1), ["x"], 10, 10, 1000, {"task": "nq-open", "id": r.key}) for r in reqs]


def _answers(results_path) -> dict[str, str]:
    rows = [json.loads(line) for line in results_path.read_text().splitlines()]
    return {row["sample_id"]: row["prediction"] for row in rows}


def test_a_missing_serving_extra_is_named(monkeypatch):
    import importlib.util

    from kernelkit.apps.bench import m4le_throughput

    real = importlib.util.find_spec
    monkeypatch.setattr(m4le_throughput.importlib.util, "find_spec",
                        lambda name: None if name == "fastapi" else real(name))
    with pytest.raises(ServerStartError, match=r"serving extra.*fastapi"):
        m4le_throughput.serve_executable()


def test_a_server_that_does_not_answer_in_time_is_stopped_and_named(tmp_path):
    from kernelkit.apps.bench.m4le_throughput import serve_executable

    try:
        serve_executable()
    except ServerStartError as exc:
        pytest.skip(str(exc))
    server = TransformersServe(tmp_path / "absent", timeout=0.5, log_path=tmp_path / "serve.log")
    with pytest.raises(ServerStartError, match=r"did not answer within 0.5 s|exited with status"):
        server.start()
    assert server.proc is not None and server.proc.poll() is not None  # stopped, not left running


@pytest.mark.slow
def test_run_against_transformers_serve_matches_in_process_hf(served, tmp_path):
    recs = _records()
    assert [r.prompt for r in recs] == [r.prompt for r in qa_requests(4, 16)]
    path = write_records(tmp_path / "recs.jsonl", recs)
    common = ["--records", str(path), "--max-new-tokens", "16", "--quiet", "--json"]
    remote = runner.invoke(app, ["run", "--backend", "openai", "--base-url", served.url, "--model", served.model,
                                 "--concurrency", "2", "--out", str(tmp_path / "remote"), *common])
    assert remote.exit_code == 0, remote.output
    local = runner.invoke(app, ["run", "--backend", "smollm2", "--device", "cpu", "--out", str(tmp_path / "local"),
                                *common])
    assert local.exit_code == 0, local.output
    theirs, ours = _answers(tmp_path / "remote" / "results.jsonl"), _answers(tmp_path / "local" / "results.jsonl")
    assert sorted(theirs) == sorted(ours) == sorted(r.sample_id for r in recs)
    scored_theirs = {k: prepare("nq-open", v) for k, v in theirs.items()}
    scored_ours = {k: prepare("nq-open", v) for k, v in ours.items()}
    assert scored_theirs == scored_ours
    assert any(scored_ours.values())  # the model answered something, not all empty
    # the server stopped at the first stop mark (sent as `stop`): nothing after a newline came back
    assert all("\n" not in v[:-1] for v in theirs.values())
