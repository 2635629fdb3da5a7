"""The backend interface: a list of generation requests in, a list of results out (same order).

A result carries either the generated ``text`` or an ``error`` (server failure, timeout, prompt too
long under the ``error`` truncation policy); errors are never model answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kernelkit.registry import Registry

TRUNCATION_POLICIES = ("none", "middle", "left", "error")


@dataclass(frozen=True)
class Request:
    """One greedy generation: ``prompt`` plus a budget of ``max_new_tokens``.

    ``stop`` holds the task's cut marks (the end tokens its metric cuts the response at, in order); a
    backend may end the generation as soon as :func:`cut_is_final` holds, since no later token can
    change what the metric sees.
    """

    key: str
    prompt: str
    max_new_tokens: int = 32
    stop: tuple[str, ...] = ()


@dataclass
class Result:
    key: str
    text: str | None = None
    error: str | None = None
    prompt_tokens: int | None = None
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None


class Backend(Protocol):
    """What the runner needs from a backend."""

    name: str

    def generate(self, requests: Sequence[Request]) -> list[Result]: ...

    def describe(self) -> dict[str, Any]: ...


def cut_is_final(text: str, marks: Sequence[str]) -> bool:
    """Whether cutting ``text`` at ``marks`` in turn (split, keep the first piece, strip) can no longer change.

    That holds once some mark occurs in the piece it is applied to: its first occurrence, and so the
    kept piece, stays where it is however the text continues. Until then a continuation can change the
    result (the piece still runs to the end of the text).
    """
    piece = text
    for mark in marks:
        if mark and mark in piece:
            return True
        piece = piece.strip()
    return False


BACKENDS: Registry[Any] = Registry("m4le backend", discover=("kernelkit.longctx.backends",))


def truncate_ids(ids: list[int], limit: int, policy: str) -> tuple[list[int], bool]:
    """Apply a truncation policy to token ids longer than ``limit``.

    ``none`` keeps everything; ``middle`` keeps the first and last ``limit/2`` tokens (LongBench's rule,
    which keeps the instruction and the question); ``left`` keeps the last ``limit``; ``error`` raises.
    Returns the ids and whether they were cut.
    """
    if policy not in TRUNCATION_POLICIES:
        raise ValueError(f"unknown truncation policy {policy!r}; expected one of {TRUNCATION_POLICIES}")
    if policy == "none" or len(ids) <= limit:
        return ids, False
    if policy == "error":
        raise ValueError(f"prompt of {len(ids)} tokens exceeds the {limit}-token limit")
    if limit <= 0:
        raise ValueError(f"no room for the prompt (limit {limit})")
    if policy == "left":
        return ids[-limit:], True
    head = limit // 2
    return ids[:head] + ids[len(ids) - (limit - head):], True
