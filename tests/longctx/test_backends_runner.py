"""Backends (HF, offline SmolLM2, OpenAI-compatible over a real local server) and the resumable runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelkit.longctx.backends.base import Request, cut_is_final, truncate_ids
from kernelkit.longctx.metrics import cut_at
from kernelkit.longctx.records import Record, write_records
from kernelkit.longctx.runner import GenParams, load_results, run_records, stop_marks

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_smollm2_answers_offline(smollm2):
    from kernelkit.longctx.backends.hf import HFBackend

    model, tok = smollm2
    backend = HFBackend(model, tok, chat_template=True, name="smollm2")
    out = backend.generate([Request("q", "What is the capital of France? Answer in one word.", 6)])[0]
    assert out.ok and "paris" in out.text.lower()
    assert 5 < out.prompt_tokens < 80


def test_smollm2_default_sends_the_reference_prompt_raw(smollm2):
    from kernelkit.longctx.backends import BACKENDS

    _, tok = smollm2
    backend = BACKENDS.get("smollm2")()
    prompt = "Answer the question.\nQuestion: what is two plus two?\nAnswer:"
    # inference.py tokenizes instruction + "\n" + input as it is, with no chat template
    assert backend.chat_template is False and backend.encode(prompt) == tok(prompt)["input_ids"]


def test_two_smollm2_backends_keep_their_own_model_and_rope(smollm2):
    """A second backend with another RoPE setting leaves the first one's model, config and answers as they were."""
    import torch

    from kernelkit.longctx.backends import BACKENDS

    _, tok = smollm2
    ids = torch.tensor([tok("The capital of France is a city called")["input_ids"]])
    reqs = [Request("q", "What is the capital of France? Answer in one word.", 6)]
    plain = BACKENDS.get("smollm2")()
    with torch.no_grad():
        logits = plain.model(ids).logits
    answer = plain.generate(reqs)[0].text
    scaled = BACKENDS.get("smollm2")(rope="linear", rope_factor=4.0)
    assert scaled.model is not plain.model
    assert plain.describe()["rope"]["rope_type"] == "default" and scaled.describe()["rope"]["rope_type"] == "linear"
    with torch.no_grad():
        assert torch.equal(plain.model(ids).logits, logits)
        assert not torch.allclose(scaled.model(ids).logits, logits, atol=1e-3)
    assert plain.generate(reqs)[0].text == answer


def test_two_hf_backends_keep_their_own_rope(tiny_lm):
    import torch

    from kernelkit.longctx.backends import BACKENDS

    _, _, folder = tiny_lm
    ids = torch.arange(1, 41).unsqueeze(0)
    reqs = [Request("a", "one two three four five six seven eight nine ten", 8)]
    plain = BACKENDS.get("hf")(str(folder))
    with torch.no_grad():
        logits = plain.model(ids).logits
    answer = plain.generate(reqs)[0].text
    scaled = BACKENDS.get("hf")(str(folder), rope="yarn", rope_factor=4.0)
    assert scaled.model is not plain.model
    with torch.no_grad():
        assert torch.equal(plain.model(ids).logits, logits)
        assert not torch.allclose(scaled.model(ids).logits, logits, atol=1e-4)
    assert plain.generate(reqs)[0].text == answer


_TEXT = st.text(alphabet="ab .,\n\t。新闻", max_size=12)
_MARKS = st.lists(st.sampled_from(["\n", ".", ",", "。", "新闻"]), min_size=1, max_size=3, unique=True)


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, suffix=_TEXT, marks=_MARKS)
def test_a_final_cut_is_never_changed_by_a_continuation(text, suffix, marks):
    # the metric's own cut is the independent reference (it equals evaluation.py on the hand-made cases)
    if cut_is_final(text, marks):
        assert cut_at(text + suffix, marks) == cut_at(text, marks)
    elif not any(m in text for m in marks):  # no mark yet: the answer still grows with the text
        assert cut_at(text + "x", marks) != cut_at(text, marks)
    assert cut_is_final(text + marks[0] + suffix, marks)  # the first mark ends the answer wherever it occurs


def test_stop_marks_follow_each_tasks_metric():
    assert stop_marks("nq-open") == ("\n", ".")
    assert stop_marks("wow") == (",", "\n")
    assert stop_marks("online-shopping") == ("。",)  # set-F1: the list ends at the first stop mark
    assert stop_marks("news2016") == ()  # a later quote still changes the scored span
    assert stop_marks("tedtalks-en2zh") == ()  # BLEU scores the whole response
    assert stop_marks("no-such-task") == ()


def test_generation_stops_once_the_cut_is_final_without_changing_it(tiny_lm):
    from kernelkit.longctx.backends.hf import HFBackend

    model, tok, _ = tiny_lm
    prompts = ["one two three four five six", "hello there"]
    full = HFBackend(model, tok).generate([Request(f"k{i}", p, 24) for i, p in enumerate(prompts)])
    assert all(r.info["stop"] in ("length", "eos") for r in full)
    # a mark the full answers contain after a few characters
    marks = [(r.text[len(r.text) // 2],) for r in full]
    reqs = [Request(f"k{i}", p, 24, m) for i, (p, m) in enumerate(zip(prompts, marks, strict=True))]
    for batch_size in (1, 2):
        stopped = HFBackend(model, tok, batch_size=batch_size).generate(reqs)
        for short, long, m in zip(stopped, full, marks, strict=True):
            assert short.info["stop"] == "cut" and short.info["new_tokens"] <= long.info["new_tokens"]
            assert long.text.startswith(short.text) and cut_at(short.text, m) == cut_at(long.text, m)


class _Echo:
    """A backend that answers every request with its own budget, keeping the requests it saw."""

    name = "echo"

    def __init__(self):
        self.seen = []

    def generate(self, requests):
        from kernelkit.longctx.backends.base import Result

        self.seen += requests
        return [Result(r.key, text=str(r.max_new_tokens), info={"stop": "eos"}) for r in requests]


def test_runner_budgets_and_stop_marks_per_task(tmp_path):
    from kernelkit.longctx.runner import default_max_new_tokens

    records = _records(2, task="nq-open", bucket=2000) + _records(1, task="online-shopping", bucket=1000)
    for params, budgets in ((GenParams(), [default_max_new_tokens("nq-open")] * 2
                             + [default_max_new_tokens("online-shopping")]),
                            (GenParams(bucket_budget=True), [2000, 2000, 1000]),  # the reference's budget
                            (GenParams(max_new_tokens=7, bucket_budget=True), [7, 7, 7])):
        echo = _Echo()
        run_records(records, echo, tmp_path / f"{params.digest()}.jsonl", params, progress=False)
        assert [r.max_new_tokens for r in echo.seen] == budgets
        assert [r.stop for r in echo.seen] == [("\n", "."), ("\n", "."), ("。",)]
    echo = _Echo()
    run_records(records, echo, tmp_path / "nostop.jsonl", GenParams(stop_at_cut=False), progress=False)
    assert all(r.stop == () for r in echo.seen)
    assert {row["stop"] for row in load_results(tmp_path / "nostop.jsonl")} == {"eos"}


def test_truncation_policies():
    ids = list(range(10))
    assert truncate_ids(ids, 4, "middle") == ([0, 1, 8, 9], True)
    assert truncate_ids(ids, 4, "left") == ([6, 7, 8, 9], True)
    assert truncate_ids(ids, 4, "none") == (ids, False)
    assert truncate_ids(ids, 20, "middle") == (ids, False)
    with pytest.raises(ValueError, match="exceeds"):
        truncate_ids(ids, 4, "error")
    with pytest.raises(ValueError, match="policy"):
        truncate_ids(ids, 4, "sideways")


def test_hf_backend_batches_like_single_requests_and_reports_truncation(tiny_lm):
    from kernelkit.longctx.backends.hf import HFBackend

    model, tok, _ = tiny_lm
    reqs = [Request("a", "one two three four five six", 5), Request("b", "hello", 5), Request("c", "x y z", 3)]
    single = HFBackend(model, tok, batch_size=1).generate(reqs)
    batched = HFBackend(model, tok, batch_size=3).generate(reqs)
    assert [r.key for r in batched] == ["a", "b", "c"]
    assert [r.text for r in batched] == [r.text for r in single]
    short = HFBackend(model, tok, max_context=8, truncation="middle").generate([Request("a", "w " * 30, 4)])[0]
    assert short.ok and short.truncated and short.prompt_tokens == 4  # after the cut (8 - 4 for the answer)
    assert short.info["prompt_tokens_before_cut"] > 8
    refused = HFBackend(model, tok, max_context=8, truncation="error").generate([Request("a", "w " * 30, 4)])[0]
    assert not refused.ok and "exceeds" in refused.error


def _records(n, task="nq-open", bucket=1000):
    return [Record("Answer the question.", f"Question {i}: what is item {i}?\nAnswer:", [f"item {i}"], 8, 10, bucket,
                   {"task": task, "id": f"s{i:03d}"}) for i in range(n)]


def test_openai_client_against_local_server(tiny_lm, tmp_path):
    from kernelkit.longctx.backends.hf import HFBackend
    from kernelkit.longctx.backends.openai_http import OpenAIBackend
    from kernelkit.longctx.serve import OpenAICompatServer

    model, tok, _ = tiny_lm
    local = HFBackend(model, tok, name="tiny")
    reqs = [Request(f"k{i}", f"prompt number {i}", 4) for i in range(3)]
    direct = local.generate(reqs)
    with OpenAICompatServer(local) as server:
        client = OpenAIBackend(server.url, "tiny", concurrency=3)
        assert [r.text for r in client.generate(reqs)] == [r.text for r in direct]
        chat = OpenAIBackend(server.url, "tiny", chat=True).generate(reqs[:1])[0]
        assert chat.ok and chat.text == direct[0].text
    # transient server errors are retried ...
    with OpenAICompatServer(local, fail_first=2) as server:
        res = OpenAIBackend(server.url, "tiny", max_retries=3, backoff=0.01).generate(reqs[:1])[0]
        assert res.ok and res.info["attempts"] == 3 and res.text == direct[0].text
    # ... and reported as errors when they persist; the runner keeps them out of the results
    with OpenAICompatServer(local, fail_first=100) as server:
        client = OpenAIBackend(server.url, "tiny", max_retries=1, backoff=0.01)
        res = client.generate(reqs[:1])[0]
        assert not res.ok and "failed after 2 attempts" in res.error and "HTTP 503" in res.error
        path = tmp_path / "results.jsonl"
        summary = run_records(_records(2), client, path, progress=False, model="tiny")
        assert summary.errors == 2 and summary.generated == 0 and load_results(path) == []
        assert len((tmp_path / "results.errors.jsonl").read_text().splitlines()) == 2
    with OpenAICompatServer(local, delay=1.5) as server:
        res = OpenAIBackend(server.url, "tiny", max_retries=1, timeout=0.3, backoff=0.01).generate(reqs[:1])[0]
        assert not res.ok and "timeout" in res.error
    # a healthy server later: the rerun generates what failed before
    with OpenAICompatServer(local) as server:
        summary = run_records(_records(2), OpenAIBackend(server.url, "tiny"), path, progress=False, model="tiny")
        assert summary.generated == 2 and len(load_results(path)) == 2


CHILD = """
import sys
from kernelkit.longctx.backends import BACKENDS
from kernelkit.longctx.records import read_records
from kernelkit.longctx.runner import GenParams, run_records
backend = BACKENDS.get("hf")(sys.argv[1])
run_records(read_records(sys.argv[2]), backend, sys.argv[3], GenParams(max_new_tokens=6), model="tiny", progress=False)
"""


def test_runner_survives_kill9_without_loss_or_duplicates(tiny_lm, tmp_path):
    from kernelkit.longctx.backends.hf import HFBackend

    model, tok, folder = tiny_lm
    records = _records(40)
    write_records(tmp_path / "records.jsonl", records)
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder), str(tmp_path / "records.jsonl"), str(out)],
                             env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and child.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 3:
            break
        time.sleep(0.02)
    assert child.poll() is None, f"child ended early: {child.stderr.read().decode()[-2000:]}"
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stderr.close()
    before = load_results(out)
    assert 3 <= len(before) < 40
    with open(out, "a", encoding="utf-8") as f:  # also a torn line, as a kill during a write leaves
        f.write('{"key": "torn')
    backend = HFBackend(model, tok, name="tiny")
    summary = run_records(records, backend, out, GenParams(max_new_tokens=6), model="tiny", progress=False)
    assert summary.skipped == len(before) and summary.generated == 40 - len(before)
    lines = out.read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == len(set(keys)) == 40
    # what the killed run wrote is what an uninterrupted run produces
    fresh = tmp_path / "fresh.jsonl"
    run_records(records[:3], backend, fresh, GenParams(max_new_tokens=6), model="tiny", progress=False)
    by_key = {json.loads(line)["key"]: json.loads(line)["prediction"] for line in lines}
    for row in load_results(fresh):
        assert by_key[row["key"]] == row["prediction"]
    again = run_records(records, backend, out, GenParams(max_new_tokens=6), model="tiny", progress=False)
    assert again.generated == 0 and again.skipped == 40


def test_malformed_results_line_names_file_and_line(tmp_path):
    path = tmp_path / "results.jsonl"
    good = {"key": "k1", "model": "m", "task": "nq-open", "bucket": 1000, "prediction": "x", "answers": ["x"]}
    text = json.dumps(good) + "\n{oops\n" + json.dumps({**good, "key": "k2"}) + "\n"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"results\.jsonl:2"):
        load_results(path)
    assert path.read_text() == text


def test_onednn_linears_give_the_same_greedy_answers(smollm2, monkeypatch):
    """The backend routes the model's larger linear layers through oneDNN; the real offline model must produce
    the same logits (to float32 rounding) and the same greedy answers as with plain ``F.linear``."""
    import copy

    import torch

    from kernelkit.longctx.backends.hf import HFBackend
    from kernelkit.utils import onednn

    if not onednn.available():
        pytest.skip("oneDNN linear is not available in this torch build")
    model, tok = smollm2
    plain = copy.deepcopy(model)
    for m in plain.modules():
        m.__dict__.pop("forward", None)  # undo any routing done by an earlier backend on the shared model
    routed = copy.deepcopy(plain)
    assert onednn.accelerate_linears(routed) > 0
    ids = torch.tensor([tok("The capital of France is a city called")["input_ids"]])
    with torch.no_grad():
        want, got = plain(ids).logits, routed(ids).logits
    assert float((got - want).abs().max() / want.abs().max()) < 1e-4
    reqs = [Request("q", "Name three colours of the rainbow.", 12), Request("r", "Two plus two equals", 6)]
    fast = HFBackend(routed, tok, batch_size=2).generate(reqs)
    monkeypatch.setattr(onednn, "available", lambda: False)
    slow = HFBackend(plain, tok, batch_size=2)
    assert slow.onednn_linears == 0
    assert [r.text for r in fast] == [r.text for r in slow.generate(reqs)]
