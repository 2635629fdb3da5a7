"""A tiny built-in corpus generated in code, used when no data root is available.

It yields sources in the same in-memory form as the real adapters, for ``nq-open`` (fictional facts
with questions) and ``wikitext-103`` (fictional articles whose paragraphs continue each other). The text
is synthetic: results on it say nothing about the real benchmark, only that the pipeline runs.
"""

from __future__ import annotations

import random

from kernelkit.longctx.tasks.sources import QAItem

_SYL = ["ka", "lo", "mi", "ren", "tu", "vas", "or", "el", "din", "sa", "qu", "bar", "zen", "to", "ri", "mon"]
_NOUNS = ["river", "harbour", "bridge", "library", "festival", "market", "railway", "castle", "garden", "mine"]
_VERBS = ["built", "founded", "rebuilt", "opened", "restored", "expanded"]


def _name(rng: random.Random, parts: int = 3) -> str:
    return "".join(rng.choice(_SYL) for _ in range(parts)).capitalize()


def _filler(rng: random.Random, place: str, n: int) -> str:
    words = []
    for _ in range(n):
        noun, verb = rng.choice(_NOUNS), rng.choice(_VERBS)
        words.append(f"The {noun} of {place} was {verb} by {_name(rng, 2)} in {rng.randint(1200, 1990)}.")
    return " ".join(words)


def embedded_nq(seed: int = 0, n: int = 300) -> list[QAItem]:
    """Passages about fictional towns; each asks which founder a named landmark has."""
    rng = random.Random(f"embedded-nq:{seed}")
    items = []
    for _ in range(n):
        place, founder, noun = _name(rng), _name(rng, 2), rng.choice(_NOUNS)
        year = rng.randint(1200, 1990)
        fact = f"The great {noun} of {place} was founded by {founder} in {year}."
        text = _filler(rng, place, 3) + " " + fact + " " + _filler(rng, place, 2)
        items.append(QAItem(place, text, f"who founded the great {noun} of {place}", [founder]))
    return items


def embedded_wikitext(seed: int = 0, n_topics: int = 80) -> dict[str, list[str]]:
    """Fictional articles of 4-6 paragraphs each."""
    rng = random.Random(f"embedded-wiki:{seed}")
    topics = {}
    for _ in range(n_topics):
        place = _name(rng)
        topics[place] = [_filler(rng, place, rng.randint(3, 6)) for _ in range(rng.randint(4, 6))]
    return topics


def embedded_source(task: str, seed: int = 0):
    """The embedded source of ``task`` (``nq-open`` or ``wikitext-103``)."""
    if task == "nq-open":
        return embedded_nq(seed)
    if task == "wikitext-103":
        return embedded_wikitext(seed)
    raise KeyError(f"no embedded source for task {task!r} (available: nq-open, wikitext-103)")
