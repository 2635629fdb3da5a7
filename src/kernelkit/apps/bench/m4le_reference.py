"""Driver for running the official M4LE scripts side by side with kernelkit (nothing of them is copied).

The reference is an unmodified checkout of ``KwanWaiChung/M4LE``. Its ``evaluation.py`` scores every
``outputs/<model>/<task>.jsonl`` under the working directory into ``results/all_result.csv``; its
``inference.py`` loads ``wckwan/M4LE`` with ``datasets`` and uses the pre-1.0 ``openai`` module. To run
it offline on kernelkit-built records, this driver writes two throwaway shim packages into the working
directory: ``datasets.load_dataset`` reading ``$M4LE_LOCAL/<task>.jsonl``, and the ``openai.error`` names
it imports (unused for local models).

Environment (see ``benchmarks/m4le_reference.py``):
    M4LE_REFERENCE_DIR      checkout of the official repository (required)
    M4LE_REFERENCE_PYTHON   interpreter with rouge==1.0.1, rouge-chinese==1.0.3, jieba, pandas, strictfire
    M4LE_REFERENCE_PATH     extra PYTHONPATH for inference.py (transformers 4.x, strictfire, six)
    M4LE_REFERENCE_MODEL    HF model folder both transformers versions load (see :func:`export_for_reference`)
    M4LE_SIDE_TASKS         configs for the inference side by side (comma-separated)
    M4LE_SIDE_N             records per config
    M4LE_SIDE_BUCKET        length bucket of the built records (300 holds one nq-open passage)
    M4LE_SIDE_BUDGET        ``task`` (kernelkit's per-task budgets) or ``bucket`` (the reference's)
    M4LE_SIDE_DTYPE         kernelkit's dtype
    M4LE_SIDE_BATCH         kernelkit's generation batch size
    (defaults: :class:`SideBySideSettings`)

:func:`side_by_side` runs both on the same built records and the same model: the official
``inference.py`` (float16 as it hard-codes, greedy, ``max_new_tokens`` = bucket size) then
``kernelkit m4le run`` (the chosen dtype, stop at the cut), each as its own process with its model load; both
outputs are scored by the official ``evaluation.py`` and by kernelkit's metrics.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kernelkit.utils.io import read_jsonl

_DATASETS_SHIM = '''"""Local stand-in for datasets.load_dataset (side-by-side runs only)."""
import json, os


def load_dataset(name, config, split="test"):
    path = os.path.join(os.environ["M4LE_LOCAL"], config + ".jsonl")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
'''
_OPENAI_SHIM = "class ChatCompletion: pass\nclass Completion: pass\n"
_OPENAI_ERROR_SHIM = "".join(f"class {n}(Exception): pass\n" for n in
                             ("RateLimitError", "APIError", "APIConnectionError", "Timeout", "AuthenticationError"))


@dataclass
class Reference:
    repo: Path
    python: str
    extra_path: str = ""


def find_reference() -> tuple[Reference | None, str]:
    """The configured reference, or ``None`` with the reason it is unavailable."""
    repo = os.environ.get("M4LE_REFERENCE_DIR")
    if not repo:
        return None, "M4LE_REFERENCE_DIR is not set (a checkout of github.com/KwanWaiChung/M4LE)"
    if not (Path(repo) / "evaluation.py").exists():
        return None, f"{repo}: evaluation.py not found"
    python = os.environ.get("M4LE_REFERENCE_PYTHON", sys.executable)
    probe = subprocess.run([python, "-c", "import rouge, rouge_chinese, jieba, pandas, strictfire"],
                           capture_output=True, text=True)
    if probe.returncode:
        return None, f"{python} lacks the reference's metric packages ({probe.stderr.strip().splitlines()[-1:]})"
    return Reference(Path(repo), python, os.environ.get("M4LE_REFERENCE_PATH", "")), ""


def write_outputs(workdir: Path, model: str, task: str, rows: list[dict[str, Any]]) -> Path:
    """``outputs/<model>/<task>.jsonl`` in the reference's layout (records plus ``gen_resp``)."""
    path = workdir / "outputs" / model / f"{task}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    return path


def run_evaluation(ref: Reference, workdir: Path) -> tuple[dict[tuple[str, str, int], float], float]:
    """Run the official ``evaluation.py`` on ``workdir/outputs``; returns {(model, task, bucket): score}, seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([ref.python, str(ref.repo / "evaluation.py")], cwd=workdir, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"reference evaluation.py failed: {proc.stderr[-2000:]}")
    scores = {}
    with open(workdir / "results" / "all_result.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            scores[(row["Model"], row["Task"], int(float(row["Bucket"])))] = float(row["Score"])
    return scores, seconds


def run_inference(ref: Reference, workdir: Path, model_dir: Path, task: str, records_dir: Path,
                  timeout: float | None = None) -> tuple[list[dict[str, Any]], float]:
    """Run the official ``inference.py`` for one task on local records; returns its output rows and seconds."""
    shims = workdir / "shims"
    (shims / "datasets").mkdir(parents=True, exist_ok=True)
    (shims / "openai").mkdir(parents=True, exist_ok=True)
    (shims / "datasets" / "__init__.py").write_text(_DATASETS_SHIM)
    (shims / "openai" / "__init__.py").write_text(_OPENAI_SHIM)
    (shims / "openai" / "error.py").write_text(_OPENAI_ERROR_SHIM)
    env = {**os.environ, "M4LE_LOCAL": str(records_dir), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (ref.extra_path, str(shims)) if p)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ref.repo / "inference.py"), "--model_path", str(model_dir),
                           "--task", task], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"reference inference.py failed for {task}: {proc.stderr[-2000:]}")
    out = workdir / "outputs" / model_dir.name / f"{task}.jsonl"
    return read_jsonl(out), seconds


#: Configs kernelkit builds from the real sources that the official evaluation.py scores under their HF
#: names (drcd_* are among the eight it silently skips; qmsum/vcsum are new tasks it does not know).
SIDE_BY_SIDE_TASKS = ("c3", "online-shopping", "nq-open", "wikitext-103", "hotpotqa")


@dataclass(frozen=True)
class SideBySideSettings:
    """What :func:`side_by_side` runs: ``n`` records per config of ``tasks`` built for one ``bucket``;
    kernelkit's side in ``dtype`` with generation batch ``batch_size`` and, with ``bucket_budget``, the
    reference's budget (the bucket size) instead of its per-task ones. :meth:`from_env` reads the
    ``M4LE_SIDE_*`` variables."""

    tasks: tuple[str, ...] = SIDE_BY_SIDE_TASKS
    n: int = 2
    bucket: int = 1000
    bucket_budget: bool = False
    dtype: str = "float16"  # kernelkit's side; the reference hard-codes float16
    batch_size: int = 1  # the reference generates one record at a time
    seed: int = 7

    @classmethod
    def from_env(cls, quick: bool = False) -> SideBySideSettings:
        """Settings from ``M4LE_SIDE_TASKS/N/BUCKET/BUDGET/DTYPE/BATCH``; unset ones keep their defaults
        (``quick``: nq-open only)."""
        env = os.environ
        base = cls(tasks=("nq-open",)) if quick else cls()
        chosen = env.get("M4LE_SIDE_TASKS")
        return replace(base, tasks=tuple(t for t in chosen.split(",") if t) if chosen else base.tasks,
                       n=int(env.get("M4LE_SIDE_N", base.n)), bucket=int(env.get("M4LE_SIDE_BUCKET", base.bucket)),
                       bucket_budget=env.get("M4LE_SIDE_BUDGET", "task") == "bucket",
                       dtype=env.get("M4LE_SIDE_DTYPE", base.dtype),
                       batch_size=int(env.get("M4LE_SIDE_BATCH", base.batch_size)))


def _count_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]


def side_by_side(ref: Reference, model_dir: str | os.PathLike[str], data_root: str | os.PathLike[str],
                 settings: SideBySideSettings | None = None, workdir: str | os.PathLike[str] | None = None,
                 timeout: float | None = None) -> list[dict[str, Any]]:
    """Official inference.py + evaluation.py vs kernelkit on the same records and model, one row per config.

    Each row: the official score (official generations, official evaluation), kernelkit's score
    (kernelkit generations, kernelkit metrics), both cross scores, how many records have the same
    answer after the end-token cut, the wall times (process start and model load included on both
    sides) and the mean number of generated tokens on each side (re-tokenized answers). kernelkit runs
    with its per-task budgets, or with ``settings.bucket_budget`` the reference's (then every cut answer is
    the reference's whenever both models produce the same greedy tokens).
    """
    import tempfile

    from transformers import AutoTokenizer

    from kernelkit.longctx.records import write_records
    from kernelkit.longctx.runner import load_results
    from kernelkit.longctx.tasks import bucket_scores, build_task, prepare

    s = settings or SideBySideSettings()
    tasks, n, bucket, seed, dtype, batch_size = s.tasks, s.n, s.bucket, s.seed, s.dtype, s.batch_size
    model_dir = Path(model_dir)
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="m4le-side-")
        workdir = tmp.name
    work = Path(workdir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    try:
        for task in tasks:
            records = build_task(task, Path(data_root), buckets=(bucket,), n=n, seed=seed)
            if not records:
                rows.append({"config": task, "records": 0, "skipped": f"no {bucket} instance could be built"})
                continue
            records_dir = work / "records" / task
            write_records(records_dir / f"{task}.jsonl", records)
            ref_rows, ref_s = run_inference(ref, work / "ref", model_dir, task, records_dir, timeout=timeout)
            results = work / "kk" / f"{task}.results.jsonl"
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "kernelkit", "m4le", "run", "--records",
                                   str(records_dir / f"{task}.jsonl"), "--backend", "hf", "--model", str(model_dir),
                                   "--dtype", dtype, "--results", str(results), "--out", str(work / "kk" / task),
                                   "--batch-size", str(batch_size), "--quiet",
                                   *(["--bucket-budget"] if s.bucket_budget else [])],
                                  capture_output=True, text=True, timeout=timeout)
            kk_s = time.perf_counter() - t0
            if proc.returncode:
                raise RuntimeError(f"kernelkit m4le run failed for {task}: {proc.stderr[-2000:]}")
            by_id = {r["sample_id"]: r for r in load_results(results)}
            kk_rows = [{**rec.to_dict(), "gen_resp": by_id[rec.sample_id]["prediction"]} for rec in records]
            write_outputs(work / "ref", "kernelkit", task, kk_rows)
            official, _ = run_evaluation(ref, work / "ref")
            missing = sum("gen_resp" not in r for r in ref_rows)
            if missing:
                raise RuntimeError(f"reference inference.py left {missing} {task} record(s) unanswered")
            ref_answers: list[str] = [r["gen_resp"] for r in ref_rows]
            kk_answers = [r["gen_resp"] for r in kk_rows]
            golds = [r["answers"] for r in ref_rows]
            ours = bucket_scores(task, [(bucket, a, g) for a, g in zip(kk_answers, golds, strict=True)])
            ours_on_ref = bucket_scores(task, [(bucket, a, g) for a, g in zip(ref_answers, golds, strict=True)])
            ref_tokens, kk_tokens = _count_tokens(tokenizer, ref_answers), _count_tokens(tokenizer, kk_answers)
            rows.append({
                "config": task, "records": len(records), "bucket": bucket,
                "official score": official.get((model_dir.name, task, bucket)),
                "kernelkit score": ours[bucket],
                "official evaluation of kernelkit answers": official.get(("kernelkit", task, bucket)),
                "kernelkit metrics on official answers": ours_on_ref[bucket],
                "same answer after the cut": sum(prepare(task, a) == prepare(task, b)
                                                 for a, b in zip(ref_answers, kk_answers, strict=True)),
                "official s": round(ref_s, 2), "kernelkit s": round(kk_s, 2), "ratio": round(ref_s / kk_s, 2),
                "official new tokens (mean)": sum(ref_tokens) / len(ref_tokens),
                "kernelkit new tokens (mean)": sum(kk_tokens) / len(kk_tokens),
                "answers": [{"official": a[:200], "kernelkit": b[:200], "official cut": prepare(task, a),
                             "kernelkit cut": prepare(task, b), "gold": g}
                            for a, b, g in zip(ref_answers, kk_answers, golds, strict=True)],
            })
    finally:
        if tmp is not None:
            tmp.cleanup()
    return rows


def export_for_reference(model: Any, tokenizer: Any, folder: str | os.PathLike[str]) -> Path:
    """Save ``model``/``tokenizer`` so that transformers 4.x (the reference's) and 5.x both load them.

    transformers 5 writes ``rope_parameters`` and a ``TokenizersBackend`` tokenizer class; 4.x reads
    ``rope_theta``/``rope_scaling`` and needs a 4.x class name, so both are added/replaced.
    """
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    params = cfg.get("rope_parameters")
    if isinstance(params, dict):
        cfg.setdefault("rope_theta", params.get("rope_theta"))
        if params.get("rope_type", "default") != "default":
            cfg.setdefault("rope_scaling", {k: v for k, v in params.items() if k != "rope_theta"})
    if "dtype" in cfg:
        cfg.setdefault("torch_dtype", cfg["dtype"])
    cfg_path.write_text(json.dumps(cfg, indent=2))
    tok_path = folder / "tokenizer_config.json"
    tok = json.loads(tok_path.read_text())
    if tok.get("tokenizer_class") == "TokenizersBackend":
        tok["tokenizer_class"] = "PreTrainedTokenizerFast"
    for key in ("backend", "is_local", "local_files_only"):
        tok.pop(key, None)
    tok_path.write_text(json.dumps(tok, indent=2))
    return folder
