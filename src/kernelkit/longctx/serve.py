"""A small OpenAI-compatible HTTP server over any backend (standard library only).

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (greedy).
``/v1/completions`` takes ``prompt`` as a string, a list of strings, a list of token ids or a list of
token-id lists (as lm-eval's ``local-completions`` client sends them; ids are decoded with the backend's
tokenizer), one choice per prompt; both endpoints honour ``stop`` (a string or a list: the text ends before
the first occurrence of any of them, ``finish_reason`` "stop"). Generation is serialised with a lock.
``fail_first``, ``retry_after`` and ``delay`` inject faults (HTTP 503 for the first N generation requests,
with a ``Retry-After`` header when given; a sleep before each answer) so that clients' retry and timeout paths
can be exercised against a real server.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kernelkit.longctx.backends.base import Request


def prompt_texts(prompt: Any, tokenizer: Any) -> list[str]:
    """The prompts of a ``/v1/completions`` body: a string, a list of strings, a list of token ids or a list of
    token-id lists (decoded with ``tokenizer``)."""
    def is_ids(p: Any) -> bool:
        return isinstance(p, list) and bool(p) and all(isinstance(t, int) and not isinstance(t, bool) for t in p)

    if isinstance(prompt, str):
        return [prompt]
    if is_ids(prompt):
        prompt = [prompt]
    if not isinstance(prompt, list) or not prompt:
        raise TypeError("prompt must be a string, a list of strings or a list of token ids")
    out = []
    for p in prompt:
        if isinstance(p, str):
            out.append(p)
        elif is_ids(p):
            if tokenizer is None:
                raise TypeError("token-id prompts need a backend with a tokenizer")
            out.append(tokenizer.decode(p))
        else:
            raise TypeError("prompt must be a string, a list of strings or a list of token ids")
    return out


def stop_strings(stop: Any) -> list[str]:
    """``stop`` of a request body: absent, a string or a list of strings."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return [s for s in stop if s]
    raise TypeError("stop must be a string or a list of strings")


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first occurrence of any stop string, and whether one occurred."""
    ends = [i for i in (text.find(s) for s in stops) if i >= 0]
    return (text[:min(ends)], True) if ends else (text, False)


class OpenAICompatServer:
    """Serve ``backend`` on ``host:port`` (port 0 picks a free one); use as a context manager."""

    def __init__(self, backend: Any, host: str = "127.0.0.1", port: int = 0, model_name: str | None = None,
                 fail_first: int = 0, delay: float = 0.0, retry_after: float | None = None) -> None:
        self.backend, self.model_name = backend, model_name or getattr(backend, "name", "model")
        self.fail_first, self.delay, self.retry_after = fail_first, delay, retry_after
        self.lock = threading.Lock()
        self.calls = 0
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        if isinstance(host, bytes):
            host = host.decode()
        return f"http://{host}:{port}/v1"

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model_name, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                route = self.path.rstrip("/")
                if route not in ("/v1/completions", "/v1/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                    chat = route.endswith("chat/completions")
                    if chat:
                        prompts = [body["messages"][-1]["content"]]
                        if not isinstance(prompts[0], str):
                            raise TypeError("message content must be a string")
                    else:
                        prompts = prompt_texts(body["prompt"], getattr(server.backend, "tokenizer", None))
                    max_tokens = int(body.get("max_tokens") or 16)
                    stops = stop_strings(body.get("stop"))
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    self._send(400, {"error": {"message": f"bad request: {exc}"}})
                    return
                with server.lock:
                    server.calls += 1
                    failing = server.calls <= server.fail_first
                if failing:
                    wait = {} if server.retry_after is None else {"Retry-After": f"{server.retry_after:g}"}
                    self._send(503, {"error": {"message": "injected failure"}}, wait)
                    return
                if server.delay:
                    time.sleep(server.delay)
                with server.lock:
                    results = server.backend.generate([Request(f"r{i}", p, max_tokens, tuple(stops))
                                                       for i, p in enumerate(prompts)])
                failed = [r.error for r in results if r.error is not None]
                if failed:
                    self._send(500, {"error": {"message": failed[0]}})
                    return
                choices = []
                for i, result in enumerate(results):
                    text, stopped = cut_at_stop(result.text, stops)
                    choice: dict[str, Any] = {"index": i, "finish_reason": "stop" if stopped or
                                              result.info.get("stop") != "length" else "length"}
                    if chat:
                        choice["message"] = {"role": "assistant", "content": text}
                    else:
                        choice["text"] = text
                    choices.append(choice)
                self._send(200, {"object": "chat.completion" if chat else "text_completion",
                                 "model": server.model_name, "choices": choices,
                                 "usage": {"prompt_tokens": sum(r.prompt_tokens or 0 for r in results)}})

        return Handler

    def start(self) -> OpenAICompatServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
