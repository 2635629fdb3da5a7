"""``kernelkit m4le export-lm-eval``: M4LE records as lm-evaluation-harness tasks.

:func:`add_interop_commands` registers the command on the ``m4le`` app (this module does not import that app, so
the two modules form no import cycle).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernelkit.apps.cli.common import JsonOpt, QuietOpt, abort, check_int_ranges, fail


def export_lm_eval_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the task YAMLs, utils.py and data/.")],
    records: Annotated[list[Path] | None, typer.Option(
        "--records", help="M4LE jsonl (built or official files; repeatable); with --official a folder holding "
                          "<config>.jsonl.")] = None,
    official: Annotated[list[str] | None, typer.Option(
        "--official", help="Export the official M4LE records of this config (repeatable): from --records when "
                           "given, else the hub dataset wckwan/M4LE (needs `datasets` and network or its cache).")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="Config name for records without a task field.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(
        "--max-new-tokens", min=1, help="Token budget (default: per task, as `m4le run`).")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write lm-eval task YAMLs (one per task and bucket, named m4le_<task>_<bucket>) scored by kernelkit's M4LE
    scorers; run them with `lm_eval --include_path DIR --tasks 'm4le_*'`."""
    from kernelkit.longctx.lm_eval_export import export_lm_eval
    from kernelkit.longctx.records import RecordError, load_official, read_records

    check_int_ranges({"max_new_tokens": ("--max-new-tokens", max_new_tokens)})
    if out_dir.exists() and not out_dir.is_dir():
        fail(f"{out_dir}: exists and is not a folder")
    if not records and not official:
        fail("--records or --official: give the records to export")
    if official and records and len(records) > 1:
        fail("--records: with --official give one folder (or file) holding <config>.jsonl")
    recs = []
    try:
        if official:
            source = records[0] if records else None
            for config in official:
                for rec in load_official(config, source):
                    rec.extras.setdefault("task", config)
                    recs.append(rec)
        else:
            for path in records or []:
                recs.extend(read_records(path))
    except (RecordError, FileNotFoundError) as exc:
        fail(f"--records: {exc}")
    except (ImportError, RuntimeError) as exc:  # the hub dataset could not be loaded
        abort(f"--official {', '.join(official or [])}: {exc}")
    if not recs:
        fail(f"--records {' '.join(map(str, records or []))}: no records (nothing to export)")
    try:
        written = export_lm_eval(recs, out_dir, task=task, max_new_tokens=max_new_tokens)
    except ValueError as exc:
        fail(f"--task: {exc}")
    except KeyError as exc:  # an unknown task name, with close matches
        fail(f"--task: {exc.args[0] if exc.args else exc}")
    except OSError as exc:
        abort(f"{out_dir}: cannot write ({exc.strerror or exc})")
    rows = [{"lm_eval task": t.name, "m4le task": t.task, "bucket": t.bucket, "records": t.n,
             "max_gen_toks": t.max_gen_toks, "until": list(t.until)} for t in written]
    if as_json:
        typer.echo(json.dumps({"dir": str(out_dir), "tasks": rows}, indent=2, ensure_ascii=False))
        return
    if not quiet:
        for row in rows:
            typer.echo(f"{row['lm_eval task']}: {row['records']} records of {row['m4le task']} "
                       f"(bucket {row['bucket']}, max_gen_toks {row['max_gen_toks']})")
        typer.echo(f"wrote {len(rows)} task(s) to {out_dir}; run them with "
                   f"`lm_eval --model ... --include_path {out_dir} --tasks 'm4le_*'`")


def add_interop_commands(app: typer.Typer) -> None:
    """Register ``export-lm-eval`` on ``app`` (the ``m4le`` group)."""
    app.command("export-lm-eval")(export_lm_eval_cmd)
