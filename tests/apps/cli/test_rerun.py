"""A rerun into the ``--out`` of a finished run (issue 14): with the same settings it reuses the directory, with
other settings it exits 2 naming the differing keys and leaves every file of the finished run byte-identical.

One command per trainer-less group: ``ntk analytic``, ``fscil run`` and ``m4le run`` (in-process, CliRunner).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kernelkit.apps.cli.fscil import app as fscil_app
from kernelkit.apps.cli.m4le import app as m4le_app
from kernelkit.apps.cli.ntk import app as ntk_app
from kernelkit.longctx.records import Record, write_records
from tests.apps.cli.test_m4le import _Echo

app = typer.Typer()  # the command groups under test, as ``kernelkit`` mounts them
for _name, _group in (("ntk", ntk_app), ("fscil", fscil_app), ("m4le", m4le_app)):
    app.add_typer(_group, name=_name)

FINISHED_FILES = ("config.json", "environment.json", "results.json", "report.html", "metrics.jsonl")


def _ntk(tmp: Path, url: str) -> tuple[list[str], list[str], str]:
    base = ["ntk", "analytic", "--inputs", "circle", "--n", "4", "--threads", "1", "--quiet"]
    return [*base, "--depth", "2"], [*base, "--depth", "3"], "depth: 2 -> 3"


def _fscil(tmp: Path, url: str) -> tuple[list[str], list[str], str]:
    base = ["fscil", "run", "--dataset", "digits", "--epochs", "0", "--threads", "1", "--quiet"]
    return [*base, "--tau", "16"], [*base, "--tau", "8"], "tau: 16.0 -> 8.0"


def _m4le(tmp: Path, url: str) -> tuple[list[str], list[str], str]:
    records = tmp / "records.jsonl"
    write_records(records, [Record("Answer.", f"Question {i}: x\nAnswer: item{i}", [f"item{i}"], 8, 10, 1000,
                                   {"task": "nq-open", "id": f"s{i}"}) for i in range(3)])
    base = ["m4le", "run", "--records", str(records), "--backend", "openai", "--base-url", url, "--model", "echo",
            "--max-new-tokens", "5", "--threads", "1", "--quiet"]
    return [*base, "--limit", "2"], [*base, "--limit", "1"], "limit: 2 -> 1"


@pytest.mark.parametrize("make_args", [_ntk, _fscil, _m4le], ids=["ntk-analytic", "fscil-run", "m4le-run"])
def test_a_rerun_with_other_options_is_refused_and_keeps_the_finished_run(
        tmp_path: Path, make_args: Callable[[Path, str], tuple[list[str], list[str], str]]) -> None:
    from kernelkit.longctx.serve import OpenAICompatServer

    out = tmp_path / "run"
    runner = CliRunner()
    with OpenAICompatServer(_Echo()) as server:
        first, other, differs = make_args(tmp_path, server.url)
        done = runner.invoke(app, [*first, "--out", str(out)])
        assert done.exit_code == 0, done.output
        assert json.loads((out / "results.json").read_text())["status"] == "ok"
        before = {n: (out / n).read_bytes() for n in FINISHED_FILES}
        listing = sorted(p.relative_to(out) for p in out.rglob("*"))

        refused = runner.invoke(app, [*other, "--out", str(out)])
        assert refused.exit_code == 2, refused.output
        assert not isinstance(refused.exception, Exception) or isinstance(refused.exception, SystemExit)
        lines = [line for line in refused.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in refused.output, refused.output
        assert lines[0].startswith(f"Error: --out {out}: holds a run with other settings (") and differs in lines[0]
        assert {n: (out / n).read_bytes() for n in FINISHED_FILES} == before
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == listing

        again = runner.invoke(app, [*first, "--out", str(out)])  # the same settings: reuses the directory
        assert again.exit_code == 0, again.output
        assert json.loads((out / "results.json").read_text())["status"] == "ok"


def test_m4le_run_refuses_a_rerun_with_other_options_before_it_loads_a_model(tmp_path: Path, monkeypatch) -> None:
    from kernelkit.longctx.backends import BACKENDS
    from kernelkit.longctx.serve import OpenAICompatServer

    out = tmp_path / "run"
    with OpenAICompatServer(_Echo()) as server:
        first, other, _ = _m4le(tmp_path, server.url)
        assert CliRunner().invoke(app, [*first, "--out", str(out)]).exit_code == 0

    def no_backend(name: str):
        raise AssertionError(f"the {name} backend was loaded before the rerun was refused")

    monkeypatch.setattr(BACKENDS, "get", no_backend)
    refused = CliRunner().invoke(app, [*other, "--out", str(out)])
    assert refused.exit_code == 2 and "limit: 2 -> 1" in refused.output, refused.output
