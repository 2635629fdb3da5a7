"""Builder patterns shared by the adapters of the official M4LE sources.

An adapter reads its source into :class:`Item` records; one of the patterns below turns them into
instances of one ability. Every pattern takes a :class:`Prompt` (instruction, how an item and the
question are written, an optional one-shot demonstration, how the gold answer is written), so a new
source of an existing shape is an adapter plus a prompt.

=========================  ========================================================================
pattern                    instance
=========================  ========================================================================
:func:`explicit_single`    labelled items (hex IDs or ordinals); the question names one label
:func:`explicit_multiple`  labelled items with classes; the answer lists the IDs of one class
:func:`semantic_count`     items with classes; the answer counts the items of one class
:func:`semantic_single`    numbered items; the question names one item by its key (title, keywords)
:func:`continuation`       a query paragraph and candidates; the answer is the continuing one's ID
:func:`natural`            one naturally long document (global ability)
=========================  ========================================================================
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kernelkit.longctx.length import text_length
from kernelkit.longctx.records import Record
from kernelkit.longctx.tasks.base import BuildContext, fit_concatenated, fit_natural, hex_id, make_record

Builder = Callable[[Any, BuildContext], list[Record]]


@dataclass
class Item:
    """One source item in the builders' schema.

    Attributes:
        text: the item as it appears in the context (article, passage, review, document).
        answers: the gold answers when this item is the target (class, summary, span, translation).
        key: what a semantic question names the item by (title, keywords, topic).
        question: a question about the item (QA sources).
        label: the item's class (classification and counting sources).
    """

    text: str
    answers: list[str] = field(default_factory=list)
    key: str = ""
    question: str = ""
    label: str = ""


@dataclass(frozen=True)
class Prompt:
    """How one task writes its instances (``str.format`` templates).

    ``item`` gets ``label``, ``text`` and ``key``; ``question`` (and ``header``, written before the items) gets
    ``label`` (the target's label), ``key``, ``question``, ``n`` (item count) and ``cls`` (target class);
    ``answer`` gets ``answer`` and ``label``.
    """

    instruction: str
    item: str
    question: str
    demo: str = ""
    answer: str = "{answer}"
    joiner: str = "\n"
    header: str = ""


def _body(ctx: BuildContext, prompt: Prompt, context: str, **fields: Any) -> str:
    """Header, items, question (and the demonstration first when one-shot)."""
    body = context + prompt.joiner + prompt.question.format(**fields)
    if prompt.header:
        body = prompt.header.format(**fields) + prompt.joiner + body
    return prompt.demo + "\n\n" + body if ctx.one_shot and prompt.demo else body


def mean_length(texts: Sequence[str], lang: str, k: int = 400) -> float:
    """Mean length of (a spread sample of) ``texts``."""
    if not texts:
        return 1.0
    return statistics.fmean(text_length(t, lang) for t in texts[:: max(1, len(texts) // k)])


def _overhead(prompt: Prompt, lang: str) -> int:
    return text_length(" ".join((prompt.instruction, prompt.demo, prompt.header, prompt.question)), lang) + 10


def _item_length(items: Sequence[Item], prompt: Prompt, lang: str) -> float:
    return mean_length([i.text + " " + i.key for i in items], lang) + text_length(
        prompt.item.format(label="X", text="", key=""), lang)


def explicit_single(prompt: Prompt, labels: str = "hex", distinct: bool = True) -> Builder:
    """Items labelled by 6-digit hex IDs (``labels="hex"``) or ordinals from 1; the question names the
    gold item's label and the answer is the gold item's ``answers``. ``distinct``: distractors never
    repeat the gold text."""

    def build(items: list[Item], ctx: BuildContext) -> list[Record]:
        def make(n_items: int, gold: int, k: int) -> Record | None:
            if n_items > len(items):
                return None
            target = ctx.rng.choice(items)
            pool = ctx.rng.sample(items, min(len(items), n_items + 5))
            docs = [d for d in pool if not (distinct and d.text == target.text) and d is not target][: n_items - 1]
            if len(docs) < n_items - 1:
                return None
            docs.insert(gold, target)
            taken: set[str] = set()
            names = [hex_id(ctx.rng, taken) if labels == "hex" else str(i) for i, _ in enumerate(docs, 1)]
            context = "\n".join(prompt.item.format(label=n, text=d.text, key=d.key)
                                 for n, d in zip(names, docs, strict=True))
            body = _body(ctx, prompt, context, label=names[gold], key=target.key, question=target.question,
                         n=len(docs), cls="")
            answers = [prompt.answer.format(answer=a, label=names[gold]) for a in target.answers]
            return make_record(ctx, prompt.instruction, body, answers, gold_index=gold, n_items=len(docs))

        return fit_concatenated(ctx, _item_length(items, prompt, ctx.lang), _overhead(prompt, ctx.lang), make)

    return build


def explicit_multiple(prompt: Prompt, sep: str, stop: str) -> Builder:
    """Items labelled by hex IDs; the question names one class present in the context and the answer
    lists the IDs of all its items, joined by ``sep`` and closed by ``stop`` (e.g. ``"A, B."``)."""

    def build(items: list[Item], ctx: BuildContext) -> list[Record]:
        def make(n_items: int, gold: int, k: int) -> Record | None:
            if n_items > len(items):
                return None
            rows = ctx.rng.sample(items, n_items)
            taken: set[str] = set()
            ids = [hex_id(ctx.rng, taken) for _ in rows]
            cls = rows[gold].label
            members = [i for i, r in zip(ids, rows, strict=True) if r.label == cls]
            context = "\n".join(prompt.item.format(label=i, text=r.text, key=r.key)
                                 for i, r in zip(ids, rows, strict=True))
            body = _body(ctx, prompt, context, label="", key="", question="", n=n_items, cls=cls)
            return make_record(ctx, prompt.instruction, body, [sep.join(members) + stop], n_items=n_items,
                               n_gold=len(members), target_class=cls)

        return fit_concatenated(ctx, _item_length(items, prompt, ctx.lang), _overhead(prompt, ctx.lang), make)

    return build


def semantic_count(prompt: Prompt, stop: str) -> Builder:
    """Items of several classes; the answer counts the items of one class (``"3."``). As in the
    reference, the count cycles through ``1 .. max(min(6, n - 2), 2)`` and no distractor shares the
    target class."""

    def build(items: list[Item], ctx: BuildContext) -> list[Record]:
        by_class: dict[str, list[Item]] = {}
        for it in items:
            by_class.setdefault(it.label, []).append(it)
        classes = sorted(by_class)
        if len(classes) < 2:
            raise ValueError(f"{ctx.task}: counting needs items of at least two classes, got {classes}")

        def make(n_items: int, gold: int, k: int) -> Record | None:
            cls = classes[k % len(classes)]
            max_count = max(min(6, n_items - 2), 2)
            count = min(1 + k % max_count, n_items, len(by_class[cls]))
            others = [it for it in items if it.label != cls]
            if n_items - count > len(others):
                return None
            rows = ctx.rng.sample(by_class[cls], count) + ctx.rng.sample(others, n_items - count)
            ctx.rng.shuffle(rows)
            context = "\n".join(prompt.item.format(label=i, text=r.text, key=r.key) for i, r in enumerate(rows, 1))
            body = _body(ctx, prompt, context, label="", key="", question="", n=n_items, cls=cls)
            return make_record(ctx, prompt.instruction, body, [f"{count}{stop}"], n_items=n_items, target_class=cls)

        return fit_concatenated(ctx, _item_length(items, prompt, ctx.lang), _overhead(prompt, ctx.lang), make)

    return build


def semantic_single(prompt: Prompt, rule: Any = "range") -> Builder:
    """Items numbered from 1 (``label``); the question names the gold item by its ``key`` or asks its
    ``question``; distractors have other keys. The answer template may use the gold ``label``."""

    def build(items: list[Item], ctx: BuildContext) -> list[Record]:
        def make(n_items: int, gold: int, k: int) -> Record | None:
            if n_items > len(items):
                return None
            target = ctx.rng.choice(items)
            pool = ctx.rng.sample(items, min(len(items), n_items + 5))
            docs = [d for d in pool if d.key != target.key and d.text != target.text][: n_items - 1]
            if len(docs) < n_items - 1:
                return None
            docs.insert(gold, target)
            context = "\n".join(prompt.item.format(label=i, text=d.text, key=d.key) for i, d in enumerate(docs, 1))
            body = _body(ctx, prompt, context, label=gold + 1, key=target.key, question=target.question,
                         n=len(docs), cls="")
            answers = [prompt.answer.format(answer=a, label=gold + 1) for a in target.answers]
            return make_record(ctx, prompt.instruction, body, answers, gold_index=gold, n_items=len(docs))

        return fit_concatenated(ctx, _item_length(items, prompt, ctx.lang), _overhead(prompt, ctx.lang), make,
                                rule=rule)

    return build


def continuation(prompt: Prompt) -> Builder:
    """NLI-style retrieval over ``{title: [paragraphs]}``: a query paragraph and candidates labelled by hex
    IDs, one of which is the paragraph that follows it in its article (the gold); distractors come from
    other articles. The answer is the gold candidate's ID."""

    def build(topics: dict[str, list[str]], ctx: BuildContext) -> list[Record]:
        titles = sorted(t for t, paras in topics.items() if len(paras) >= 2)
        if len(titles) < 2:
            raise ValueError(f"{ctx.task}: need at least two articles with two paragraphs")

        def make(n_items: int, gold: int, k: int) -> Record:
            query_topic = ctx.rng.choice(titles)
            others = [t for t in titles if t != query_topic]
            paras = topics[query_topic]
            i = ctx.rng.randrange(len(paras) - 1)
            taken: set[str] = set()
            answer = hex_id(ctx.rng, taken)
            candidates = [prompt.item.format(label=hex_id(ctx.rng, taken), text=ctx.rng.choice(topics[t]), key=t)
                          for t in (ctx.rng.choice(others) for _ in range(n_items - 1))]
            candidates.insert(gold, prompt.item.format(label=answer, text=paras[i + 1], key=query_topic))
            body = _body(ctx, prompt, "\n".join(candidates), label="", key="", question=paras[i], n=n_items, cls="")
            return make_record(ctx, prompt.instruction, body, [answer], gold_index=gold, n_items=len(candidates))

        sample = [p for t in titles[:100] for p in topics[t][:2]]
        item_length = mean_length(sample, ctx.lang) + text_length(
            prompt.item.format(label="X", text="", key=""), ctx.lang)
        return fit_concatenated(ctx, item_length, _overhead(prompt, ctx.lang), make)

    return build


def natural(prompt: Prompt) -> Builder:
    """One naturally long document per instance (``prompt.item`` gets ``text``; ``prompt.question`` gets
    ``question`` and ``key``); documents are kept in the first bucket whose bound exceeds their length."""

    def build(items: list[Item], ctx: BuildContext) -> list[Record]:
        def maker(it: Item) -> Callable[[], Record]:
            def make() -> Record:
                context = prompt.item.format(label="", text=it.text, key=it.key)
                body = _body(ctx, prompt, context, label="", key=it.key, question=it.question, n=1, cls="")
                answers = [prompt.answer.format(answer=a, label="") for a in it.answers]
                return make_record(ctx, prompt.instruction, body, answers)
            return make

        return fit_natural(ctx, [maker(it) for it in items])

    return build
