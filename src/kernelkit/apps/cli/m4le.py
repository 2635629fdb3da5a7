"""``kernelkit m4le`` commands: tasks, build, run, score, report, serve.

Each command turns its options into its config (:mod:`kernelkit.apps.configs.m4le`), whose defaults the
options reference, and records it as ``config.json``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

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
    check_int_ranges,
    check_out,
    check_rerun,
    fail,
    make_config,
    prepare,
    start_run,
)
from kernelkit.apps.configs.m4le import (
    M4leBuildConfig,
    M4leReportConfig,
    M4leRunConfig,
    M4leScoreConfig,
    M4leServeConfig,
    M4leTasksConfig,
)
from kernelkit.longctx.runner import GenParams

app = typer.Typer(no_args_is_help=True)

BucketsOpt = Annotated[str, typer.Option("--buckets", help="Comma-separated buckets, e.g. 1000,2000,4000.")]


def _buckets(text: str) -> tuple[int, ...]:
    """The sorted distinct integers of ``--buckets`` (their range is checked by the config)."""
    try:
        return tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        fail(f"--buckets: expected comma-separated integers, got {text!r}")


@app.command("tasks")
def tasks(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """List the registered M4LE tasks (ability, language, metric, source, whether its files are present)."""
    import json

    from kernelkit.data.root import data_root
    from kernelkit.longctx.tasks import TASKS

    if data_dir is not None and not data_dir.is_dir():
        fail(f"--data-dir {data_dir}: {'is not a directory' if data_dir.exists() else 'does not exist'}")
    cfg = M4leTasksConfig(data_root=str(data_dir) if data_dir else None)
    root = data_root(Path(cfg.data_root)) if cfg.data_root else data_root()
    rows = []
    for entry in TASKS.entries():
        t = entry.obj
        present = all((root / f).exists() for f in t.data_files)
        rows.append({"task": t.name, "ability": t.ability, "type": t.task_type, "lang": t.lang,
                     "metric": t.metric.metric, "official": t.official, "source": t.source,
                     "data": "present" if present else "missing", "note": t.note})
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    from kernelkit.console import console

    columns = [c for c in rows[0] if c != "note"]
    table = Table()
    for c in columns:
        table.add_column(c, overflow="fold")  # task names wrap at narrow widths, never cut
    for r in rows:
        table.add_row(*(str(r[c]) for c in columns))
    console.print(table)


@app.command("build")
def build(
    task: Annotated[list[str], typer.Argument(help="Task names (see `kernelkit m4le tasks`).")],
    buckets: BucketsOpt = ",".join(map(str, M4leBuildConfig.buckets)),
    n: Annotated[int, typer.Option("--n", min=1, help="Instances per bucket.")] = M4leBuildConfig.n,
    no_one_shot: Annotated[bool, typer.Option("--no-one-shot", help="Leave out the demonstration.")] = False,
    out: OutOpt = None, seed: SeedOpt = M4leBuildConfig.seed, data_dir: DataDirOpt = None, as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Build seeded M4LE instances from the real sources into ``<run dir>/records.jsonl``."""
    from kernelkit.data.root import DataNotFoundError
    from kernelkit.longctx.records import write_records
    from kernelkit.longctx.tasks import TASKS, build_task

    check_int_ranges({"n": ("--n", n)})
    for name in task:
        if name not in TASKS:
            fail(TASKS.unknown_message(name))
    cfg = make_config(M4leBuildConfig, tasks=tuple(task), buckets=_buckets(buckets), n=n, one_shot=not no_one_shot,
                  seed=seed, data_root=str(data_dir) if data_dir else None)
    cfg = prepare(cfg)
    with start_run("m4le-build", cfg, out, quiet) as run:
        sec = run.section("build", "M4LE instances")
        records, counts = [], []
        for name in cfg.tasks:
            try:
                recs = build_task(name, cfg.data_root, buckets=cfg.buckets, n=cfg.n, seed=cfg.seed,
                                  one_shot=cfg.one_shot)
            except DataNotFoundError as exc:
                fail(str(exc))
            sec.data_source(f"{name}: {', '.join(TASKS.get(name).data_files)} under {cfg.data_root}")
            for b in cfg.buckets:
                counts.append({"task": name, "bucket": b, "instances": sum(r.length_bucket == b for r in recs)})
            records += recs
        path = write_records(run.dir / "records.jsonl", records)
        sec.table("Instances per task and bucket", counts)
        sec.record(records=str(path), counts=counts, total=len(records))
    announce(run, as_json, quiet)


@app.command("run")
def run_cmd(
    records: Annotated[Path | None, typer.Option(
        "--records", help="M4LE jsonl (built or official files); with --official a folder holding <config>.jsonl.")
    ] = None,
    official: Annotated[str | None, typer.Option(
        "--official", help="Run the official M4LE records of this config: from --records when given, else the "
                           "hub dataset wckwan/M4LE (needs `datasets` and network access or its cache).")] = None,
    backend: Annotated[str, typer.Option(
        "--backend", help="smollm2 (offline default), hf or openai.")] = M4leRunConfig.backend,
    model: Annotated[str | None, typer.Option("--model", help="HF folder/id, or the served model name.")] = None,
    base_url: Annotated[list[str] | None, typer.Option(
        "--base-url", help="OpenAI-compatible URL (…/v1); repeat it for replicas of one model, used in turn "
                           "(--concurrency requests in flight each).")] = None,
    chat: Annotated[bool, typer.Option(
        "--chat/--no-chat", help="Chat template / chat endpoint.")] = GenParams.chat_template,
    task: Annotated[str | None, typer.Option("--task", help="Config name for records without a task field.")] = None,
    results: Annotated[Path | None, typer.Option(
        "--results", help="Append-only results file (default <run dir>/results.jsonl); reruns resume.")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="At most N instances per task and bucket.")] = None,
    tasks: Annotated[list[str] | None, typer.Option(
        "--tasks", help="Only these tasks (comma-separated or repeated).")] = None,
    buckets: Annotated[list[str] | None, typer.Option(
        "--buckets", help="Only these length buckets (comma-separated or repeated), e.g. 1000,2000.")] = None,
    abilities: Annotated[list[str] | None, typer.Option(
        "--abilities", help="Only tasks of these abilities (comma-separated or repeated), e.g. global.")] = None,
    shard: Annotated[str | None, typer.Option(
        "--shard", help="i/n: answer shard i (0-based) of n of the selection, a disjoint part; run the n shards "
                        "as separate processes, GPUs or servers and merge with `m4le score`/`report`.")
    ] = M4leRunConfig.shard,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = M4leRunConfig.batch_size,
    max_new_tokens: Annotated[int | None, typer.Option(
        "--max-new-tokens", min=1, help="Default: per task (short answers).")] = GenParams.max_new_tokens,
    truncation: Annotated[str, typer.Option(
        "--truncation", help="none, middle, left or error.")] = GenParams.truncation,
    stop_at_cut: Annotated[bool, typer.Option(
        "--stop-at-cut/--no-stop-at-cut",
        help="End each answer once the task's end-token cut is final (same score, fewer tokens).")
    ] = GenParams.stop_at_cut,
    bucket_budget: Annotated[bool, typer.Option(
        "--bucket-budget", help="Budget = the record's bucket size, as the reference (with --stop-at-cut the cut "
                                "answers equal the reference's; an answer that never ends costs as much).")
    ] = GenParams.bucket_budget,
    rope: Annotated[str, typer.Option(
        "--rope", help="none, linear, ntk, dynamic or yarn (HF backends).")] = M4leRunConfig.rope,
    rope_factor: Annotated[float, typer.Option("--rope-factor", min=1.0)] = M4leRunConfig.rope_factor,
    max_context: Annotated[int | None, typer.Option(
        "--max-context", help="Tokens of prompt + answer (HF backends; default: the trained context x "
                              "--rope-factor; how far dynamic NTK is taken).")] = M4leRunConfig.max_context,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, help="OpenAI backend.")] = M4leRunConfig.concurrency,
    dtype: Annotated[str, typer.Option(
        "--dtype", help="float32, bfloat16 or float16 (HF backend).")] = M4leRunConfig.dtype,
    device_map: Annotated[str | None, typer.Option(
        "--device-map", help="auto: spread the model over all visible GPUs with accelerate (HF backend; "
                             "for a model larger than one GPU; --device is then not used).")
    ] = M4leRunConfig.device_map,
    out: OutOpt = None, device: DeviceOpt = M4leRunConfig.device, seed: SeedOpt = M4leRunConfig.seed,
    threads: ThreadsOpt = M4leRunConfig.threads, as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Generate answers for M4LE records with a backend, appending to a resumable results file."""
    from kernelkit.console import console
    from kernelkit.longctx import runner
    from kernelkit.longctx.records import RecordError, load_official, read_records
    from kernelkit.longctx.results_lock import ResultsInUseError, check_free

    check_out(out)
    check_int_ranges({"limit": ("--limit", limit), "batch_size": ("--batch-size", batch_size),
                      "max_new_tokens": ("--max-new-tokens", max_new_tokens),
                      "concurrency": ("--concurrency", concurrency)})
    try:
        gen = GenParams(max_new_tokens=max_new_tokens, chat_template=chat, truncation=truncation,
                        stop_at_cut=stop_at_cut, bucket_budget=bucket_budget)
    except ValueError as exc:
        fail(f"--truncation: {exc}")
    cfg = make_config(M4leRunConfig, records=str(records) if records else None, official=official, backend=backend,
                  model=model, base_url=base_url, task=task, results=str(results) if results else None, limit=limit,
                  tasks=_names(tasks), buckets=_buckets(",".join(buckets or [])),
                  abilities=_names(abilities), shard=shard, batch_size=batch_size, gen=gen, rope=rope,
                  rope_factor=rope_factor, max_context=max_context, concurrency=concurrency, dtype=dtype,
                  device_map=device_map, device=device, seed=seed, threads=threads)
    source = f"--records {cfg.records}" if cfg.records else f"--official {cfg.official}"
    try:
        recs = load_official(cfg.official, cfg.records) if cfg.official else read_records(cfg.records or "")
    except (RecordError, FileNotFoundError) as exc:
        fail(f"--records: {exc}")
    except (ImportError, RuntimeError) as exc:  # the hub dataset could not be loaded
        console.print(f"[red]--official {cfg.official}:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    if not recs:
        fail(f"{source}: no records (nothing to run)")
    if cfg.results and Path(cfg.results).is_dir():
        fail(f"--results {cfg.results}: is a directory, expected a results file")
    cfg = prepare(cfg)
    record_task = cfg.task or cfg.official
    chosen = runner.select(recs, limit=cfg.limit, tasks=cfg.tasks, buckets=cfg.buckets, abilities=cfg.abilities,
                           task=record_task)
    if not chosen:
        fail(f"--tasks/--buckets/--abilities: no records of {source} match "
             f"(tasks {', '.join(cfg.tasks) or 'any'}; buckets {', '.join(map(str, cfg.buckets)) or 'any'}; "
             f"abilities {', '.join(cfg.abilities) or 'any'})")
    chosen, part, plan = _shard(chosen, cfg.shard, record_task)
    check_rerun(out, cfg)  # before the model is loaded
    if cfg.results:
        try:
            check_free(cfg.results, part)
        except ResultsInUseError as exc:
            fail(f"--results {exc}")
    be = _backend(cfg, quiet)
    with start_run("m4le-run", cfg, out, quiet) as run:
        default_name = part.results_name() if part else "results.jsonl"
        path = Path(cfg.results) if cfg.results else run.dir / default_name
        sec = run.section("run", "Generation")
        sec.data_source(f"official M4LE records of {cfg.official} from {cfg.records or 'the hub dataset'}"
                        if cfg.official else f"records from {cfg.records}")
        in_flight = cfg.concurrency * len(cfg.base_url or "")  # every server kept busy
        try:
            summary = runner.run_records(chosen, be, path, cfg.gen, batch_size=max(cfg.batch_size, in_flight)
                                         if cfg.backend == "openai" else cfg.batch_size, progress=not quiet,
                                         task=record_task, shard=plan)
        except ResultsInUseError as exc:  # another process took the file since the check above
            fail(f"{'--results' if cfg.results else '--out'} {exc}")
        except ValueError as exc:
            fail(str(exc))
        if plan is not None:
            sec.text(f"Shard {plan.index} of {plan.count}: {summary.total} of the {plan.selected} selected records "
                     f"(selection {plan.selection}); merge the shards' results files with `kernelkit m4le score`.")
        attempted = summary.generated + summary.errors
        sec.table("Run", [{"instances": summary.total, "resumed": summary.skipped, "generated": summary.generated,
                           "failed": summary.errors, "truncated prompts": summary.truncated,
                           "budget spent before the cut": summary.budget_spent,
                           "seconds": round(summary.seconds, 1)}],
                  note=f"truncation policy: {cfg.gen.truncation}; backend: {be.describe()}")
        verdict = None
        if summary.errors:
            sec.status = "failed" if summary.generated == 0 else "partial"
            verdict = (f"{summary.errors} of {attempted} requests failed"
                       + ("" if summary.generated else " (no answers were generated)")
                       + (f"; {summary.skipped} answers from earlier runs kept" if summary.skipped else "")
                       + "; a rerun with the same --out (or --results) retries them.")
            sec.text(verdict)
            sec.table("Errors (not recorded as answers; a rerun retries them)",
                      [{"error": m} for m in summary.error_messages[:50]])
        sec.record(results=str(path), **{k: v for k, v in summary.__dict__.items() if k != "error_messages"},
                   failed=summary.errors, attempted=attempted, backend=be.describe())
    if summary.errors and summary.generated == 0:  # the section failed, so Run marked the whole run "failed"
        where = f"--base-url {' '.join(cfg.base_url or [])}" if cfg.backend == "openai" else f"--backend {cfg.backend}"
        console.print(f"[red]{where}:[/] {verdict} First error: {summary.error_messages[0]} "
                      f"(report: {run.dir / 'report.html'})", soft_wrap=True)
        raise typer.Exit(1)
    if verdict and not quiet:
        console.print(f"[yellow]warning:[/] {verdict}", soft_wrap=True)
    announce(run, as_json, quiet)


def _names(values: list[str] | None) -> tuple[str, ...]:
    """The distinct names of a comma-separated or repeated option, in the order given."""
    return tuple(dict.fromkeys(x.strip() for v in values or [] for x in v.split(",") if x.strip()))


def _shard(chosen: list[Any], shard: str | None, task: str | None) -> tuple[list[Any], Any, Any]:
    """``(records, shard, plan)`` of ``--shard i/n``: the shard's part of ``chosen``; ``(chosen, None, None)``
    without it."""
    from kernelkit.longctx.shards import Shard, ShardPlan, selection_digest, split

    if shard is None:
        return chosen, None, None
    part = Shard.parse(shard)
    plan = ShardPlan(part.index, part.count, selection_digest(chosen, task), len(chosen))
    return split(chosen, part, task), part, plan


def _backend(cfg: M4leRunConfig, quiet: bool) -> Any:
    """The backend of ``m4le run`` (model loaded, loading bars hidden with ``--quiet``); a model that cannot be
    loaded exits 2 naming ``--model``, a missing offline model exits 1."""
    from kernelkit.console import console
    from kernelkit.longctx.backends import BACKENDS
    from kernelkit.longctx.backends.hf import ModelLoadError

    if cfg.backend == "openai":
        return BACKENDS.get("openai")(cfg.base_url, cfg.model, chat=cfg.gen.chat_template,
                                      concurrency=cfg.concurrency)
    try:
        if cfg.backend == "hf":
            return BACKENDS.get("hf")(cfg.model, batch_size=cfg.batch_size, chat_template=cfg.gen.chat_template,
                                      truncation=cfg.gen.truncation, device=cfg.device, rope=cfg.rope,
                                      rope_factor=cfg.rope_factor, dtype=cfg.dtype, progress=not quiet,
                                      max_context=cfg.max_context, device_map=cfg.device_map)
        return BACKENDS.get("smollm2")(batch_size=cfg.batch_size, chat_template=cfg.gen.chat_template,
                                       truncation=cfg.gen.truncation, rope=cfg.rope, rope_factor=cfg.rope_factor,
                                       progress=not quiet, max_context=cfg.max_context, device=cfg.device)
    except ModelLoadError as exc:
        fail(f"--model {exc}")
    except (ImportError, FileNotFoundError) as exc:  # the offline model's package is missing or incomplete
        console.print(f"[red]--backend {cfg.backend}:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None


def _score_rows(results: tuple[str, ...], quiet: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """Scores of the merged results files and what the merge lacks (absent shards, unanswered keys; warned on
    stderr unless ``quiet``). A missing or unreadable file, or a key in two files, exits 2 naming them."""
    from kernelkit.console import console
    from kernelkit.longctx import scoring

    try:
        merged = scoring.merge_results(results)
    except ValueError as exc:
        fail(str(exc))
    rows = merged.rows
    if not rows:
        fail(f"{', '.join(results)}: no results to score")
    if not quiet:
        for line in merged.missing:
            console.print(f"[yellow]warning:[/] {line}", soft_wrap=True)
    try:
        return scoring.task_bucket_scores(rows), merged.missing
    except KeyError as exc:  # a task this version does not know
        fail(f"{', '.join(results)}: {exc.args[0] if exc.args else exc}")
    except ValueError as exc:
        fail(f"{', '.join(results)}: {exc}")


def _say_missing(sec: Any, missing: list[str]) -> None:
    """Mark a section scored from an incomplete merge of shards ``partial`` and say what is missing."""
    if missing:
        sec.status = "partial"
        sec.text("Incomplete merge of shards: " + "; ".join(missing) + ".")


@app.command("score")
def score(
    results: Annotated[list[Path], typer.Argument(help="Results files written by `kernelkit m4le run`.")],
    out: OutOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Score results per model, task and bucket with the reference metrics."""
    cfg = M4leScoreConfig(results=tuple(str(p) for p in results))
    table, missing = _score_rows(cfg.results, quiet)
    with start_run("m4le-score", cfg, out, quiet) as run:
        sec = run.section("score", "Scores per task and bucket")
        _say_missing(sec, missing)
        sec.table("Scores", [{**r, "score": round(r["score"], 4)} for r in table])
        sec.record(scores=table, missing=missing)
    announce(run, as_json, quiet)


@app.command("report")
def report(
    results: Annotated[list[Path], typer.Argument(help="Results files written by `kernelkit m4le run`.")],
    reference_model: Annotated[str | None, typer.Option(
        "--reference-model", help="Normalise each task by this model's first-bucket score.")] = None,
    normaliser: Annotated[str, typer.Option(
        "--normaliser", help="half: s/(2 ref); share: s/(s+ref).")] = M4leReportConfig.normaliser,
    out: OutOpt = None, as_json: JsonOpt = False, quiet: QuietOpt = False,
) -> None:
    """Scores, per-ability aggregates, normalisation, slopes over buckets, plots and a heatmap."""
    from kernelkit.longctx import scoring

    cfg = make_config(M4leReportConfig, results=tuple(str(p) for p in results), reference_model=reference_model,
                  normaliser=normaliser)
    table, missing = _score_rows(cfg.results, quiet)
    value = "score"
    if cfg.reference_model:
        try:
            table = scoring.normalise(table, cfg.reference_model, cfg.normaliser)
        except ValueError as exc:
            fail(str(exc))
        value = "normalised"
    with start_run("m4le-report", cfg, out, quiet) as run:
        sec = run.section("report", "M4LE report")
        _say_missing(sec, missing)
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
        sec.record(summary=summary, abilities=abilities, missing=missing)
    announce(run, as_json, quiet)


@app.command("serve")
def serve(
    backend: Annotated[str, typer.Option("--backend", help="smollm2 or hf.")] = M4leServeConfig.backend,
    model: Annotated[str | None, typer.Option("--model", help="HF folder/id for --backend hf.")] = None,
    host: Annotated[str, typer.Option("--host")] = M4leServeConfig.host,
    port: Annotated[int, typer.Option("--port", min=0, max=65535)] = M4leServeConfig.port,
    chat: Annotated[bool, typer.Option(
        "--chat/--no-chat", help="Apply the chat template to prompts.")] = M4leServeConfig.chat,
    rope: Annotated[str, typer.Option("--rope")] = M4leServeConfig.rope,
    rope_factor: Annotated[float, typer.Option("--rope-factor", min=1.0)] = M4leServeConfig.rope_factor,
    device: Annotated[str, typer.Option(
        "--device", help="auto, cpu, cuda, cuda:N, mps.")] = M4leServeConfig.device,
    device_map: Annotated[str | None, typer.Option(
        "--device-map", help="auto: spread the model over all visible GPUs with accelerate (--backend hf).")
    ] = M4leServeConfig.device_map,
) -> None:
    """Serve a local model behind an OpenAI-compatible HTTP API (completions and chat)."""
    from kernelkit.console import console
    from kernelkit.longctx.backends import BACKENDS
    from kernelkit.longctx.backends.hf import ModelLoadError
    from kernelkit.longctx.serve import OpenAICompatServer
    from kernelkit.utils.device import resolve_device

    if model is not None and backend != "hf":
        fail(f"--model {model}: only with --backend hf (--backend {backend} serves its own model)")
    cfg = make_config(M4leServeConfig, backend=backend, model=model, host=host, port=port, chat=chat, rope=rope,
                  rope_factor=rope_factor, device=device, device_map=device_map)
    try:
        cfg = replace(cfg, device=str(resolve_device(cfg.device)))
    except ValueError as exc:
        fail(f"--device: {exc}")
    try:
        if cfg.backend == "hf":
            be = BACKENDS.get("hf")(cfg.model, chat_template=cfg.chat, rope=cfg.rope, rope_factor=cfg.rope_factor,
                                    device=cfg.device, device_map=cfg.device_map)
        else:
            be = BACKENDS.get("smollm2")(chat_template=cfg.chat, rope=cfg.rope, rope_factor=cfg.rope_factor,
                                         device=cfg.device)
    except ModelLoadError as exc:
        fail(f"--model {exc}")
    except (ImportError, FileNotFoundError) as exc:  # the offline model's package is missing or incomplete
        console.print(f"[red]--backend {cfg.backend}:[/] {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    try:
        server = OpenAICompatServer(be, host=cfg.host, port=cfg.port)
    except OSError as exc:  # port in use, address not available, no permission
        console.print(f"[red]--host {cfg.host} --port {cfg.port}:[/] cannot listen ({exc.strerror or exc})",
                      soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"serving {be.name} at {server.url} (Ctrl-C to stop)")
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()


from kernelkit.apps.cli.m4le_interop import add_interop_commands  # noqa: E402

add_interop_commands(app)  # `m4le export-lm-eval`
