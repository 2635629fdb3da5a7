"""Length counting and length buckets as M4LE defines them (no tokenizer involved).

English text is measured in whitespace-separated words, Chinese text in characters. A record's
``total_length`` (instruction + input + longest gold answer) decides its ``length_bucket``, an integer
upper bound such as 1000 or 8000.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

Lang = Literal["en", "zh", "mixed"]
BucketRule = Literal["range", "first_below", "upper_half"]

#: The paper's five buckets and the 2024 extension up to 128k.
BUCKETS: tuple[int, ...] = (1000, 2000, 4000, 6000, 8000)
EXTENDED_BUCKETS: tuple[int, ...] = BUCKETS + (16000, 32000, 64000, 128000)


_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")


def text_length(text: str, lang: str) -> int:
    """Length of ``text``: whitespace-split words for ``"en"``, characters for ``"zh"``.

    ``"mixed"`` (bilingual tasks) adds the two: CJK characters plus the words of the remaining text.
    """
    if lang == "en":
        return len(text.split())
    if lang == "zh":
        return len(text)
    if lang == "mixed":
        n_cjk = len(_CJK.findall(text))
        return n_cjk + len(_CJK.sub(" ", text).split())
    raise ValueError(f"unknown language {lang!r}; expected 'en', 'zh' or 'mixed'")


def previous_bucket(bucket: int, buckets: Sequence[int]) -> int:
    """The bucket below ``bucket`` in ``buckets`` (0 for the first one)."""
    ordered = sorted(buckets)
    if bucket not in ordered:
        raise ValueError(f"bucket {bucket} is not one of {ordered}")
    i = ordered.index(bucket)
    return ordered[i - 1] if i else 0


def fits_bucket(total: int, bucket: int, buckets: Sequence[int], rule: BucketRule = "range") -> bool:
    """Whether an instance of ``total`` length belongs in ``bucket`` under ``rule``.

    * ``"range"`` (concatenated tasks): ``previous < total <= bucket``.
    * ``"first_below"`` (naturally long documents): ``bucket`` is the first bucket with ``total < bucket``.
    * ``"upper_half"`` (translation): ``previous + (bucket - previous) / 2 <= total <= bucket``.
    """
    prev = previous_bucket(bucket, buckets)
    if rule == "range":
        return prev < total <= bucket
    if rule == "first_below":
        return prev <= total < bucket
    if rule == "upper_half":
        return prev + (bucket - prev) / 2 <= total <= bucket
    raise ValueError(f"unknown bucket rule {rule!r}")


def assign_bucket(total: int, buckets: Sequence[int], rule: BucketRule = "first_below") -> int | None:
    """The bucket an instance of length ``total`` falls in, or ``None`` when it fits none."""
    for bucket in sorted(buckets):
        if fits_bucket(total, bucket, buckets, rule):
            return bucket
    return None


def gold_positions(n_items: int) -> list[int]:
    """The reference's gold-index cycle: 0, then every 5th item (every 10th when ``n_items >= 200``)."""
    if n_items < 1:
        raise ValueError(f"need at least one item, got {n_items}")
    step = 10 if n_items >= 200 else 5
    return [0] + list(range(step - 1, n_items, step))
