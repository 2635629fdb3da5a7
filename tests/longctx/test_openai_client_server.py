"""The OpenAI-compatible client (stop, budget, Retry-After, several servers) against kernelkit's own server, and
the server's prompt shapes (string, list, token ids) and ``stop`` as lm-eval's ``local-completions`` sends them."""

from __future__ import annotations

import time

import pytest

from kernelkit.longctx.backends.base import Request, Result
from kernelkit.longctx.backends.openai_http import OpenAIBackend, retry_after_seconds
from kernelkit.longctx.serve import OpenAICompatServer, cut_at_stop, prompt_texts


class _Recorder:
    """Answers each prompt with a fixed text, keeping the requests it saw."""

    name = "rec"

    def __init__(self, text: str = "Paris.\nAnd more. Lots more") -> None:
        self.text, self.seen = text, []

    def generate(self, requests):
        self.seen += requests
        return [Result(r.key, text=self.text, prompt_tokens=len(r.prompt.split()), info={"stop": "eos"})
                for r in requests]


def test_the_client_sends_the_budget_and_the_first_stop_mark():
    backend = _Recorder()
    with OpenAICompatServer(backend) as server:
        client = OpenAIBackend(server.url, "rec", concurrency=1)
        (res,) = client.generate([Request("a", "Where?", 7, ("\n", "."))])
    assert res.ok and res.text == "Paris."  # the server stopped before the first "\n"
    (seen,) = backend.seen
    assert seen.max_new_tokens == 7 and seen.stop == ("\n",)
    assert res.info["finish_reason"] == "stop"


def test_the_client_waits_as_long_as_retry_after_asks():
    with OpenAICompatServer(_Recorder(), fail_first=1, retry_after=1) as server:
        client = OpenAIBackend(server.url, "rec", backoff=0.01, concurrency=1)
        start = time.perf_counter()
        (res,) = client.generate([Request("a", "Where?", 4)])
        waited = time.perf_counter() - start
    assert res.ok and res.info["attempts"] == 2
    assert waited >= 1.0  # not the 0.01 s backoff


def test_retry_after_values():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("-2") == 0.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)


def test_several_servers_are_used_in_turn():
    a, b = _Recorder("a"), _Recorder("b")
    with OpenAICompatServer(a) as sa, OpenAICompatServer(b) as sb:
        client = OpenAIBackend([sa.url, sb.url], "rec", concurrency=2)
        results = client.generate([Request(f"r{i}", f"q {i}", 3) for i in range(6)])
    assert [r.text for r in results] == ["a", "b"] * 3
    assert len(a.seen) == len(b.seen) == 3
    assert client.describe()["base_url"] == f"{sa.url}, {sb.url}"


def test_a_server_takes_string_list_and_token_prompts_and_stop():
    import httpx

    class Tok:
        def decode(self, ids):
            return " ".join(f"t{i}" for i in ids)

    backend = _Recorder()
    backend.tokenizer = Tok()
    with OpenAICompatServer(backend) as server:
        body = {"model": "rec", "prompt": [[1, 2], [3]], "max_tokens": 5, "temperature": 0.0, "stop": ["And", "\n"]}
        resp = httpx.post(server.url + "/completions", json=body, timeout=10)
        assert resp.status_code == 200, resp.text
        choices = resp.json()["choices"]
        assert [c["text"] for c in choices] == ["Paris.", "Paris."]
        assert [c["index"] for c in choices] == [0, 1] and {c["finish_reason"] for c in choices} == {"stop"}
        assert [r.prompt for r in backend.seen] == ["t1 t2", "t3"]
        for prompt in ("plain", ["x", "y"], [5, 6, 7]):
            resp = httpx.post(server.url + "/completions", json={"prompt": prompt, "max_tokens": 2}, timeout=10)
            assert resp.status_code == 200, resp.text
        bad = httpx.post(server.url + "/completions", json={"prompt": [1.5], "max_tokens": 2}, timeout=10)
        assert bad.status_code == 400 and "prompt" in bad.json()["error"]["message"]


def test_prompt_shapes_and_stop_cut():
    assert prompt_texts("a", None) == ["a"] and prompt_texts(["a", "b"], None) == ["a", "b"]
    with pytest.raises(TypeError, match="tokenizer"):
        prompt_texts([1, 2], None)
    with pytest.raises(TypeError):
        prompt_texts([], None)
    assert cut_at_stop("abc. def\n", ["\n", "."]) == ("abc", True)
    assert cut_at_stop("abc", ["x"]) == ("abc", False)
