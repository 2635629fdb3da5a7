"""OpenAI-compatible HTTP client backend (``/v1/completions`` or ``/v1/chat/completions``).

Requests run concurrently (a thread pool, ``concurrency`` in flight per server); with several base URLs
(replicas of one model) request ``i`` goes to server ``i mod n``. Connection errors, timeouts, HTTP 429 and
5xx are retried with exponential backoff, waiting at least what a ``Retry-After`` header asks (capped at
:data:`MAX_RETRY_AFTER` seconds); what still fails is returned as an error result, never as an answer.

Each request sends the task's token budget (``max_tokens``) and, when the task cuts answers at end marks,
the first mark as ``stop``: the scored answer is the text before that mark's first occurrence, cut further
by the later marks, so a server that stops there returns exactly the text that is scored. (Sending every
mark would not be the same: a later mark occurring first would cut too early.)
"""

from __future__ import annotations

import email.utils
import itertools
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kernelkit.longctx.backends.base import BACKENDS, Request, Result

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
#: Requests in flight at once (per server) unless told otherwise.
CONCURRENCY = 4
#: The longest ``Retry-After`` wait honoured, in seconds.
MAX_RETRY_AFTER = 60.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date); ``None`` if absent or
    unreadable. Never negative."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class OpenAIBackend:
    """Greedy (temperature 0) generation through an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``, or several (replicas of the same model, used in turn).
        model: the model name sent with each request.
        chat: use ``/chat/completions`` with one user message instead of ``/completions``.
        concurrency: requests in flight per server (``concurrency x servers`` at once, handed out in turn).
        max_retries: retries after the first attempt for retryable failures.
        timeout: seconds per HTTP request.
        backoff: first retry delay in seconds (doubled each retry).
    """

    def __init__(self, base_url: str | Sequence[str], model: str, api_key: str | None = None, chat: bool = False,
                 concurrency: int = CONCURRENCY, max_retries: int = 3, timeout: float = 120.0,
                 backoff: float = 0.5) -> None:
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("base_url: give at least one server URL")
        self.base_urls = [u.rstrip("/") for u in urls]
        self.base_url = self.base_urls[0]
        self.model, self.api_key, self.chat = model, api_key, chat
        self.concurrency, self.max_retries = max(1, concurrency), max(0, max_retries)
        self.timeout, self.backoff = timeout, backoff
        self.name = model

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "base_url": ", ".join(self.base_urls), "model": self.model, "chat": self.chat,
                "concurrency": self.concurrency, "max_retries": self.max_retries, "timeout": self.timeout}

    def _payload(self, req: Request) -> tuple[str, dict[str, Any]]:
        common: dict[str, Any] = {"model": self.model, "max_tokens": req.max_new_tokens, "temperature": 0.0}
        if req.stop:
            common["stop"] = [req.stop[0]]  # the first mark only (module docstring)
        if self.chat:
            return "/chat/completions", {**common, "messages": [{"role": "user", "content": req.prompt}]}
        return "/completions", {**common, "prompt": req.prompt}

    def _one(self, client: Any, base_url: str, req: Request) -> Result:
        import httpx

        path, payload = self._payload(req)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        failures: list[str] = []
        asked: float | None = None  # the last Retry-After
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(max(self.backoff * 2 ** (attempt - 1), min(asked or 0.0, MAX_RETRY_AFTER)))
            try:
                resp = client.post(base_url + path, json=payload, headers=headers, timeout=self.timeout)
            except httpx.TimeoutException as exc:
                failures.append(f"timeout ({type(exc).__name__})")
                continue
            except httpx.TransportError as exc:
                failures.append(f"connection error ({type(exc).__name__}: {exc})")
                continue
            if resp.status_code in RETRY_STATUS:
                failures.append(f"HTTP {resp.status_code}")
                asked = retry_after_seconds(resp.headers.get("Retry-After"))
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
                          info={"attempts": attempt + 1, "finish_reason": choice.get("finish_reason"),
                                "server": base_url})
        return Result(req.key, error=f"failed after {self.max_retries + 1} attempts: {_summarise(failures)}")

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        import httpx

        servers = itertools.cycle(self.base_urls)
        jobs = [(next(servers), r) for r in requests]
        with httpx.Client() as client, ThreadPoolExecutor(self.concurrency * len(self.base_urls)) as pool:
            return list(pool.map(lambda job: self._one(client, *job), jobs))


def _summarise(failures: list[str]) -> str:
    """The distinct failure messages in order, each once, with a count where it repeats."""
    counts: dict[str, int] = {}
    for f in failures:
        counts[f] = counts.get(f, 0) + 1
    return "; ".join(f if n == 1 else f"{n} x {f}" for f, n in counts.items())


@BACKENDS.register("openai")
def openai_backend(base_url: str | Sequence[str], model: str, **kw: Any) -> OpenAIBackend:
    """An OpenAI-compatible server (or several replicas, used in turn) as a backend."""
    return OpenAIBackend(base_url, model, **kw)
