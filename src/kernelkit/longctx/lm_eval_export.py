"""M4LE records as lm-evaluation-harness tasks, scored by kernelkit's own scorers.

:func:`export_lm_eval` writes, into one folder, a task YAML per (task, bucket) named ``m4le_<task>_<bucket>``
(tagged ``m4le``; ``--tasks 'm4le_nq_open_*'`` picks one task's buckets), the records of each under ``data/``
and a ``utils.py`` whose ``process_results`` calls :func:`kernelkit.longctx.tasks.score` (the exact M4LE scorer
of the task: its quoted span, end-token cut and metric). ``lm_eval --include_path DIR --tasks 'm4le_*'`` then
runs the same evaluation as ``kernelkit m4le run`` + ``m4le score``: the prompt is the record's prompt,
generation is greedy with the task's token budget, and the task score of a bucket is the mean item score
(corpus metrics such as BLEU: one corpus score per bucket), as :func:`kernelkit.longctx.tasks.bucket_scores`
computes it.

``until`` holds the task's first stop mark only, as the OpenAI client sends ``stop``: the scored answer is the
text before that mark's first occurrence, cut further by the later marks, so stopping there changes nothing
that is scored (sending every mark could cut too early).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kernelkit.longctx.records import Record
from kernelkit.longctx.runner import default_max_new_tokens
from kernelkit.longctx.tasks import task_def

#: The prefix of every exported task name (``lm_eval --tasks 'm4le_*'`` runs them all).
PREFIX = "m4le_"

UTILS_PY = '''"""Scoring of the M4LE tasks exported by `kernelkit m4le export-lm-eval`: kernelkit's own scorers."""

from kernelkit.longctx.tasks import bucket_scores, score, task_metric


def doc_to_text(doc):
    """The prompt exactly as `kernelkit m4le run` sends it (instruction, newline, input)."""
    return doc["prompt"]


def doc_to_target(doc):
    return doc["answers"][0] if doc["answers"] else ""


def process_results(doc, results):
    """The M4LE score of one answer; for a corpus metric (BLEU) the pair, scored per bucket by `corpus_score`."""
    prediction = results[0]
    if task_metric(doc["task"]).corpus:
        return {"score": (doc["task"], prediction, list(doc["answers"]))}
    return {"score": score(doc["task"], prediction, doc["answers"])}


def corpus_score(items):
    """One corpus score over the bucket's (task, prediction, answers) items."""
    task = items[0][0]
    return bucket_scores(task, [(0, prediction, answers) for _, prediction, answers in items])[0]
'''


@dataclass(frozen=True)
class ExportedTask:
    """One written lm-eval task: its name, the M4LE task and bucket it holds, how many records, its files."""

    name: str
    task: str
    bucket: int
    n: int
    yaml_path: Path
    data_path: Path
    max_gen_toks: int
    until: tuple[str, ...]


def lm_eval_name(task: str, bucket: int) -> str:
    """``m4le_<task>_<bucket>``: the task name in lower case with runs of other characters as ``_``."""
    return f"{PREFIX}{re.sub(r'[^0-9a-z]+', '_', task.lower()).strip('_')}_{bucket}"


def export_lm_eval(records: Sequence[Record], out_dir: str | os.PathLike[str], task: str | None = None,
                   max_new_tokens: int | None = None) -> list[ExportedTask]:
    """Write ``records`` as lm-eval tasks into ``out_dir`` (created; files of the same names are replaced).

    A record's task is ``extras["task"]``, else ``task`` (official files); it must be a registered task
    (config name or the reference's key; unknown names raise :class:`KeyError` with close matches), a record
    without one raises :class:`ValueError`. ``max_new_tokens`` defaults to the task's budget in
    ``kernelkit m4le run``. The data files are referenced by absolute path: export again after moving the folder.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: not a folder")
    groups: dict[tuple[str, int], list[Record]] = {}
    for rec in records:
        name = rec.extras.get("task", task)
        if not name:
            raise ValueError(f"record {rec.sample_id} has no task field; name its task")
        canonical = task_def(str(name)).name
        groups.setdefault((canonical, rec.length_bucket), []).append(rec)
    owners: dict[str, str] = {}
    for name, bucket in groups:
        other = owners.setdefault(lm_eval_name(name, bucket), name)
        if other != name:
            raise ValueError(f"tasks {other} and {name} would both be exported as {lm_eval_name(name, bucket)}")
    (out / "data").mkdir(parents=True, exist_ok=True)
    written = []
    for (name, bucket), recs in sorted(groups.items()):
        lm_name = lm_eval_name(name, bucket)
        data_path = (out / "data" / f"{lm_name}.jsonl").resolve()
        seen: set[str] = set()
        rows = []
        for rec in recs:
            if rec.sample_id in seen:  # as `m4le run`: a record given twice is answered once
                continue
            seen.add(rec.sample_id)
            rows.append({"prompt": rec.prompt, "answers": list(rec.answers), "task": name, "bucket": bucket,
                         "sample_id": rec.sample_id})
        _write(data_path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        spec = task_def(name).metric
        until = spec.stop_marks[:1]
        budget = max_new_tokens or default_max_new_tokens(name)
        yaml_path = out / f"{lm_name}.yaml"
        _write(yaml_path, task_yaml(lm_name, name, bucket, data_path, until, budget, spec.corpus))
        written.append(ExportedTask(lm_name, name, bucket, len(rows), yaml_path, data_path, budget, until))
    _write(out / "utils.py", UTILS_PY)
    return written


def task_yaml(lm_name: str, task: str, bucket: int, data_path: Path, until: Sequence[str], max_gen_toks: int,
              corpus: bool) -> str:
    """The lm-eval task config of one (task, bucket) (strings written as JSON, which YAML reads as they are)."""
    q = json.dumps
    aggregation = "!function utils.corpus_score" if corpus else "mean"
    return "\n".join([
        f"# M4LE {task}, bucket {bucket}: written by `kernelkit m4le export-lm-eval`; scored by kernelkit's scorer.",
        f"task: {q(lm_name)}",
        f"tag: [{q(PREFIX.rstrip('_'))}]",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {q(str(data_path))}",
        "test_split: test",
        "output_type: generate_until",
        "doc_to_text: !function utils.doc_to_text",
        "doc_to_target: !function utils.doc_to_target",
        "generation_kwargs:",
        f"  until: [{', '.join(q(s) for s in until)}]",
        f"  max_gen_toks: {max_gen_toks}",
        "  do_sample: false",
        "  temperature: 0.0",
        "process_results: !function utils.process_results",
        "metric_list:",
        "  - metric: score",
        f"    aggregation: {aggregation}",
        "    higher_is_better: true",
        "metadata:",
        "  version: 1.0",
        f"  m4le_task: {q(task)}",
        f"  m4le_bucket: {bucket}",
        "",
    ])


def _write(path: Path, text: str) -> None:
    from kernelkit.utils.io import write_text

    write_text(path, text)
