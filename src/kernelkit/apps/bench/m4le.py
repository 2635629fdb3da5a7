"""Benchmarks: M4LE scoring and inference side by side with the official scripts."""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from kernelkit.apps.bench import BenchContext, register_benchmark


def _fuzz_rows(task: str, n: int, rng: random.Random) -> list[dict]:
    """Predictions/answers exercising a task's cut, metric and bucketing (deterministic)."""
    from kernelkit.longctx.tasks import task_metric

    spec = task_metric(task)
    words = "the cat sat on a mat . dog ran Paris London 42 3.5 and , in of to"
    en = [*words.split(" "), "\n"]
    zh = list("我爱北京天安门，。今天天气很好新闻是的了") + ["\n", "新闻"]
    ids = ["A1B2C3", "FFEE01", "0099AA", "12AB34"]
    rows = []
    for i in range(n):
        bucket = (1000, 2000)[i % 2]
        if spec.metric == "set_f1":
            sep, stop = (",", ".") if spec.lang == "en" else ("，", "。")
            gold = sep.join(rng.sample(ids, rng.randint(1, 3))) + stop
            pred = sep.join(rng.sample(ids, rng.randint(1, 3))) + rng.choice([stop, stop + " more", ""])
            answers = [gold]
        else:
            vocab = en if spec.lang == "en" else zh
            joiner = " " if spec.lang == "en" else ""
            answers = [joiner.join(rng.choice(vocab) for _ in range(rng.randint(1, 8)))
                       for _ in range(rng.randint(1, 2))]
            pred = rng.choice([joiner.join(rng.choice(vocab) for _ in range(rng.randint(0, 14))),
                               answers[0] + joiner + rng.choice(vocab), "\n" + answers[0], '"' + answers[0] + '"'])
        rows.append({"instruction": "", "input": "", "answers": answers, "input_length": 0, "total_length": 0,
                     "length_bucket": bucket, "gen_resp": pred})
    return rows


@register_benchmark("m4le_reference", title="M4LE scoring and inference vs the official scripts")
def bench_reference(ctx: BenchContext) -> None:
    from kernelkit.apps.bench import m4le_reference as reference
    from kernelkit.longctx.tasks import TASKS, bucket_scores

    ref, why = reference.find_reference()
    if ref is None:
        ctx.record("official M4LE scripts", None, None, "KwanWaiChung/M4LE", skipped=why)
        return
    rng = random.Random(0)
    n = 40 if ctx.quick else 200
    # official configs the reference scores under their HF names (those with a reference key of their own it
    # silently skips)
    tasks = [e.name for e in TASKS.entries() if e.obj.official and e.obj.reference_key is None]
    rows = {t: _fuzz_rows(t, n, rng) for t in tasks}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for t in tasks:
            reference.write_outputs(work, "fuzz", t, rows[t])
        ref_scores, ref_s = reference.run_evaluation(ref, work)
        ours_s = _score_in_subprocess(work, tasks)  # measured like the reference: process start, imports, files
    t0 = time.perf_counter()
    ours = {t: bucket_scores(t, [(r["length_bucket"], r["gen_resp"], r["answers"]) for r in rows[t]]) for t in tasks}
    in_process_s = time.perf_counter() - t0
    diffs = [abs(ours[t][b] - v) for (m, t, b), v in ref_scores.items() if m == "fuzz"]
    ctx.record(f"evaluation.py on {len(tasks)} configs x {n} fuzzed answers", ours_s, ref_s, "official evaluation.py",
               timing="both sides: one new process each, start + imports + reading the output files + scoring",
               kernelkit_in_process_s=round(in_process_s, 4), compared=len(diffs),
               max_abs_diff=max(diffs) if diffs else None,
               missing=sorted({t for t in tasks} - {t for (_m, t, _b) in ref_scores}))
    _inference_side_by_side(ctx, ref)


_SCORE_CHILD = r"""
import json, sys
from pathlib import Path
from kernelkit.longctx.tasks import bucket_scores
work, tasks = Path(sys.argv[1]), sys.argv[2:]
for t in tasks:
    rows = [json.loads(line) for line in (work / "outputs" / "fuzz" / f"{t}.jsonl").read_text("utf-8").splitlines()]
    bucket_scores(t, [(r["length_bucket"], r["gen_resp"], r["answers"]) for r in rows])
"""


def _score_in_subprocess(work: Path, tasks: list[str]) -> float:
    """Seconds for a new Python process to import kernelkit, read the reference-layout outputs and score them."""
    import subprocess
    import sys

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _SCORE_CHILD, str(work), *tasks], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"kernelkit scoring subprocess failed: {proc.stderr[-2000:]}")
    return seconds


def _inference_side_by_side(ctx: BenchContext, ref) -> None:
    """Official inference.py + evaluation.py vs ``kernelkit m4le run`` on the same built records and model.

    Settings: :meth:`~kernelkit.apps.bench.m4le_reference.SideBySideSettings.from_env` (the ``M4LE_SIDE_*``
    variables; quick mode: nq-open only); the model is ``$M4LE_REFERENCE_MODEL``, the data ``$KERNELKIT_DATA``.
    """
    import os

    from kernelkit.apps.bench import m4le_reference as reference

    model_dir = os.environ.get("M4LE_REFERENCE_MODEL")  # an HF folder both transformers versions load
    data_root = os.environ.get("KERNELKIT_DATA")
    if not model_dir or not data_root:
        ctx.record("inference side by side", None, None, "official inference.py",
                   skipped="set M4LE_REFERENCE_MODEL (HF model folder) and KERNELKIT_DATA to compare inference")
        return
    settings = reference.SideBySideSettings.from_env(ctx.quick)
    budget = "bucket" if settings.bucket_budget else "task"
    for row in reference.side_by_side(ref, model_dir, data_root, settings):
        if "skipped" in row:
            ctx.record(f"inference {row['config']}", None, None, "official inference.py", skipped=row["skipped"])
            continue
        ctx.record(f"inference {row['config']}: {row['records']} records at {row['bucket']}, {Path(model_dir).name} "
                   f"official float16, kernelkit {settings.dtype}, kernelkit budget: {budget}, "
                   f"kernelkit batch {settings.batch_size}",
                   row["kernelkit s"], row["official s"],
                   "official inference.py + evaluation.py",
                   **{k: v for k, v in row.items() if k not in ("config", "kernelkit s", "official s", "ratio")})
