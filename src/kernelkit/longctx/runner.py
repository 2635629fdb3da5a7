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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kernelkit.longctx.backends.base import TRUNCATION_POLICIES, Request, Result
from kernelkit.longctx.metrics import task_metric
from kernelkit.longctx.records import Record

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
    """The marks the metric of ``task`` cuts a response at, in order (empty: the whole response counts).

    End tokens first, then the list stop of set-F1 tasks. A task that first extracts a quoted span
    (news2016) gets none: a later quote can still change what is scored.
    """
    try:
        spec = task_metric(task)
    except KeyError:
        return ()
    if spec.quoted:
        return ()
    marks = tuple(spec.end_tokens)
    if spec.metric == "set_f1" and spec.id_stop:
        marks += (spec.id_stop,)
    return marks


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


def repair_tail(path: Path) -> int:
    """Cut a torn final line (no trailing newline) off ``path``; returns the bytes removed."""
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return 0
        f.seek(0)
        data = f.read()
        keep = data.rfind(b"\n") + 1
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return size - keep


def _append(path: Path, row: dict[str, Any]) -> None:
    line = json.dumps(row, ensure_ascii=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def load_results(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Result rows of a results file, first occurrence per key; a malformed inner line names file:line."""
    path = Path(path)
    rows: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines):  # torn last line of an interrupted run
                break
            raise ValueError(f"{path}:{i}: malformed result line ({exc.msg})") from None
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
           buckets: Sequence[int] | None = None) -> list[Record]:
    """Records of the chosen tasks/buckets, at most ``limit`` per (task, bucket), in file order."""
    seen: dict[tuple[str, int], int] = {}
    out = []
    for rec in records:
        task = rec.extras.get("task", "")
        if tasks and task not in tasks:
            continue
        if buckets and rec.length_bucket not in buckets:
            continue
        group = (task, rec.length_bucket)
        if limit is not None and seen.get(group, 0) >= limit:
            continue
        seen[group] = seen.get(group, 0) + 1
        out.append(rec)
    return out


def run_records(records: Sequence[Record], backend: Any, results_path: str | os.PathLike[str],
                params: GenParams = GenParams(), model: str | None = None, batch_size: int = 1,
                progress: bool | Callable[[int, int], None] = True, task: str | None = None) -> RunSummary:
    """Generate answers for ``records`` not yet in ``results_path`` and append them.

    ``task`` names the config for records without ``extras["task"]`` (official files). ``progress``:
    True shows a progress bar with ETA; a callable gets ``(done, total)``.
    """
    path = Path(results_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    errors_path = path.with_name(path.stem + ".errors.jsonl")
    repair_tail(path)
    repair_tail(errors_path)
    done = {row["key"] for row in load_results(path)}
    model = str(model or getattr(backend, "name", "model"))
    todo: list[tuple[str, Record, str]] = []
    for rec in records:
        name = rec.extras.get("task", task)
        if not name:
            raise ValueError(f"record {rec.sample_id} has no task; pass task=")
        key = result_key(model, name, rec.length_bucket, rec.sample_id, params)
        if key not in done:
            todo.append((key, rec, name))
            done.add(key)  # duplicates within the input are generated once
    summary = RunSummary(str(path), total=len(records), skipped=len(records) - len(todo))
    t0 = time.perf_counter()
    bar = _progress_bar(len(todo)) if progress is True else None
    try:
        for start in range(0, len(todo), max(1, batch_size)):
            chunk = todo[start:start + max(1, batch_size)]
            requests = [Request(key, rec.prompt, params.max_new_tokens or (rec.length_bucket if params.bucket_budget
                                                                            else default_max_new_tokens(name)),
                                stop_marks(name) if params.stop_at_cut else ())
                        for key, rec, name in chunk]
            results = backend.generate(requests)
            for (key, rec, name), res, req in zip(chunk, results, requests, strict=True):
                _store(path, errors_path, key, rec, name, res, req, model, params, summary)
            if bar is not None:
                bar[0].advance(bar[1], len(chunk))
            elif callable(progress):
                progress(start + len(chunk), len(todo))
    finally:
        if bar is not None:
            bar[0].stop()
    summary.seconds = time.perf_counter() - t0
    return summary


def _store(path: Path, errors_path: Path, key: str, rec: Record, task: str, res: Result, req: Request, model: str,
           params: GenParams, summary: RunSummary) -> None:
    base = {"key": key, "model": model, "task": task, "bucket": rec.length_bucket, "sample_id": rec.sample_id,
            "gen": {**asdict(params), "max_new_tokens": req.max_new_tokens}}
    if not res.ok:
        summary.errors += 1
        summary.error_messages.append(f"{rec.sample_id}: {res.error}")
        _append(errors_path, {**base, "error": res.error, "time": time.time()})
        return
    summary.generated += 1
    summary.truncated += int(res.truncated)
    summary.budget_spent += int(res.info.get("stop") == "length")
    _append(path, {**base, "prediction": res.text, "answers": rec.answers, "prompt_tokens": res.prompt_tokens,
                   "truncated": res.truncated, "ability": rec.extras.get("ability"), "stop": res.info.get("stop")})


def _progress_bar(total: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from kernelkit.console import console

    bar = Progress(TextColumn("m4le"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
                   TimeRemainingColumn(), console=console, transient=True)
    bar.start()
    return bar, bar.add_task("generate", total=total)
