"""lm-eval interop: `kernelkit m4le export-lm-eval` tasks scored by kernelkit's scorers, and lm-eval's
`local-completions` request shape against `kernelkit m4le serve` (OpenAICompatServer)."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
from typer.testing import CliRunner

from kernelkit.apps.cli.m4le import app
from kernelkit.longctx import serve
from kernelkit.longctx.backends.base import Result
from kernelkit.longctx.lm_eval_export import export_lm_eval, lm_eval_name
from kernelkit.longctx.records import Record, write_records
from kernelkit.longctx.runner import default_max_new_tokens
from kernelkit.longctx.serve import OpenAICompatServer
from kernelkit.longctx.tasks import score

runner = CliRunner()


def _records(n: int, task: str = "nq-open", bucket: int = 1000) -> list[Record]:
    return [Record("Answer the question.", f"Question {i}: what is item {i}?\nAnswer:", [f"item {i}"], 8, 10, bucket,
                   {"task": task, "id": f"{task}-{bucket}-{i}"}) for i in range(n)]


class ItemAnswers:
    """Answers ``item N.`` for even N (right) and ``item N+1`` for odd N (wrong), each followed by more text;
    records the requests it gets. The tokenizer decodes token-id prompts (as `m4le serve`'s backend does)."""

    def __init__(self, tokenizer) -> None:
        self.name, self.tokenizer, self.seen = "items", tokenizer, []

    def generate(self, requests):
        self.seen.extend(requests)
        out = []
        for r in requests:
            i = int(re.search(r"Question (\d+)", r.prompt).group(1))
            out.append(Result(r.key, text=f" item {i if i % 2 == 0 else i + 1}.\nAnd more text", info={"stop": "eos"}))
        return out

    def describe(self):
        return {"backend": "items"}


def _load_utils(folder):
    spec = importlib.util.spec_from_file_location("m4le_lm_eval_utils", folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_writes_one_task_per_task_and_bucket(tmp_path):
    recs = _records(3) + _records(2, bucket=2000) + _records(2, task="news2016", bucket=1000)
    written = export_lm_eval(recs + recs[:1], tmp_path / "tasks")  # a record given twice is exported once
    names = [t.name for t in written]
    assert names == ["m4le_news2016_1000", "m4le_nq_open_1000", "m4le_nq_open_2000"]
    assert [t.n for t in written] == [2, 3, 2]
    nq = written[1]
    assert nq.until == ("\n",) and nq.max_gen_toks == default_max_new_tokens("nq-open")
    text = nq.yaml_path.read_text()
    assert 'task: "m4le_nq_open_1000"' in text and 'until: ["\\n"]' in text
    assert 'tag: ["m4le"]' in text
    assert f"test: {json.dumps(str(nq.data_path))}" in text and nq.data_path.is_absolute()
    assert "process_results: !function utils.process_results" in text and "aggregation: mean" in text
    rows = [json.loads(line) for line in nq.data_path.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [r.prompt for r in recs[:3]]
    assert {r["task"] for r in rows} == {"nq-open"} and {r["bucket"] for r in rows} == {1000}
    # news2016 takes the quoted span: no stop mark may end its answers early
    assert written[0].until == () and "until: []" in written[0].yaml_path.read_text()


def test_exported_scorer_is_kernelkits(tmp_path):
    export_lm_eval(_records(1) + _records(1, task="news2016"), tmp_path)
    utils = _load_utils(tmp_path)
    doc = {"prompt": "p", "answers": ["item 0"], "task": "nq-open", "bucket": 1000}
    for prediction in (" item 0.\nmore", "item 0", " no. item 0", "\nitem 0", " Item 0 it is"):
        assert utils.process_results(doc, [prediction]) == {"score": score("nq-open", prediction, ["item 0"])}
    assert utils.process_results(doc, [" item 0.\nmore"])["score"] == 1.0
    assert utils.process_results(doc, [" no. item 0"])["score"] == 0.0
    assert utils.doc_to_text(doc) == "p"


def test_unknown_task_and_missing_task_are_refused(tmp_path):
    rec = _records(1)[0]
    rec.extras.pop("task")
    with pytest.raises(ValueError, match="no task"):
        export_lm_eval([rec], tmp_path)
    with pytest.raises(KeyError):
        export_lm_eval([rec], tmp_path, task="no-such-task")
    assert lm_eval_name("NQ-Open", 4000) == "m4le_nq_open_4000"


def test_cli_export_lm_eval(tmp_path):
    path = write_records(tmp_path / "recs.jsonl", _records(2) + _records(1, bucket=2000))
    res = runner.invoke(app, ["export-lm-eval", str(tmp_path / "out"), "--records", str(path), "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)["tasks"]
    assert [(t["lm_eval task"], t["records"]) for t in got] == [("m4le_nq_open_1000", 2), ("m4le_nq_open_2000", 1)]
    assert (tmp_path / "out" / "m4le_nq_open_1000.yaml").exists() and (tmp_path / "out" / "utils.py").exists()


def test_cli_export_lm_eval_official_records_from_a_folder(tmp_path):
    recs = _records(2, task="clts+")
    for rec in recs:  # official files carry no task field: the config names it
        rec.extras.pop("task")
    write_records(tmp_path / "official" / "summarization" / "clts+.jsonl", recs)
    res = runner.invoke(app, ["export-lm-eval", str(tmp_path / "out"), "--official", "clts+", "--records",
                              str(tmp_path / "official"), "--json"])
    assert res.exit_code == 0, res.output
    (task,) = json.loads(res.stdout)["tasks"]
    assert task["lm_eval task"] == "m4le_clts_1000" and task["m4le task"] == "clts+" and task["records"] == 2
    missing = runner.invoke(app, ["export-lm-eval", str(tmp_path / "out"), "--official", "arxiv", "--records",
                                  str(tmp_path / "official")])
    assert missing.exit_code == 2 and "arxiv.jsonl" in missing.output


@pytest.mark.parametrize("args, says", [
    ([], "--records or --official"),
    (["--records", "{tmp}/absent.jsonl"], "--records"),
    (["--records", "{tmp}/recs.jsonl", "--task", "no-such-task"], "--task"),
])
def test_cli_export_lm_eval_usage_errors(tmp_path, args, says):
    rec = _records(1)[0]
    rec.extras.pop("task")
    write_records(tmp_path / "recs.jsonl", [rec])
    res = runner.invoke(app, ["export-lm-eval", str(tmp_path / "out"), *[a.format(tmp=tmp_path) for a in args]])
    assert res.exit_code == 2, res.output
    assert says in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.strip()]) == 1


def test_cli_export_lm_eval_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    path = write_records(tmp_path / "recs.jsonl", _records(1))
    res = runner.invoke(app, ["export-lm-eval", str(tmp_path / "f"), "--records", str(path)])
    assert res.exit_code == 2 and "not a folder" in res.output


def _local_completions_body(tok, prompt: str, max_tokens: int, stop: list[str]) -> dict:
    """A generation request exactly as lm-eval's `local-completions` sends it by default (tokenized_requests=True,
    batch_size 1): the prompt as a batch of one token-id list, stop = until + the eos string, a seed."""
    return {"prompt": [tok(prompt, add_special_tokens=False)["input_ids"]], "model": "items", "max_tokens": max_tokens,
            "temperature": 0, "stop": stop, "seed": 1234}


def test_local_completions_request_shape_against_m4le_serve(smollm2):
    import httpx

    _, tok = smollm2
    backend = ItemAnswers(tok)
    rec = _records(1)[0]
    eos = tok.decode([tok.eos_token_id])
    body = _local_completions_body(tok, rec.prompt, 96, ["\n", eos])
    with OpenAICompatServer(backend) as server:
        resp = httpx.post(server.url + "/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"] == [{"index": 0, "finish_reason": "stop", "text": " item 0."}]
    (req,) = backend.seen
    assert req.prompt == rec.prompt and req.max_new_tokens == 96 and req.stop == ("\n", eos)


def test_lm_eval_scores_equal_m4le_score(smollm2, tmp_path, monkeypatch):
    """One exported task per bucket through lm-eval's Python API (`local-completions` against `m4le serve`'s
    server): lm-eval's score equals `kernelkit m4le score` on the answers it logged, and its requests have the
    shape `m4le serve` takes (token-id prompts, stop, max_tokens)."""
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'lm-eval[api]')")
    pytest.importorskip("tenacity", reason="lm-eval's API models need `pip install 'lm-eval[api]'`")
    from lm_eval.tasks import TaskManager

    _, tok = smollm2
    folder = tmp_path / "tok"
    tok.save_pretrained(folder)
    bleu = _records(2, task="tedtalks-zh2en")  # a corpus metric: lm-eval aggregates with utils.corpus_score
    for rec in bleu:
        rec.answers = [f"{rec.answers[0]}. And more text"]
    recs = _records(4) + _records(3, bucket=2000) + bleu
    written = export_lm_eval(recs, tmp_path / "tasks")
    bodies = []
    real_prompt_texts = serve.prompt_texts
    monkeypatch.setattr(serve, "prompt_texts", lambda prompt, t: bodies.append(prompt) or real_prompt_texts(prompt, t))
    backend = ItemAnswers(tok)
    with OpenAICompatServer(backend) as server:
        out = lm_eval.simple_evaluate(
            model="local-completions",
            model_args=f"base_url={server.url}/completions,model=items,tokenizer={folder},"
                       "tokenizer_backend=huggingface,max_length=4096",
            tasks=[t.name for t in written], task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
            log_samples=True)
    assert all(isinstance(b, list) and all(isinstance(x, int) for x in b[0]) for b in bodies)  # token-id prompts
    eos = tok.decode([tok.eos_token_id])
    assert {r.stop for r in backend.seen} == {("\n", eos), (eos,)}  # translation has no stop mark
    budgets = {default_max_new_tokens(t) for t in ("nq-open", "tedtalks-zh2en")}
    assert {r.max_new_tokens for r in backend.seen} == budgets
    assert sorted(r.prompt for r in backend.seen) == sorted(r.prompt for r in recs)
    rows = []
    for t in written:
        for sample in out["samples"][t.name]:
            doc = sample["doc"]
            rows.append({"key": f"items|{doc['task']}|{doc['bucket']}|{doc['sample_id']}", "model": "items",
                         "task": doc["task"], "bucket": doc["bucket"], "prediction": sample["resps"][0][0],
                         "answers": doc["answers"]})
    assert len(rows) == len(recs) and {r["prediction"] for r in rows} >= {" item 0.", " item 2."}
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = runner.invoke(app, ["score", str(results), "--out", str(tmp_path / "score"), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    ours = {(s["task"], s["bucket"]): s["score"] for s in json.loads(res.stdout)["sections"]["score"]["scores"]}
    theirs = {(t.task, t.bucket): out["results"][t.name]["score,none"] for t in written}
    assert theirs == pytest.approx(ours, abs=1e-12)
    assert theirs[("nq-open", 1000)] == 0.5 and theirs[("nq-open", 2000)] == pytest.approx(2 / 3)
    assert 0 < theirs[("tedtalks-zh2en", 1000)] < 1


def test_lm_eval_hf_model_gives_the_answers_of_m4le_run(tiny_lm, tmp_path):
    """The same tiny model in lm-eval's `hf` backend and in `kernelkit m4le run --backend hf`: the scored answers of
    every record agree, and so do the scores."""
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'lm-eval[api]')")
    from lm_eval.tasks import TaskManager

    from kernelkit.longctx.tasks import prepare

    _, _, folder = tiny_lm
    recs = _records(3)
    path = write_records(tmp_path / "recs.jsonl", recs)
    written = export_lm_eval(recs, tmp_path / "tasks", max_new_tokens=12)
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={folder},dtype=float32", device="cpu",
                                  batch_size=1, tasks=[t.name for t in written],
                                  task_manager=TaskManager(include_path=str(tmp_path / "tasks")), log_samples=True)
    theirs = {s["doc"]["sample_id"]: s["resps"][0][0] for s in out["samples"][written[0].name]}
    res = runner.invoke(app, ["run", "--backend", "hf", "--model", str(folder), "--device", "cpu", "--records",
                              str(path), "--max-new-tokens", "12", "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    ours = {row["sample_id"]: row["prediction"] for row in rows}
    assert sorted(theirs) == sorted(ours) == sorted(r.sample_id for r in recs)
    assert {k: prepare("nq-open", v) for k, v in theirs.items()} == {k: prepare("nq-open", v) for k, v in ours.items()}
    expected = sum(score("nq-open", ours[r.sample_id], r.answers) for r in recs) / len(recs)
    assert out["results"][written[0].name]["score,none"] == pytest.approx(expected)
