"""OpenAI-compatible HTTP client backend (``/v1/completions`` or ``/v1/chat/completions``).

Requests run concurrently (a thread pool); connection errors, timeouts, HTTP 429 and 5xx are retried
with exponential backoff; what still fails is returned as an error result, never as an answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kernelkit.longctx.backends.base import BACKENDS, Request, Result

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
#: Requests in flight at once unless told otherwise.
CONCURRENCY = 4


class OpenAIBackend:
    """Greedy (temperature 0) generation through an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``.
        model: the model name sent with each request.
        chat: use ``/chat/completions`` with one user message instead of ``/completions``.
        concurrency: requests in flight at once.
        max_retries: retries after the first attempt for retryable failures.
        timeout: seconds per HTTP request.
        backoff: first retry delay in seconds (doubled each retry).
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, chat: bool = False,
                 concurrency: int = CONCURRENCY, max_retries: int = 3, timeout: float = 120.0,
                 backoff: float = 0.5) -> None:
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key, self.chat = model, api_key, chat
        self.concurrency, self.max_retries = max(1, concurrency), max(0, max_retries)
        self.timeout, self.backoff = timeout, backoff
        self.name = model

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": self.base_url, "model": self.model, "chat": self.chat,
                "concurrency": self.concurrency, "max_retries": self.max_retries, "timeout": self.timeout}

    def _payload(self, req: Request) -> tuple[str, dict[str, Any]]:
        common = {"model": self.model, "max_tokens": req.max_new_tokens, "temperature": 0.0}
        if self.chat:
            return "/chat/completions", {**common, "messages": [{"role": "user", "content": req.prompt}]}
        return "/completions", {**common, "prompt": req.prompt}

    def _one(self, client: Any, req: Request) -> Result:
        import httpx

        path, payload = self._payload(req)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        failures: list[str] = []
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = client.post(self.base_url + path, json=payload, headers=headers, timeout=self.timeout)
            except httpx.TimeoutException as exc:
                failures.append(f"timeout ({type(exc).__name__})")
                continue
            except httpx.TransportError as exc:
                failures.append(f"connection error ({type(exc).__name__}: {exc})")
                continue
            if resp.status_code in RETRY_STATUS:
                failures.append(f"HTTP {resp.status_code}")
                continue
            if resp.status_code != 200:
                return Result(req.key, error=f"HTTP {resp.status_code}: {resp.text[:200]}")
            try:
                data = resp.json()
                choice = data["choices"][0]
                text = choice["message"]["content"] if self.chat else choice["text"]
                usage = data.get("usage") or {}
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return Result(req.key, error=f"malformed response ({type(exc).__name__}: {exc})")
            if not isinstance(text, str):
                return Result(req.key, error="malformed response (no text)")
            return Result(req.key, text=text, prompt_tokens=usage.get("prompt_tokens"),
                          info={"attempts": attempt + 1, "finish_reason": choice.get("finish_reason")})
        return Result(req.key, error=f"failed after {self.max_retries + 1} attempts: {_summarise(failures)}")

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        import httpx

        with httpx.Client() as client, ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(lambda r: self._one(client, r), requests))


def _summarise(failures: list[str]) -> str:
    """The distinct failure messages in order, each once, with a count where it repeats."""
    counts: dict[str, int] = {}
    for f in failures:
        counts[f] = counts.get(f, 0) + 1
    return "; ".join(f if n == 1 else f"{n} x {f}" for f, n in counts.items())


@BACKENDS.register("openai")
def openai_backend(base_url: str, model: str, **kw: Any) -> OpenAIBackend:
    """An OpenAI-compatible server as a backend."""
    return OpenAIBackend(base_url, model, **kw)
