"""M4LE scorers, reproducing the behaviour of the reference evaluation (``evaluation.py`` of M4LE).

A response is first cut at its end tokens (in order, keeping the first piece), then one metric applies:

* :func:`acc` -- a gold answer, lowercased, is a substring of the lowercased response;
* :func:`exact_match` -- lowercased, stripped equality with a gold answer;
* :func:`set_f1` -- F1 between the sets of IDs in the response and in the gold list;
* :func:`rouge_l_recall` -- ROUGE-L recall as the ``rouge`` 1.0.1 package computes it (English, summary
  level over "."-split sentences, distinct-word counts) or ``rouge-chinese`` 1.0.3 (jieba words, plain
  LCS over the whole text); the best reference wins, and an empty response scores 0;
* :func:`corpus_bleu` -- corpus BLEU-4 per length bucket (no smoothing, brevity penalty, 13a tokens for
  English, one token per CJK character for Chinese), on a 0-1 scale.

This module names no task. How a task is scored is a :class:`MetricSpec` (metric, language, end tokens,
list separators) that the task's own definition carries (``kernelkit.longctx.tasks``, ``register_task(...,
metric=...)``); :func:`score` and :func:`bucket_scores` apply a spec, and the task-name versions in
``kernelkit.longctx.tasks`` look the spec up in the task registry. :data:`METRICS` maps a metric name to its
scorer; a new metric is one call::

    @register_metric("token_f1")
    def token_f1(text, answers, spec): ...
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from kernelkit.registry import Registry

# ----------------------------------------------------------------------------------------------
# Simple metrics


def cut_at(text: str, end_tokens: Iterable[str]) -> str:
    """Cut ``text`` at each end token in turn, keeping the stripped first piece.

    The text is not stripped before the first cut: a response starting with an end token is empty.
    """
    for token in end_tokens:
        text = text.split(token)[0].strip()
    return text.strip()


def acc(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when any gold answer (lowercased) occurs in the lowercased prediction."""
    low = prediction.lower()
    return float(any(str(a).lower() in low for a in answers))


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the lowercased, stripped prediction equals a lowercased, stripped gold answer."""
    pred = prediction.lower().strip()
    return float(any(str(a).lower().strip() == pred for a in answers))


def split_ids(text: str, sep: str = ",", stop: str | None = None) -> list[str]:
    """IDs listed in ``text``: optionally cut at the first ``stop``, split on ``sep``, stripped."""
    if stop is not None:
        text = text.split(stop)[0]
    return [part.strip() for part in text.strip().split(sep)]


def set_f1(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """F1 between the set of predicted items and the set of gold items."""
    pred_set, gold_set = set(predicted), set(gold)
    if not pred_set or not gold_set:
        return 0.0
    hits = len(pred_set & gold_set)
    precision, recall = hits / len(pred_set), hits / len(gold_set)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# ----------------------------------------------------------------------------------------------
# ROUGE-L recall


class _NoSentences(ValueError):
    """A text without any sentence (the reference scores such a pair 0)."""


def _en_sentences(text: str) -> list[str]:
    return [" ".join(piece.split()) for piece in text.split(".") if piece]


# Sentence ends used by rouge-chinese: after 。！？? (unless a closing quote follows), after six dots or
# two ellipses, and after an end mark followed by a closing quote (unless more punctuation follows).
_ZH_BREAKS = (
    (re.compile(r"([。！？?])([^”’])"), "\\1\n\\2"),
    (re.compile(r"(\.{6})([^”’])"), "\\1\n\\2"),
    (re.compile(r"(…{2})([^”’])"), "\\1\n\\2"),
    (re.compile(r"([。！？?][”’])([^，。！？?])"), "\\1\n\\2"),
)


def _zh_sentences(text: str) -> list[str]:
    for pattern, repl in _ZH_BREAKS:
        text = pattern.sub(repl, text)
    return [" ".join(piece.split()) for piece in text.rstrip().split("\n") if piece]


def _words(sentences: Sequence[str]) -> list[str]:
    return [w for s in sentences for w in s.split(" ")]


def _lcs_table(x: Sequence[str], y: Sequence[str]) -> list[list[int]]:
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(1, len(x) + 1):
        row, above, xi = table[i], table[i - 1], x[i - 1]
        for j in range(1, len(y) + 1):
            row[j] = above[j - 1] + 1 if xi == y[j - 1] else max(above[j], row[j - 1])
    return table


def _lcs_length(x: Sequence[str], y: Sequence[str]) -> int:
    prev = [0] * (len(y) + 1)
    for xi in x:
        cur = [0] * (len(y) + 1)
        for j in range(1, len(y) + 1):
            cur[j] = prev[j - 1] + 1 if xi == y[j - 1] else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def _lcs_words(x: Sequence[str], y: Sequence[str]) -> list[str]:
    """One longest common subsequence, walking back and preferring to drop from ``y`` on ties."""
    table = _lcs_table(x, y)
    i, j, out = len(x), len(y), []
    while i and j:
        if x[i - 1] == y[j - 1]:
            out.append(x[i - 1])
            i, j = i - 1, j - 1
        elif table[i - 1][j] > table[i][j - 1]:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def _rouge_l_recall_en(hyp: str, ref: str) -> float:
    hyp_s, ref_s = _en_sentences(hyp), _en_sentences(ref)
    if not hyp_s or not ref_s:
        raise _NoSentences("empty text")
    ref_vocab = set(_words(ref_s))
    union: set[str] = set()
    for r in ref_s:
        r_words = r.split(" ")
        for h in hyp_s:
            union.update(_lcs_words(r_words, h.split(" ")))
    return len(union) / len(ref_vocab)


def _rouge_l_recall_zh(hyp: str, ref: str) -> float:
    hyp_s, ref_s = _zh_sentences(hyp), _zh_sentences(ref)
    if not hyp_s or not ref_s:
        raise _NoSentences("empty text")
    ref_words, hyp_words = _words(ref_s), _words(hyp_s)
    return _lcs_length(ref_words, hyp_words) / len(ref_words)


@lru_cache(maxsize=4096)
def segment_zh(text: str) -> str:
    """Jieba words joined by spaces (the segmentation used before Chinese ROUGE)."""
    import jieba

    return " ".join(jieba.cut(text))


def rouge_l_recall(prediction: str, answers: Sequence[str], lang: str = "en") -> float:
    """ROUGE-L recall of ``prediction`` against the best of ``answers`` (empty references ignored).

    As in the reference, a response or reference without any sentence makes the item score 0.
    """
    refs = [a for a in answers if a]
    if not refs:
        return 0.0
    try:
        if lang == "en":
            return max(_rouge_l_recall_en(prediction, r) for r in refs)
        if lang == "zh":
            hyp = segment_zh(prediction)
            return max(_rouge_l_recall_zh(hyp, segment_zh(r)) for r in refs)
    except _NoSentences:
        return 0.0
    raise ValueError(f"unknown language {lang!r}; expected 'en' or 'zh'")


# ----------------------------------------------------------------------------------------------
# BLEU

_PUNCT_SPACED = re.compile("([" + re.escape(" !\"#$%&()*+/:;<=>?@[\\]^_`{|}~") + "])")
_PERIOD_COMMA_AFTER = re.compile(r"([^0-9])([.,])")
_PERIOD_COMMA_BEFORE = re.compile(r"([.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")

# Characters the reference's Chinese BLEU tokenizer splits off one by one. Its table compares single
# characters with some two-character strings ("\u20000"), which in effect covers U+2001..U+2A6D and
# U+2F81..U+2FA1; those effective ranges are what is listed here.
_CJK_RANGES = (
    (0x3400, 0x4DB5), (0x4E00, 0x9FA5), (0x9FA6, 0x9FBB), (0xF900, 0xFA2D), (0xFA30, 0xFA6A),
    (0xFA70, 0xFAD9), (0x2001, 0x2A6D), (0x2F81, 0x2FA1), (0xFF00, 0xFFEF), (0x2E80, 0x2EFF),
    (0x3000, 0x303F), (0x31C0, 0x31EF), (0x2F00, 0x2FDF), (0x2FF0, 0x2FFF), (0x3100, 0x312F),
    (0x31A0, 0x31BF), (0xFE10, 0xFE1F), (0xFE30, 0xFE4F), (0x2600, 0x26FF), (0x2700, 0x27BF),
    (0x3200, 0x32FF), (0x3300, 0x33FF),
)


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return any(lo <= code <= hi for lo, hi in _CJK_RANGES)


def _split_punctuation(line: str) -> list[str]:
    line = _PUNCT_SPACED.sub(r" \1 ", line)
    line = _PERIOD_COMMA_AFTER.sub(r"\1 \2 ", line)
    line = _PERIOD_COMMA_BEFORE.sub(r" \1 \2", line)
    line = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return line.split()


@lru_cache(maxsize=65536)
def tokenize_13a(line: str) -> tuple[str, ...]:
    """mteval-v13a tokens (the WMT standard)."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, ch in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, ch)
    return tuple(_split_punctuation(f" {line} "))


@lru_cache(maxsize=65536)
def tokenize_zh(line: str) -> tuple[str, ...]:
    """One token per CJK character; other text tokenized like 13a."""
    spaced = "".join(f" {ch} " if _is_cjk(ch) else ch for ch in line.strip())
    return tuple(_split_punctuation(spaced))


def _ngrams(tokens: Sequence[str], max_order: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i:i + n])] += 1
    return counts


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str] | str], lang: str = "en",
                max_order: int = 4) -> float:
    """Corpus BLEU (0-1) of ``predictions`` against one or more references each.

    Clipped n-gram precisions up to ``max_order`` summed over the corpus, geometric mean (0 when any
    precision is 0), brevity penalty against the shortest reference of each item.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} reference lists")
    if not predictions:
        raise ValueError("corpus_bleu needs at least one prediction")
    tok = {"en": tokenize_13a, "zh": tokenize_zh}.get(lang)
    if tok is None:
        raise ValueError(f"unknown language {lang!r}; expected 'en' or 'zh'")
    matches = [0] * max_order
    possible = [0] * max_order
    hyp_len = ref_len = 0
    for pred, refs in zip(predictions, references, strict=True):
        ref_list = [refs] if isinstance(refs, str) else list(refs)
        ref_toks = [tok(r) for r in ref_list]
        hyp = tok(pred)
        ref_len += min(len(r) for r in ref_toks)
        hyp_len += len(hyp)
        max_ref: Counter[tuple[str, ...]] = Counter()
        for r in ref_toks:
            max_ref |= _ngrams(r, max_order)
        for gram, count in (_ngrams(hyp, max_order) & max_ref).items():
            matches[len(gram) - 1] += count
        for n in range(1, max_order + 1):
            possible[n - 1] += max(len(hyp) - n + 1, 0)
    precisions = [m / p if p else 0.0 for m, p in zip(matches, possible, strict=True)]
    if min(precisions) <= 0 or hyp_len == 0 or ref_len == 0:
        return 0.0
    geo_mean = math.exp(sum(math.log(p) for p in precisions) / max_order)
    ratio = hyp_len / ref_len
    brevity = 1.0 if ratio > 1.0 else math.exp(1 - 1 / ratio)
    return geo_mean * brevity


# ----------------------------------------------------------------------------------------------
# How a response is scored: the spec, the metric registry, applying a spec

#: Scorers by name. An item metric is ``fn(text, answers, spec) -> float`` on the already cut response;
#: one registered with ``corpus=True`` is ``fn(texts, answer_lists, spec) -> float`` over a whole bucket.
METRICS: Registry[Callable[..., float]] = Registry("m4le metric")

LANGS = ("en", "zh")


@dataclass(frozen=True)
class MetricSpec:
    """How the responses of one task are scored.

    Attributes:
        metric: a name in :data:`METRICS` (``acc``, ``exact_match``, ``set_f1``, ``rouge``, ``bleu``, ...).
        lang: ``en`` or ``zh`` (ROUGE segmentation, BLEU tokenizer).
        end_tokens: the response is cut at each of these in turn.
        id_sep / id_stop: for ``set_f1``: the list separator and the stop mark cutting the response.
        gold_stop: for ``set_f1`` and counting tasks: the stop mark cutting the gold answer (``None``:
            the gold is split as it is, as the reference does for most list tasks).
        quoted: take the first double-quoted span of the response (news2016).

    The metric must be registered (unknown names raise with close matches) and ``lang`` known.
    """

    metric: str
    lang: str
    end_tokens: tuple[str, ...] = ()
    id_sep: str = ","
    id_stop: str | None = None
    gold_stop: str | None = None
    quoted: bool = False

    def __post_init__(self) -> None:
        METRICS.entry(self.metric)
        if self.lang not in LANGS:
            raise ValueError(f"unknown language {self.lang!r}; expected 'en' or 'zh'")
        object.__setattr__(self, "end_tokens", tuple(self.end_tokens))

    @property
    def corpus(self) -> bool:
        """Whether the metric scores a whole bucket at once (BLEU) rather than item by item."""
        return bool(METRICS.entry(self.metric).meta.get("corpus"))

    @property
    def stop_marks(self) -> tuple[str, ...]:
        """The marks a response is cut at, in order (empty: the whole response counts).

        End tokens first, then the list stop of set-F1. A spec that first extracts a quoted span gets
        none: a later quote can still change what is scored.
        """
        if self.quoted:
            return ()
        marks = self.end_tokens
        if self.metric == "set_f1" and self.id_stop:
            marks += (self.id_stop,)
        return marks


def register_metric(name: str, *, corpus: bool = False) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator registering a scorer under ``name`` (``corpus=True``: scored once per bucket)."""
    return METRICS.register(name, corpus=corpus)


@register_metric("acc")
def _acc_metric(text: str, answers: Sequence[str], spec: MetricSpec) -> float:
    return acc(text, answers)


@register_metric("exact_match")
def _exact_match_metric(text: str, answers: Sequence[str], spec: MetricSpec) -> float:
    gold = [a.split(spec.gold_stop)[0] for a in answers] if spec.gold_stop else list(answers)
    return exact_match(text, gold)


@register_metric("set_f1")
def _set_f1_metric(text: str, answers: Sequence[str], spec: MetricSpec) -> float:
    if not answers:
        raise ValueError("set_f1 needs a gold answer")
    return set_f1(split_ids(text, spec.id_sep, spec.id_stop), split_ids(answers[0], spec.id_sep, spec.gold_stop))


@register_metric("rouge")
def _rouge_metric(text: str, answers: Sequence[str], spec: MetricSpec) -> float:
    return rouge_l_recall(text, answers, spec.lang)


@register_metric("bleu", corpus=True)
def _bleu_metric(texts: Sequence[str], answer_lists: Sequence[Sequence[str]], spec: MetricSpec) -> float:
    return corpus_bleu(list(texts), [list(a) for a in answer_lists], spec.lang)


def prepare(spec: MetricSpec, prediction: str) -> str:
    """The response as the metric sees it: quoted span (``spec.quoted``), then cut at the end tokens."""
    if spec.quoted and '"' in prediction:
        prediction = prediction.split('"')[1].strip()
    return cut_at(prediction, spec.end_tokens)


def score(spec: MetricSpec, prediction: str, answers: Sequence[str]) -> float:
    """Score one response (corpus metrics such as BLEU: the corpus score of this single pair)."""
    fn = METRICS.get(spec.metric)
    text = prepare(spec, prediction)
    if spec.corpus:
        return fn([text], [list(answers)], spec)
    return fn(text, answers, spec)


def bucket_scores(spec: MetricSpec, items: Iterable[tuple[int, str, Sequence[str]]]) -> dict[int, float]:
    """Aggregate ``(length_bucket, prediction, answers)`` items per bucket as the reference does.

    Mean item score per bucket; corpus metrics (BLEU) get one corpus score per bucket.
    """
    grouped: dict[int, list[tuple[str, Sequence[str]]]] = {}
    for bucket, pred, answers in items:
        grouped.setdefault(int(bucket), []).append((pred, answers))
    out: dict[int, float] = {}
    for bucket in sorted(grouped):
        pairs = grouped[bucket]
        if spec.corpus:
            out[bucket] = METRICS.get(spec.metric)([prepare(spec, p) for p, _ in pairs], [list(a) for _, a in pairs],
                                                   spec)
        else:
            out[bucket] = sum(score(spec, p, a) for p, a in pairs) / len(pairs)
    return out
