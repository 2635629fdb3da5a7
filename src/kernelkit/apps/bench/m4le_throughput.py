"""Benchmark: M4LE records/s in process (HF backend) and through the OpenAI client against ``transformers serve``.

The same short question-answering records (nq-open prompts, its stop marks, greedy) go through
(a) the in-process HF backend of the offline default model (SmolLM2) and (b) :class:`OpenAIBackend` against
``transformers serve`` running the same model (saved to a temporary folder, served offline on CPU) with 1 and 4
requests in flight. Where the time goes: a 1-token generation of every record (prefill) against the full one
(prefill + decode), and the client against bare HTTP requests of the same bodies sent one at a time (the
server's own time per request: generation plus its HTTP handling), so the client's own share shows.

:class:`TransformersServe` starts and stops the server (the tests use it too).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from kernelkit.apps.bench import BenchContext, register_benchmark

#: Seconds ``transformers serve`` gets to load the model and answer ``GET /v1/models``.
START_TIMEOUT = 120.0
SERVING_MODULES = ("fastapi", "uvicorn", "openai")

_QUESTIONS = [("Who wrote the play Romeo and Juliet?", "William Shakespeare"),
              ("What is the capital of France?", "Paris"),
              ("How many legs does a spider have?", "eight"),
              ("What planet is known as the Red Planet?", "Mars")]


class ServerStartError(RuntimeError):
    """``transformers serve`` is not installed or did not answer in time (the message says which, in one line)."""


def serve_executable() -> str:
    """The ``transformers`` command of this Python environment; :class:`ServerStartError` when it or the
    ``serving`` extra's packages are missing."""
    missing = [m for m in SERVING_MODULES if importlib.util.find_spec(m) is None]
    if importlib.util.find_spec("transformers") is None or missing:
        raise ServerStartError("`transformers serve` needs the serving extra (pip install 'kernelkit[serving]'); "
                               f"missing: {', '.join(missing) or 'transformers'}")
    exe = Path(sys.executable).parent / "transformers"
    found = str(exe) if exe.exists() else shutil.which("transformers")
    if not found:
        raise ServerStartError("no `transformers` command next to this Python or on PATH")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TransformersServe:
    """``transformers serve MODEL_DIR`` on CPU (float32, offline: no hub access) as a context manager.

    Requests must name the model as served: :attr:`model` (the folder path). Greedy decoding is asked per
    request (``temperature`` 0). :meth:`start` raises :class:`ServerStartError` when the command is missing or
    the server does not answer within ``timeout`` seconds (its log's last line says why); the process is
    stopped on exit.
    """

    def __init__(self, model_dir: str | os.PathLike[str], timeout: float = START_TIMEOUT,
                 log_path: str | os.PathLike[str] | None = None) -> None:
        self.model = str(model_dir)
        self.timeout = timeout
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        if log_path is None:
            fd, log_path = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")
            os.close(fd)
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> TransformersServe:
        import httpx

        cmd = [serve_executable(), "serve", self.model, "--device", "cpu", "--dtype", "float32",
               "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise ServerStartError(f"`transformers serve` exited with status {self.proc.returncode}: "
                                       f"{self._last_log_line()}")
            try:
                if httpx.get(self.url + "/models", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise ServerStartError(f"`transformers serve` did not answer within {self.timeout:g} s: "
                               f"{self._last_log_line()}")

    def _last_log_line(self) -> str:
        try:
            lines = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return "no log"
        return lines[-1][:300] if lines else "no output"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> TransformersServe:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def save_smollm2(folder: str | os.PathLike[str]) -> Path:
    """The offline default model and its tokenizer written with ``save_pretrained`` (what ``transformers serve``
    loads)."""
    from kernelkit.longctx.backends.hf import load_smollm2

    model, tok = load_smollm2()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return Path(folder)


def qa_requests(n: int, max_new_tokens: int, stop: bool = True) -> list[Any]:
    """``n`` short nq-open-like requests (a passage, then one of a few questions) with nq-open's stop marks."""
    from kernelkit.longctx.backends.base import Request
    from kernelkit.longctx.runner import stop_marks

    out = []
    for i in range(n):
        q, a = _QUESTIONS[i % len(_QUESTIONS)]
        passage = f"Document [{i}]: the answer to the question below is {a}. " * (1 + i % 3)
        prompt = f"Answer the question based on the document.\n{passage}\nQuestion: {q}\nAnswer:"
        out.append(Request(f"q{i}", prompt, max_new_tokens, stop_marks("nq-open") if stop else ()))
    return out


def _timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _bare_http(url: str, model: str, requests: Sequence[Any]) -> list[str]:
    """The completions of ``requests`` posted one at a time with plain httpx (no pool, no retries)."""
    import httpx

    texts = []
    with httpx.Client(timeout=600) as client:
        for r in requests:
            body: dict[str, Any] = {"model": model, "prompt": r.prompt, "max_tokens": r.max_new_tokens,
                                    "temperature": 0.0}
            if r.stop:
                body["stop"] = [r.stop[0]]
            resp = client.post(url + "/completions", json=body)
            resp.raise_for_status()
            texts.append(resp.json()["choices"][0]["text"])
    return texts


def _scored(texts: Sequence[str | None]) -> list[str | None]:
    from kernelkit.longctx.tasks import prepare

    return [None if t is None else prepare("nq-open", t) for t in texts]


def _median_times(fns: dict[str, Any], rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Median seconds of each callable over ``rounds`` rounds (the callables alternate within a round) and the
    output of each one's last call."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    outputs: dict[str, Any] = {}
    for _ in range(rounds):
        for name, fn in fns.items():
            outputs[name], seconds = _timed(fn)
            times[name].append(seconds)
    return {name: statistics.median(ts) for name, ts in times.items()}, outputs


@register_benchmark("m4le_throughput", title="M4LE records/s: in-process HF vs the OpenAI client on transformers serve")
def bench_throughput(ctx: BenchContext) -> None:
    from kernelkit.longctx.backends import BACKENDS
    from kernelkit.longctx.backends.openai_http import OpenAIBackend

    n, budget = (2, 8) if ctx.quick else (6, 24)
    rounds = 1 if ctx.quick else ctx.rounds
    reqs = qa_requests(n, budget)
    first_token = qa_requests(n, 1, stop=False)
    try:
        local = BACKENDS.get("smollm2")(progress=False)
    except (ImportError, FileNotFoundError) as exc:
        ctx.record("in-process HF (smollm2)", None, None, "—", skipped=str(exc))
        return
    local.generate(reqs[:1])  # warm-up
    t, out = _median_times({"prefill": partial(local.generate, first_token), "full": partial(local.generate, reqs)},
                           rounds)
    local_answers = _scored([r.text for r in out["full"]])
    ctx.record(f"in-process HF smollm2: {n} records, <= {budget} new tokens", t["full"], None, "—",
               records_per_s=round(n / t["full"], 3), prefill_1_token_s=round(t["prefill"], 3),
               decode_s=round(t["full"] - t["prefill"], 3), rounds=rounds, load_average=round(os.getloadavg()[0], 1),
               new_tokens=sum(r.info.get("new_tokens", 0) for r in out["full"]))
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_smollm2(Path(tmp) / "smollm2")
        try:
            server = TransformersServe(folder, log_path=Path(tmp) / "serve.log").start()
        except ServerStartError as exc:
            for c in (1, 4):
                ctx.record(f"OpenAI client -> transformers serve, concurrency {c}", None, None, "bare HTTP",
                           skipped=str(exc))
            return
        try:
            _bare_http(server.url, server.model, reqs[:1])  # warm-up
            clients = {c: OpenAIBackend(server.url, server.model, concurrency=c) for c in (1, 4)}
            t, out = _median_times({"prefill": partial(_bare_http, server.url, server.model, first_token),
                                    "bare": partial(_bare_http, server.url, server.model, reqs),
                                    **{f"client{c}": partial(cl.generate, reqs) for c, cl in clients.items()}},
                                   rounds)
            for c in clients:
                answers = _scored([r.text for r in out[f"client{c}"]])
                client_s, bare_s = t[f"client{c}"], t["bare"]
                ctx.record(f"OpenAI client -> transformers serve, concurrency {c}: {n} records", client_s, bare_s,
                           "bare HTTP, one request at a time", records_per_s=round(n / client_s, 3),
                           client_overhead_pct=round(100 * (client_s - bare_s) / bare_s, 1),
                           server_prefill_1_token_s=round(t["prefill"], 3),
                           server_decode_s=round(bare_s - t["prefill"], 3), rounds=rounds,
                           load_average=round(os.getloadavg()[0], 1),
                           failed=sum(not r.ok for r in out[f"client{c}"]),
                           same_answers_as_in_process=sum(a == b for a, b in zip(answers, local_answers, strict=True)),
                           same_answers_as_bare_http=sum(
                               a == b for a, b in zip(answers, _scored(out["bare"]), strict=True)))
        finally:
            server.stop()
