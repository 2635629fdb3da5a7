"""Task registry and the shared construction rules of M4LE instances.

A task is defined once, where it is registered: its source loader, builder and prompt, and how its
responses are scored (a :class:`~kernelkit.longctx.metrics.MetricSpec`: metric, language, end tokens /
stop marks). :func:`score`, :func:`bucket_scores`, :func:`prepare` and :func:`task_metric` look a task up
here by name (or by the reference's key for it) and apply its spec.

An M4LE instance concatenates short items from one source (gold plus sampled distractors), labels them
(6-digit uppercase hex IDs or ordinals), and ends with a question and an answer cue. The rules kept from
the reference: gold position cycles through :func:`~kernelkit.longctx.length.gold_positions`, a fixed
one-shot demonstration precedes the context, items are resampled until the instance fits its bucket
(an error after ``max_tries``). Unlike the reference every random choice comes from one
``random.Random`` seeded by ``(seed, task, bucket)``, so builds are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelkit.longctx import metrics
from kernelkit.longctx.length import BUCKETS, BucketRule, fits_bucket, gold_positions, text_length
from kernelkit.longctx.metrics import MetricSpec
from kernelkit.longctx.records import Record
from kernelkit.registry import Registry

ABILITIES = ("explicit_single", "semantic_single", "explicit_multiple", "semantic_multiple", "global")

#: Default instances per bucket and build seed (``build_task`` and ``kernelkit m4le build``).
DEFAULT_N = 200
DEFAULT_SEED = 111

#: Metric specs shared by many tasks: question answering (accuracy after the end-token cut) and summaries.
QA_EN = MetricSpec("acc", "en", ("\n", "."))
QA_ZH = MetricSpec("acc", "zh", ("\n", "。"))
SUM_EN = MetricSpec("rouge", "en", ("\n",))
SUM_ZH = MetricSpec("rouge", "zh", ("\n",))


class BucketFitError(RuntimeError):
    """No instance of the wanted bucket could be built from the source."""


@dataclass
class BuildContext:
    """What a builder gets for one bucket."""

    task: str
    bucket: int
    buckets: tuple[int, ...]
    n: int
    rng: random.Random
    lang: str
    one_shot: bool = True
    max_tries: int = 200


@dataclass(frozen=True)
class TaskDef:
    """A registered task: metadata, ``load(data_root) -> source``, ``build(source, ctx) -> records`` and
    ``metric`` (how its responses are scored; its stop marks are ``metric.stop_marks``).

    ``reference_key`` is the reference's name for the task where it differs from the Hugging Face config
    name (lookups accept either).
    """

    name: str
    ability: str
    task_type: str
    lang: str
    source: str
    official: bool
    load: Callable[[Path], Any]
    build: Callable[[Any, BuildContext], list[Record]]
    metric: MetricSpec
    note: str = ""
    data_files: tuple[str, ...] = field(default_factory=tuple)
    rule: BucketRule = "range"
    reference_key: str | None = None


TASKS: Registry[TaskDef] = Registry("m4le task", discover=("kernelkit.longctx.tasks",))


def register_task(name: str, *, ability: str, task_type: str, lang: str, source: str, official: bool,
                  load: Callable[[Path], Any], metric: MetricSpec, data_files: Sequence[str] = (), note: str = "",
                  rule: BucketRule = "range", reference_key: str | None = None):
    """Register ``build(source, ctx)`` as the builder of task ``name``, scored by ``metric``.

    ``rule`` is the bucket rule its instances satisfy: ``"range"`` for concatenations, ``"first_below"``
    for naturally long documents.
    """
    if ability not in ABILITIES:
        raise ValueError(f"unknown ability {ability!r}; expected one of {ABILITIES}")

    def deco(build: Callable[[Any, BuildContext], list[Record]]):
        TASKS.register(name, ability=ability, lang=lang, official=official, metric=metric.metric)(
            TaskDef(name, ability, task_type, lang, source, official, load, build, metric, note, tuple(data_files),
                    rule, reference_key))
        return build

    return deco


def task_def(name: str) -> TaskDef:
    """The task registered as ``name`` or whose ``reference_key`` is ``name``; unknown names raise with close
    matches."""
    if name not in TASKS:
        for entry in TASKS.entries():
            if entry.obj.reference_key == name:
                return entry.obj
    return TASKS.get(name)


def task_metric(name: str) -> MetricSpec:
    """How task ``name`` (config name or the reference's key) is scored."""
    return task_def(name).metric


def prepare(task: str, prediction: str) -> str:
    """The response of ``task`` as its metric sees it (quoted span, end-token cut)."""
    return metrics.prepare(task_metric(task), prediction)


def score(task: str, prediction: str, answers: Sequence[str]) -> float:
    """Score one response of ``task`` with its metric (corpus metrics: the corpus score of this single pair)."""
    spec = task_metric(task)
    try:
        return metrics.score(spec, prediction, answers)
    except ValueError as exc:
        raise ValueError(f"{task}: {exc}") from None


def bucket_scores(task: str, items: Iterable[tuple[int, str, Sequence[str]]]) -> dict[int, float]:
    """Per-bucket scores of ``(length_bucket, prediction, answers)`` items of ``task``, as the reference
    aggregates them (see :func:`kernelkit.longctx.metrics.bucket_scores`)."""
    spec = task_metric(task)
    try:
        return metrics.bucket_scores(spec, items)
    except ValueError as exc:
        raise ValueError(f"{task}: {exc}") from None


def task_rng(seed: int, task: str, bucket: int) -> random.Random:
    """The random stream of one (seed, task, bucket): independent of build order and of other tasks."""
    return random.Random(f"m4le:{seed}:{task}:{bucket}")


def build_task(name: str, data_root: str | Path | None = None, buckets: Sequence[int] = BUCKETS,
               n: int = DEFAULT_N, seed: int = DEFAULT_SEED, one_shot: bool = True, source: Any = None,
               skip_unfit: bool = True) -> list[Record]:
    """Build ``n`` instances per bucket of task ``name`` from its source under ``data_root``.

    ``source`` (already loaded data) overrides loading. Buckets the source cannot fill are skipped when
    ``skip_unfit`` (natural-length tasks rarely reach long buckets) and raise otherwise.
    """
    task = TASKS.get(name)
    if source is None:
        if data_root is None:
            raise ValueError(f"task {name!r}: give data_root or an already loaded source")
        source = task.load(Path(data_root))
    out: list[Record] = []
    ordered = tuple(sorted(buckets))
    for bucket in ordered:
        ctx = BuildContext(name, bucket, ordered, n, task_rng(seed, name, bucket), task.lang, one_shot)
        try:
            records = task.build(source, ctx)
        except BucketFitError:
            if not skip_unfit:
                raise
            continue
        for i, rec in enumerate(records):
            rec.extras.setdefault("task", name)
            rec.extras.setdefault("ability", task.ability)
            rec.extras.setdefault("id", f"{name}-{bucket}-{i:04d}")
        out += records
    return out


# ----------------------------------------------------------------------------------------------
# helpers used by the builders


def hex_id(rng: random.Random, taken: set[str] | None = None) -> str:
    """A fresh 6-digit uppercase hex label (unique within ``taken``, which is updated)."""
    while True:
        label = f"{rng.getrandbits(24):06X}"
        if taken is None or label not in taken:
            if taken is not None:
                taken.add(label)
            return label


def make_record(ctx: BuildContext, instruction: str, body: str, answers: list[str], **extras: Any) -> Record:
    """A record with M4LE lengths: ``input_length`` = instruction + input, ``total_length`` adds the longest answer."""
    input_length = text_length(instruction + "\n" + body, ctx.lang)
    longest = max((text_length(a, ctx.lang) for a in answers), default=0)
    return Record(instruction, body, answers, input_length, input_length + longest, ctx.bucket, dict(extras))


def fit_concatenated(ctx: BuildContext, item_length: float, overhead: int,
                     make: Callable[[int, int, int], Record | None], rule: BucketRule = "range") -> list[Record]:
    """Build ``ctx.n`` concatenation instances for ``ctx.bucket``.

    ``make(n_items, gold_index, k)`` draws one candidate (or ``None`` when the draw is unusable); it is
    retried until its ``total_length`` fits the bucket. The item count starts from the mean item length
    aimed at the middle of the bucket's range and is nudged after repeated misses.
    """
    from kernelkit.longctx.length import previous_bucket

    prev = previous_bucket(ctx.bucket, ctx.buckets)
    # aim at the middle of the lengths the rule accepts
    target = prev + (ctx.bucket - prev) * (0.75 if rule == "upper_half" else 0.5)
    n_items = max(1, round((target - overhead) / max(item_length, 1.0)))
    out: list[Record] = []
    for k in range(ctx.n):
        tried: list[int] = []
        draws = 0
        while True:
            gold = gold_positions(n_items)
            rec = make(n_items, gold[k % len(gold)], k)
            draws += 1
            if rec is not None and fits_bucket(rec.total_length, ctx.bucket, ctx.buckets, rule):
                out.append(rec)
                break
            if rec is not None:
                tried.append(rec.total_length)
            if draws > ctx.max_tries:
                seen = sorted(tried)
                raise BucketFitError(f"{ctx.task}: no instance within ({prev}, {ctx.bucket}] after "
                                     f"{ctx.max_tries} draws; lengths seen {seen[:3]}...{seen[-3:]}")
            if tried and len(tried) % 10 == 0:  # rescale the item count towards the middle of the range
                recent = sorted(tried[-10:])[5]
                scaled = round(n_items * (target - overhead) / max(recent - overhead, 1))
                step = 1 if recent < target else -1
                scaled = scaled if scaled != n_items else n_items + step
                n_items = max(1, min(scaled, 2 * n_items + 1, ctx.bucket))  # bounded growth
    return out


def fit_natural(ctx: BuildContext, candidates: Sequence[Callable[[], Record]],
                rule: BucketRule = "first_below") -> list[Record]:
    """Instances of naturally long documents that fall in ``ctx.bucket`` under ``rule`` (by default the
    first bucket with total < bucket).

    ``candidates`` are zero-argument record makers (the record's bucket field is set by this function);
    up to ``ctx.n`` are sampled from those that fit. Raises :class:`BucketFitError` when none fits.
    """
    fitting = []
    for make in candidates:
        rec = make()
        if fits_bucket(rec.total_length, ctx.bucket, ctx.buckets, rule):
            rec.length_bucket = ctx.bucket
            fitting.append(rec)
    if not fitting:
        raise BucketFitError(f"{ctx.task}: no document falls in the {ctx.bucket} bucket")
    if len(fitting) > ctx.n:
        fitting = ctx.rng.sample(fitting, ctx.n)
    return fitting
