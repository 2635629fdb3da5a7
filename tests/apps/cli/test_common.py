"""``run_options``: the seven common run options, declared once and passed to a command as ``RunOptions``."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from kernelkit.apps.cli.common import RunOptions, run_options
from kernelkit.apps.configs.base import RunSettings

ENV = {"COLUMNS": "400", "NO_COLOR": "1"}
OPTIONS = ("--out", "--device", "--seed", "--threads", "--data-dir", "--json", "--quiet")


@dataclass(kw_only=True)
class _Settings(RunSettings):
    device: str = "cpu"
    seed: int = 7
    threads: int = 3


def _app(defaults: type[RunSettings] = _Settings) -> tuple[typer.Typer, list[tuple[int, RunOptions]]]:
    app = typer.Typer()
    calls: list[tuple[int, RunOptions]] = []

    @app.command("go")
    @run_options(defaults)
    def go(size: Annotated[int, typer.Option("--size", help="A command's own option.")] = 5, *,
           opts: RunOptions) -> None:
        """Record what the command receives."""
        calls.append((size, opts))

    @app.command("other")
    def other() -> None:
        """A second command, so ``go`` is a subcommand."""

    return app, calls


def test_help_lists_the_seven_options_after_the_commands_own():
    app, _ = _app()
    r = CliRunner().invoke(app, ["go", "--help"], env=ENV)
    assert r.exit_code == 0, r.output
    assert "Record what the command receives." in r.output
    positions = [r.output.index(name) for name in ("--size", *OPTIONS)]
    assert positions == sorted(positions)
    assert "-q" in r.output
    assert "[default: cpu]" in r.output and "[default: 7]" in r.output and "[default: 3]" in r.output


def test_defaults_come_from_the_settings_class():
    app, calls = _app()
    r = CliRunner().invoke(app, ["go"], env=ENV)
    assert r.exit_code == 0, r.output
    assert calls == [(5, RunOptions(out=None, device="cpu", seed=7, threads=3, data_dir=None, as_json=False,
                                    quiet=False))]
    assert calls[0][1].settings() == {"device": "cpu", "seed": 7, "threads": 3, "data_root": None}


def test_given_values_reach_the_command(tmp_path):
    app, calls = _app(RunSettings)
    r = CliRunner().invoke(app, ["go", "--size", "2", "--out", str(tmp_path / "run"), "--device", "cuda:1",
                                 "--seed", "11", "--threads", "4", "--data-dir", str(tmp_path), "--json", "-q"],
                           env=ENV)
    assert r.exit_code == 0, r.output
    size, opts = calls[0]
    assert size == 2
    assert opts == RunOptions(out=tmp_path / "run", device="cuda:1", seed=11, threads=4, data_dir=tmp_path,
                              as_json=True, quiet=True)
    assert opts.settings() == {"device": "cuda:1", "seed": 11, "threads": 4, "data_root": str(tmp_path)}
    assert RunSettings(**opts.settings()).data_root == str(tmp_path)


def test_base_settings_defaults():
    app, calls = _app(RunSettings)
    assert CliRunner().invoke(app, ["go"], env=ENV).exit_code == 0
    assert calls[0][1] == RunOptions()
    assert (RunOptions().device, RunOptions().seed, RunOptions().threads) == ("auto", 0, 0)


def test_negative_threads_exit_2():
    app, calls = _app()
    r = CliRunner().invoke(app, ["go", "--threads", "-1"], env=ENV)
    assert r.exit_code == 2
    assert "--threads" in r.output
    assert calls == []


def test_signature_and_type_hints_hold_real_annotations():
    import typing

    app, _ = _app()
    go = app.registered_commands[0].callback
    assert go is not None
    sig = inspect.signature(go, eval_str=True)
    assert list(sig.parameters) == ["size", "out", "device", "seed", "threads", "data_dir", "as_json", "quiet"]
    hints = typing.get_type_hints(go)
    assert hints["out"] == Path | None and hints["seed"] is int
    assert go(size=1) is None  # callable directly too: omitted options take their defaults


def test_a_command_without_keyword_only_opts_is_refused():
    with pytest.raises(TypeError, match="opts"):
        @run_options()
        def bad(opts: RunOptions) -> None:
            pass

    with pytest.raises(TypeError, match="seed"):
        @run_options()
        def clash(seed: int = 0, *, opts: RunOptions) -> None:
            pass


def test_usage_errors_print_one_plain_line_that_keeps_long_paths_whole(tmp_path):
    import os
    import subprocess
    import sys

    missing = tmp_path / ("a-rather-long-folder-name-" * 4) / "inputs-that-do-not-exist.npy"
    r = subprocess.run([sys.executable, "-m", "kernelkit", "ntk", "analytic", "--inputs", str(missing)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "80"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and str(missing) in lines[0], r.stderr
