"""``kernelkit m4le`` commands: tasks, build, run, score, report, serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kernelkit.apps.cli.common import (
    DataDirOpt,
    DeviceOpt,
    JsonOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    ThreadsOpt,
    announce,
    fail,
    setup,
    start_run,
)

app = typer.Typer(no_args_is_help=True)

BucketsOpt = Annotated[str, typer.Option("--buckets", help="Comma-separated buckets, e.g. 1000,2000,4000.")]


def _buckets(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        fail(f"--buckets: expected comma-separated integers, got {text!r}")
    if not values or min(values) <= 0:
        fail(f"--buckets: need positive integers, got {text!r}")
    return values


@app.command("tasks")
def tasks(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """List the registered M4LE tasks (ability, language, source, whether its files are present)."""
    import json

    from kernelkit.data.root import data_root
    from kernelkit.longctx.tasks import TASKS

    root = data_root(data_dir) if data_dir else data_root()
    rows = []
    for entry in TASKS.entries():
        t = entry.obj
        present = all((root / f).exists() for f in t.data_files)
        rows.append({"task": t.name, "ability": t.ability, "type": t.task_type, "lang": t.lang,
                     "official": t.official, "source": t.source, "data": "present" if present else "missing",
                     "note": t.note})
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    from kernelkit.console import console

    columns = [c for c in rows[0] if c != "note"]
    table = Table(*columns)
    for r in rows:
        table.add_row(*(str(r[c]) for c in columns))
    console.print(table)


@app.command("build")
def build(
    task: Annotated[list[str], typer.Argument(help="Task names (see `kernelkit m4le tasks`).")],
    buckets: BucketsOpt = "1000,2000,4000,6000,8000",
    n: Annotated[int, typer.Option("--n", min=1, help="Instances per bucket.")] = 200,
    no_one_shot: Annotated[bool, typer.Option("--no-one-shot", help="Leave out the demonstration.")] = False,
    out: OutOpt = None, seed: SeedOpt = 111, data_dir: DataDirOpt = None, as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build seeded M4LE instances from the real sources into ``<run dir>/records.jsonl``."""
    from kernelkit.data.root import DataNotFoundError
    from kernelkit.longctx.records import write_records
    from kernelkit.longctx.tasks import TASKS, build_task

    for name in task:
        if name not in TASKS:
            fail(TASKS.unknown_message(name))
    settings = setup("cpu", seed, 0, data_dir)
    bks = _buckets(buckets)
    config = {**settings, "tasks": task, "buckets": bks, "n": n, "one_shot": not no_one_shot}
    with start_run("m4le-build", config, out, quiet) as run:
        sec = run.section("build", "M4LE instances")
        records, counts = [], []
        for name in task:
            try:
                recs = build_task(name, settings["data_root"], buckets=bks, n=n, seed=seed, one_shot=not no_one_shot)
            except DataNotFoundError as exc:
                fail(str(exc))
            sec.data_source(f"{name}: {', '.join(TASKS.get(name).data_files)} under {settings['data_root']}")
            for b in bks:
                counts.append({"task": name, "bucket": b, "instances": sum(r.length_bucket == b for r in recs)})
            records += recs
        path = write_records(run.dir / "records.jsonl", records)
        sec.table("Instances per task and bucket", counts)
        sec.record(records=str(path), counts=counts, total=len(records))
    announce(run, as_json, quiet)


@app.command("run")
def run_cmd(
    records: Annotated[Path, typer.Option("--records", help="M4LE jsonl (built or official files).")],
    backend: Annotated[str, typer.Option("--backend", help="smollm2 (offline default), hf or openai.")] = "smollm2",
    model: Annotated[str | None, typer.Option("--model", help="HF folder/id, or the served model name.")] = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="OpenAI-compatible URL (…/v1).")] = None,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Chat template / chat endpoint.")] = False,
    task: Annotated[str | None, typer.Option("--task", help="Config name for records without a task field.")] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", help="Append-only results file (default <run dir>/results.jsonl); reruns resume.")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="At most N instances per task and bucket.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 1,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", min=1,
                                                       help="Default: per task (short answers).")] = None,
    truncation: Annotated[str, typer.Option("--truncation", help="none, middle, left or error.")] = "middle",
    stop_at_cut: Annotated[bool, typer.Option(
        "--stop-at-cut/--no-stop-at-cut",
        help="End each answer once the task's end-token cut is final (same score, fewer tokens).")] = True,
    bucket_budget: Annotated[bool, typer.Option(
        "--bucket-budget", help="Budget = the record's bucket size, as the reference (with --stop-at-cut the cut "
                                "answers equal the reference's; an answer that never ends costs as much).")] = False,
    rope: Annotated[str, typer.Option("--rope", help="none, linear, ntk, dynamic or yarn (HF backends).")] = "none",
    rope_factor: Annotated[float, typer.Option("--rope-factor", min=1.0)] = 1.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="OpenAI backend.")] = 4,
    dtype: Annotated[str, typer.Option("--dtype", help="float32, bfloat16 or float16 (HF backend).")] = "float32",
    out: OutOpt = None, device: DeviceOpt = "cpu", seed: SeedOpt = 0, threads: ThreadsOpt = 0,
    as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Generate answers for M4LE records with a backend, appending to a resumable results file."""
    from kernelkit.longctx import runner
    from kernelkit.longctx.backends import BACKENDS, TRUNCATION_POLICIES
    from kernelkit.longctx.records import RecordError, read_records
    from kernelkit.longctx.rope import METHODS

    if truncation not in TRUNCATION_POLICIES:
        fail(f"--truncation: expected one of {', '.join(TRUNCATION_POLICIES)}, got {truncation!r}")
    if rope not in METHODS:
        fail(f"--rope: expected one of {', '.join(METHODS)}, got {rope!r}")
    if backend not in BACKENDS:
        fail(BACKENDS.unknown_message(backend))
    if dtype not in ("float32", "bfloat16", "float16"):
        fail(f"--dtype: expected float32, bfloat16 or float16, got {dtype!r}")
    if backend == "openai" and not (base_url and model):
        fail("--backend openai needs --base-url and --model")
    if backend == "hf" and not model:
        fail("--backend hf needs --model (a local folder or a cached hub id)")
    try:
        recs = read_records(records)
    except (RecordError, FileNotFoundError) as exc:
        fail(str(exc))
    settings = setup(device, seed, threads, None)
    chosen = runner.select(recs, limit=limit)
    params = runner.GenParams(max_new_tokens=max_new_tokens, chat_template=chat, truncation=truncation,
                              stop_at_cut=stop_at_cut, bucket_budget=bucket_budget)
    config = {**settings, "records": str(records), "backend": backend, "model": model, "base_url": base_url,
              "limit": limit, "gen": params.__dict__, "rope": rope, "rope_factor": rope_factor, "dtype": dtype}
    with start_run("m4le-run", config, out, quiet) as run:
        if backend == "openai":
            be = BACKENDS.get("openai")(base_url, model, chat=chat, concurrency=concurrency)
        elif backend == "hf":
            be = BACKENDS.get("hf")(model, batch_size=batch_size, chat_template=chat, truncation=truncation,
                                     device=settings["device"], rope=rope, rope_factor=rope_factor, dtype=dtype)
        else:
            be = BACKENDS.get("smollm2")(batch_size=batch_size, chat_template=chat, truncation=truncation,
                                         rope=rope, rope_factor=rope_factor)
        path = results or run.dir / "results.jsonl"
        sec = run.section("run", "Generation")
        sec.data_source(f"records from {records}")
        try:
            summary = runner.run_records(chosen, be, path, params, batch_size=max(batch_size, concurrency)
                                         if backend == "openai" else batch_size, progress=not quiet, task=task)
        except ValueError as exc:
            fail(str(exc))
        sec.table("Run", [{"instances": summary.total, "resumed": summary.skipped, "generated": summary.generated,
                           "errors": summary.errors, "truncated prompts": summary.truncated,
                           "budget spent before the cut": summary.budget_spent,
                           "seconds": round(summary.seconds, 1)}],
                  note=f"truncation policy: {truncation}; backend: {be.describe()}")
        if summary.error_messages:
            sec.table("Errors (not recorded as answers; a rerun retries them)",
                      [{"error": m} for m in summary.error_messages[:50]])
        sec.record(results=str(path), **{k: v for k, v in summary.__dict__.items() if k != "error_messages"},
                   backend=be.describe())
    announce(run, as_json, quiet)


def _score_rows(results: list[Path]):
    from kernelkit.longctx import scoring
    from kernelkit.longctx.runner import load_results

    rows = []
    for p in results:
        if not p.exists():
            fail(f"{p}: no such results file")
        try:
            rows += load_results(p)
        except ValueError as exc:
            fail(str(exc))
    if not rows:
        fail("no results to score")
    return scoring.task_bucket_scores(rows)


@app.command("score")
def score(
    results: Annotated[list[Path], typer.Argument(help="Results files written by `kernelkit m4le run`.")],
    out: OutOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Score results per model, task and bucket with the reference metrics."""
    table = _score_rows(results)
    with start_run("m4le-score", {"results": [str(p) for p in results]}, out, quiet) as run:
        sec = run.section("score", "Scores per task and bucket")
        sec.table("Scores", [{**r, "score": round(r["score"], 4)} for r in table])
        sec.record(scores=table)
    announce(run, as_json, quiet)


@app.command("report")
def report(
    results: Annotated[list[Path], typer.Argument(help="Results files written by `kernelkit m4le run`.")],
    reference_model: Annotated[str | None, typer.Option(
        "--reference-model", help="Normalise each task by this model's first-bucket score.")] = None,
    normaliser: Annotated[str, typer.Option("--normaliser", help="half: s/(2 ref); share: s/(s+ref).")] = "half",
    out: OutOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Scores, per-ability aggregates, normalisation, slopes over buckets, plots and a heatmap."""
    from kernelkit.longctx import scoring

    table = _score_rows(results)
    value = "score"
    if reference_model:
        try:
            table = scoring.normalise(table, reference_model, normaliser)
        except ValueError as exc:
            fail(str(exc))
        value = "normalised"
    config = {"results": [str(p) for p in results], "reference_model": reference_model, "normaliser": normaliser}
    with start_run("m4le-report", config, out, quiet) as run:
        sec = run.section("report", "M4LE report")
        sec.table("Scores per task and bucket", table)
        abilities = scoring.aggregate(table, value=value)
        sec.table(f"Mean {value} per ability and bucket", abilities)
        overall = scoring.aggregate(table, by=("model", "bucket"), value=value)
        models = sorted({r["model"] for r in overall})
        summary = []
        for m in models:
            vals = [r[value] for r in sorted(overall, key=lambda r: r["bucket"]) if r["model"] == m]
            summary.append({"model": m, "mean": sum(vals) / len(vals), "slope per bucket": scoring.slope(vals)})
        sec.table("Overall", summary)
        sec.figure(scoring.plot_by_ability(table, value), "by_ability", f"{value} vs bucket per ability")
        for m in models:
            sec.figure(scoring.plot_heatmap(table, m, value), f"heatmap_{m}", f"task x bucket {value}: {m}")
        sec.record(summary=summary, abilities=abilities)
    announce(run, as_json, quiet)


@app.command("serve")
def serve(
    backend: Annotated[str, typer.Option("--backend", help="smollm2 or hf.")] = "smollm2",
    model: Annotated[str | None, typer.Option("--model", help="HF folder/id for --backend hf.")] = None,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = 8000,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Apply the chat template to prompts.")] = False,
    rope: Annotated[str, typer.Option("--rope")] = "none",
    rope_factor: Annotated[float, typer.Option("--rope-factor", min=1.0)] = 1.0,
) -> None:
    """Serve a local model behind an OpenAI-compatible HTTP API (completions and chat)."""
    from kernelkit.console import console
    from kernelkit.longctx.backends import BACKENDS
    from kernelkit.longctx.serve import OpenAICompatServer

    if backend == "hf":
        if not model:
            fail("--backend hf needs --model")
        be = BACKENDS.get("hf")(model, chat_template=chat, rope=rope, rope_factor=rope_factor)
    elif backend == "smollm2":
        be = BACKENDS.get("smollm2")(chat_template=chat, rope=rope, rope_factor=rope_factor)
    else:
        fail(f"--backend: expected smollm2 or hf, got {backend!r}")
    server = OpenAICompatServer(be, host=host, port=port)
    console.print(f"serving {be.name} at {server.url} (Ctrl-C to stop)")
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
