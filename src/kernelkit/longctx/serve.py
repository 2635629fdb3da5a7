"""A small OpenAI-compatible HTTP server over any backend (standard library only).

Endpoints: ``GET /v1/models``, ``POST /v1/completions``, ``POST /v1/chat/completions`` (greedy, one
choice). Generation is serialised with a lock. ``fail_first`` and ``delay`` inject faults (HTTP 503 for
the first N generation requests, a sleep before each answer) so that clients' retry and timeout paths
can be exercised against a real server.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kernelkit.longctx.backends.base import Request


class OpenAICompatServer:
    """Serve ``backend`` on ``host:port`` (port 0 picks a free one); use as a context manager."""

    def __init__(self, backend: Any, host: str = "127.0.0.1", port: int = 0, model_name: str | None = None,
                 fail_first: int = 0, delay: float = 0.0) -> None:
        self.backend, self.model_name = backend, model_name or getattr(backend, "name", "model")
        self.fail_first, self.delay = fail_first, delay
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

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode("utf-8")
                self.send_response(status)
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
                    prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                    max_tokens = int(body.get("max_tokens") or 16)
                    if not isinstance(prompt, str):
                        raise TypeError("prompt must be a string")
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    self._send(400, {"error": {"message": f"bad request: {exc}"}})
                    return
                with server.lock:
                    server.calls += 1
                    failing = server.calls <= server.fail_first
                if failing:
                    self._send(503, {"error": {"message": "injected failure"}})
                    return
                if server.delay:
                    time.sleep(server.delay)
                with server.lock:
                    result = server.backend.generate([Request("r", prompt, max_tokens)])[0]
                if result.error is not None:
                    self._send(500, {"error": {"message": result.error}})
                    return
                choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
                if chat:
                    choice["message"] = {"role": "assistant", "content": result.text}
                else:
                    choice["text"] = result.text
                self._send(200, {"object": "chat.completion" if chat else "text_completion",
                                 "model": server.model_name, "choices": [choice],
                                 "usage": {"prompt_tokens": result.prompt_tokens}})

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
