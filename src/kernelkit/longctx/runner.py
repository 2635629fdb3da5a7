"""Resumable evaluation: records -> backend -> an append-only results file.

Each result line is keyed by (model, task, bucket, sample id, generation parameters). A rerun reads
the file and skips keys already there; lines are appended one at a time with fsync, and a torn last
line (a kill during a write) is cut off before appending, so a kill -9 loses at most the batch in
flight and never duplicates a line. Failed generations go to ``errors.jsonl`` next to the results and
are retried on the next run; they are never recorded as answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from kernelkit.console import ProgressBar
from kernelkit.longctx.backends.base import TRUNCATION_POLICIES, Request, Result
from kernelkit.longctx.records import Record
from kernelkit.longctx.results_lock import check_shard_owner, sole_writer
from kernelkit.longctx.shards import ShardPlan, write_plan
from kernelkit.longctx.tasks import task_metric
from kernelkit.utils.io import append_jsonl, read_jsonl, repair_jsonl_tail

#: Output budget per metric family. The reference uses the bucket size (8000 new tokens at 8k). Here a
#: generation also ends as soon as its cut answer is final (see :func:`stop_marks`), so the budget only
#: binds for an answer that runs on without any end token; such rows are recorded with ``stop="length"``.
MAX_NEW_TOKENS = {"acc": 96, "exact_match": 32, "set_f1": 160, "rouge": 256, "bleu": 256}


def default_max_new_tokens(task: str) -> int:
    try:
        return MAX_NEW_TOKENS[task_metric(task).metric]
    except KeyError:
        return 64


def stop_marks(task: str) -> tuple[str, ...]:
    """The stop marks of ``task`` (its metric spec's :attr:`~kernelkit.longctx.metrics.MetricSpec.stop_marks`);
    empty for a task the registry does not know."""
    try:
        return task_metric(task).stop_marks
    except KeyError:
        return ()


@dataclass(frozen=True)
class GenParams:
    """Generation settings that are part of a result's key (changing them starts fresh results)."""

    max_new_tokens: int | None = None  # None: per-task default
    chat_template: bool = False
    truncation: str = "middle"
    stop_at_cut: bool = True  # end a generation once its cut answer is final (same score, fewer tokens)
    bucket_budget: bool = False  # budget = the record's bucket size, as the reference (when max_new_tokens is None)

    def __post_init__(self) -> None:
        if self.truncation not in TRUNCATION_POLICIES:
            raise ValueError(f"unknown truncation policy {self.truncation!r}; expected one of {TRUNCATION_POLICIES}")

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def result_key(model: str, task: str, bucket: int, sample_id: str, params: GenParams) -> str:
    return f"{model}|{task}|{bucket}|{sample_id}|{params.digest()}"


#: The fields every result row holds (what scoring reads).
RESULT_FIELDS = ("key", "model", "task", "bucket", "prediction", "answers")


def load_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Result rows of a results file, first occurrence per key; a malformed inner line names file:line.

    A missing file has no rows. A directory, a file that is not UTF-8 text or rows that are not results
    (e.g. a records file: no ``key``, ``model`` or ``prediction``) raise :class:`ValueError` naming the file.
    """
    path = Path(path)
    if not path.exists():
        return []
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected a results file written by `kernelkit m4le run`")
    try:
        parsed = read_jsonl(path)  # a torn last line (interrupted append) is skipped
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, expected a results file written by `kernelkit m4le run`") from None
    rows: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(parsed, start=1):
        missing = [k for k in RESULT_FIELDS if k not in row] if isinstance(row, dict) else list(RESULT_FIELDS)
        if missing:
            raise ValueError(f"{path}: row {i} is not a result (missing {', '.join(missing)}); expected a results "
                             "file written by `kernelkit m4le run`")
        rows.setdefault(row["key"], row)
    return list(rows.values())


@dataclass
class RunSummary:
    results_path: str
    total: int = 0
    skipped: int = 0
    generated: int = 0
    errors: int = 0
    truncated: int = 0
    budget_spent: int = 0  # answers that hit max_new_tokens before their cut was final (or before eos)
    seconds: float = 0.0
    error_messages: list[str] = field(default_factory=list)


def select(records: Sequence[Record], limit: int | None = None, tasks: Sequence[str] | None = None,
           buckets: Sequence[int] | None = None, abilities: Sequence[str] | None = None,
           task: str | None = None) -> list[Record]:
    """Records of the chosen tasks, buckets and abilities, at most ``limit`` per (task, bucket), in file order.

    A record's task is ``extras["task"]``, else ``task`` (official files); task names may be config names or
    the reference's keys. Its ability is ``extras["ability"]``, else its registered task's.
    """
    from kernelkit.longctx.tasks import task_def

    def canonical(name: str) -> str:
        try:
            return task_def(name).name
        except KeyError:
            return name

    def ability_of(name: str) -> str | None:
        try:
            return task_def(name).ability
        except KeyError:
            return None

    wanted_tasks = {canonical(t) for t in tasks} if tasks else None
    seen: dict[tuple[str, int], int] = {}
    out = []
    for rec in records:
        name = rec.extras.get("task", task) or ""
        if wanted_tasks is not None and canonical(name) not in wanted_tasks:
            continue
        if buckets and rec.length_bucket not in buckets:
            continue
        if abilities and (rec.extras.get("ability") or ability_of(name)) not in abilities:
            continue
        group = (name, rec.length_bucket)
        if limit is not None and seen.get(group, 0) >= limit:
            continue
        seen[group] = seen.get(group, 0) + 1
        out.append(rec)
    return out


def run_records(records: Sequence[Record], backend: Any, results_path: str | os.PathLike[str],
                params: GenParams = GenParams(), model: str | None = None, batch_size: int = 1,
                progress: bool | Callable[[int, int], None] = True, task: str | None = None,
                shard: ShardPlan | None = None) -> RunSummary:
    """Generate answers for ``records`` not yet in ``results_path`` and append them.

    ``task`` names the config for records without ``extras["task"]`` (official files). ``progress``:
    True shows a progress bar with ETA; a callable gets ``(done, total)``. With ``shard`` (``records`` being
    one shard of a selection, :func:`kernelkit.longctx.shards.split`), its plan with the result keys of
    ``records`` is written next to the results file before any answer.

    The process holds the results file while it runs (:func:`kernelkit.longctx.results_lock.sole_writer`): a
    file another process is writing, or one holding another shard's answers, raises
    :class:`~kernelkit.longctx.results_lock.ResultsInUseError` before anything is generated.
    """
    with sole_writer(results_path) as path:
        check_shard_owner(path, shard.shard if shard is not None else None)
        return _run_held(records, backend, path, params, model, batch_size, progress, task, shard)


def _run_held(records: Sequence[Record], backend: Any, path: Path, params: GenParams, model: str | None,
              batch_size: int, progress: bool | Callable[[int, int], None], task: str | None,
              shard: ShardPlan | None) -> RunSummary:
    """:func:`run_records` on a results file this process holds."""
    errors_path = path.with_name(path.stem + ".errors.jsonl")
    repair_jsonl_tail(path)
    repair_jsonl_tail(errors_path)
    done = {row["key"] for row in load_results(path)}
    model = str(model or getattr(backend, "name", "model"))
    todo: list[tuple[str, Record, str]] = []
    planned: list[str] = []
    for rec in records:
        name = rec.extras.get("task", task)
        if not name:
            raise ValueError(f"record {rec.sample_id} has no task; pass task=")
        key = result_key(model, name, rec.length_bucket, rec.sample_id, params)
        if key not in done:
            todo.append((key, rec, name))
            done.add(key)  # duplicates within the input are generated once
        planned.append(key)
    if shard is not None:
        write_plan(path, replace(shard, keys=list(dict.fromkeys(planned))))
    summary = RunSummary(str(path), total=len(records), skipped=len(records) - len(todo))
    t0 = time.perf_counter()
    with ProgressBar("m4le generate", total=len(todo), disable=progress is not True) as bar:
        for start in range(0, len(todo), max(1, batch_size)):
            chunk = todo[start:start + max(1, batch_size)]
            requests = [Request(key, rec.prompt, params.max_new_tokens or (rec.length_bucket if params.bucket_budget
                                                                            else default_max_new_tokens(name)),
                                stop_marks(name) if params.stop_at_cut else ())
                        for key, rec, name in chunk]
            results = backend.generate(requests)
            for (key, rec, name), res, req in zip(chunk, results, requests, strict=True):
                _store(path, errors_path, key, rec, name, res, req, model, params, summary)
            bar.advance(len(chunk))
            if callable(progress):
                progress(start + len(chunk), len(todo))
    summary.seconds = time.perf_counter() - t0
    return summary


def _store(path: Path, errors_path: Path, key: str, rec: Record, task: str, res: Result, req: Request, model: str,
           params: GenParams, summary: RunSummary) -> None:
    base = {"key": key, "model": model, "task": task, "bucket": rec.length_bucket, "sample_id": rec.sample_id,
            "gen": {**asdict(params), "max_new_tokens": req.max_new_tokens}}
    if not res.ok:
        summary.errors += 1
        summary.error_messages.append(f"{rec.sample_id}: {res.error}")
        append_jsonl(errors_path, {**base, "error": res.error, "time": time.time()})
        return
    summary.generated += 1
    summary.truncated += int(res.truncated)
    summary.budget_spent += int(res.info.get("stop") == "length")
    row = {**base, "prediction": res.text, "answers": rec.answers, "prompt_tokens": res.prompt_tokens,
           "truncated": res.truncated, "ability": rec.extras.get("ability"), "stop": res.info.get("stop")}
    if "prompt_tokens_before_cut" in res.info:
        row["prompt_tokens_before_cut"] = res.info["prompt_tokens_before_cut"]
    append_jsonl(path, row)
