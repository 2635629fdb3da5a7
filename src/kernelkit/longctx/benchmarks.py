"""Benchmarks: M4LE scoring and inference side by side with the official scripts."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kernelkit.bench import BenchContext, register_benchmark


def _fuzz_rows(task: str, n: int, rng: random.Random) -> list[dict]:
    """Predictions/answers exercising a task's cut, metric and bucketing (deterministic)."""
    from kernelkit.longctx.metrics import task_metric

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
    from kernelkit.longctx import reference
    from kernelkit.longctx.metrics import REFERENCE_KEYS, TASK_METRICS, bucket_scores

    ref, why = reference.find_reference()
    if ref is None:
        ctx.record("official M4LE scripts", None, None, "KwanWaiChung/M4LE", skipped=why)
        return
    rng = random.Random(0)
    n = 40 if ctx.quick else 200
    # configs the reference scores under their HF names (the other eight it silently skips)
    tasks = [t for t in TASK_METRICS if t not in REFERENCE_KEYS and t not in ("qmsum", "vcsum")]
    rows = {t: _fuzz_rows(t, n, rng) for t in tasks}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for t in tasks:
            reference.write_outputs(work, "fuzz", t, rows[t])
        ref_scores, ref_s = reference.run_evaluation(ref, work)
    t0 = time.perf_counter()
    ours = {t: bucket_scores(t, [(r["length_bucket"], r["gen_resp"], r["answers"]) for r in rows[t]]) for t in tasks}
    ours_s = time.perf_counter() - t0
    diffs = [abs(ours[t][b] - v) for (m, t, b), v in ref_scores.items() if m == "fuzz"]
    ctx.record(f"evaluation.py on {len(tasks)} configs x {n} fuzzed answers", ours_s, ref_s, "official evaluation.py",
               compared=len(diffs), max_abs_diff=max(diffs) if diffs else None,
               missing=sorted({t for t in tasks} - {t for (_m, t, _b) in ref_scores}))
    _inference_side_by_side(ctx, ref)


def _inference_side_by_side(ctx: BenchContext, ref) -> None:
    """Official inference.py vs ``kernelkit m4le run`` on the same built records and the same model."""
    import os

    from kernelkit.longctx import reference
    from kernelkit.longctx.records import read_records, write_records
    from kernelkit.longctx.tasks import build_task

    model_dir = os.environ.get("M4LE_REFERENCE_MODEL")  # an HF folder both transformers versions load
    data_root = os.environ.get("KERNELKIT_DATA")
    if not model_dir or not data_root:
        ctx.record("inference side by side", None, None, "official inference.py",
                   skipped="set M4LE_REFERENCE_MODEL (HF model folder) and KERNELKIT_DATA to compare inference")
        return
    tasks = ("nq-open",) if ctx.quick else ("nq-open", "wikitext-103", "hotpotqa")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        recs_dir = work / "records"
        all_recs = []
        for t in tasks:
            recs = build_task(t, data_root, buckets=(1000,), n=2, seed=7)
            for r in recs:
                r.extras.pop("task", None)
            write_records(recs_dir / f"{t}.jsonl", recs)
            all_recs += [(t, r) for r in read_records(recs_dir / f"{t}.jsonl")]
        ref_s = 0.0
        for t in tasks:
            _rows, s = reference.run_inference(ref, work / "ref", Path(model_dir), t, recs_dir)
            ref_s += s
        kk_s = 0.0
        for t in tasks:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "kernelkit", "m4le", "run", "--records", str(recs_dir / f"{t}.jsonl"),
                            "--task", t, "--backend", "hf", "--model", model_dir, "--dtype", "float16", "--no-chat",
                            "--results", str(work / "kk" / "results.jsonl"), "--out", str(work / "kk" / t), "--quiet"],
                           check=True, capture_output=True)
            kk_s += time.perf_counter() - t0
        kk_rows = [json.loads(line) for line in (work / "kk" / "results.jsonl").read_text().splitlines()]
        by_task: dict[str, list[dict]] = {}
        for row, (t, rec) in zip(kk_rows, all_recs, strict=True):
            by_task.setdefault(t, []).append({**rec.to_dict(), "gen_resp": row["prediction"]})
        for t, rows in by_task.items():
            reference.write_outputs(work / "ref", "kernelkit", t, rows)
        scores, _ = reference.run_evaluation(ref, work / "ref")
    agree = [(t, b, scores.get((Path(model_dir).name, t, b)), v) for (m, t, b), v in scores.items() if m == "kernelkit"]
    ctx.record(f"inference on {len(all_recs)} records ({', '.join(tasks)}), SmolLM2 fp16", kk_s, ref_s,
               "official inference.py", scores=[{"task": t, "bucket": b, "reference": r, "kernelkit": k}
                                                for t, b, r, k in agree])
