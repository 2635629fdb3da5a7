"""CLI integration through a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys

ENV = {**os.environ, "COLUMNS": "400", "NO_COLOR": "1"}  # keep rich from wrapping error panels


def kk(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kernelkit", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600, env=ENV)


def test_info_json_lists_datasets():
    r = kk("info", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["kernelkit"] and info["torch"]
    assert isinstance(info["datasets"], list)


def test_invalid_arguments_exit_2_naming_the_problem(tmp_path):
    r = kk("reproduce", "--only", "no_such_system")
    assert r.returncode == 2 and "no_such_system" in r.stderr
    r = kk("info", "--threads", "-3")
    assert r.returncode == 2
    r = kk("info", "--data-dir", str(tmp_path / "missing"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = kk("list", "gizmos")
    assert r.returncode == 2 and "gizmos" in r.stderr
    r = kk("bench", "no_such_benchmark")
    assert r.returncode == 2 and "no_such_benchmark" in r.stderr


def test_reproduce_config_json_is_asdict_of_its_config(tmp_path):
    from dataclasses import asdict, fields

    from kernelkit.apps.configs.ntk import NtkFig1Config
    from kernelkit.apps.configs.reproduce import ReproduceConfig

    out = tmp_path / "run"
    r = kk("reproduce", "--quick", "--only", "ntk_fig1", "--threads", "1", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    config = json.loads((out / "config.json").read_text())
    assert set(config) == {f.name for f in fields(ReproduceConfig)}
    assert config["quick"] is True and config["only"] == ["ntk_fig1"] and config["experiments"] == ["ntk_fig1"]
    assert config["recipes"] == {"ntk_fig1": json.loads(json.dumps(asdict(NtkFig1Config.quick())))}
    assert config["device"] == "cpu" and config["threads"] == 1 and config["data_root"]
    assert ReproduceConfig(**config) is not None  # round-trips into the dataclass


def test_readme_table_of_common_options_matches_the_cli():
    """The README lists exactly which commands take which common options; the CLI's parameters must agree."""
    import re
    from pathlib import Path

    import typer

    from kernelkit.apps.cli import _add_system_groups, app

    common = ["--out", "--device", "--seed", "--threads", "--data-dir", "--json", "--quiet"]
    _add_system_groups()
    actual: dict[str, set[str]] = {}

    def walk(cmd, prefix):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*prefix, name])
        else:
            opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
            actual[" ".join(prefix)] = {o for o in common if o in opts}

    walk(typer.main.get_command(app), [])
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("| command | `--out`"):].split("\n\n")[0].splitlines()[2:]
    listed: dict[str, set[str]] = {}
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for item in re.findall(r"`([^`]+)`", cells[0]):
            group, _, subs = item.rpartition(" ")
            for sub in subs.split("/"):
                listed[f"{group} {sub}".strip()] = {o for o, c in zip(common, cells[1:], strict=True) if c}
    for name, opts in listed.items():
        assert actual[name] == opts, f"README row for {name}: {sorted(opts)} but the CLI has {sorted(actual[name])}"
    unlisted = {n for n, o in actual.items() if o and n not in listed}
    assert not unlisted, f"commands with common options missing from the README table: {sorted(unlisted)}"


def test_tables_wrap_at_80_columns_and_never_cut_names(tmp_path):
    """At 80 columns long paths and task names wrap onto more lines; nothing is cut with an ellipsis."""
    env80 = {**ENV, "COLUMNS": "80"}
    for args in (["info", "--data-dir", str(tmp_path)], ["m4le", "tasks", "--data-dir", str(tmp_path)]):
        r = subprocess.run([sys.executable, "-m", "kernelkit", *args], capture_output=True, text=True, timeout=300,
                           env=env80)
        assert r.returncode == 0, r.stderr
        text = r.stdout + r.stderr
        assert "…" not in text, f"{' '.join(args)} cut something at 80 columns"
        assert max(len(line) for line in text.splitlines()) <= 80


def test_bench_and_tune_refuse_nonsense_values_naming_the_option():
    for args, option in ((("bench", "depthwise_conv", "--min-run-time", "-1"), "--min-run-time"),
                         (("bench", "depthwise_conv", "--min-run-time", "nan"), "--min-run-time"),
                         (("tune", "model", "mixnet_s", "--batch", "0"), "--batch"),
                         (("tune", "ntk", "--samples", "0"), "--samples")):
        r = kk(*args)
        assert r.returncode == 2 and option in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)


def test_help_of_every_command_fits_80_columns_and_cuts_no_identifier():
    """``--help`` of every command and group at 80 columns: no line wider than 80, every option name printed
    whole, and no ellipsis but the ones the help texts themselves contain (nothing is cut)."""
    import typer
    from typer.testing import CliRunner

    from kernelkit.apps import cli

    if not cli.app.registered_groups:
        cli._add_system_groups()

    def walk(cmd, path=()):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, (*path, name))

    checked = 0
    for path, cmd in walk(typer.main.get_command(cli.app)):
        r = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
        assert r.exit_code == 0, (path, r.output)
        lines = r.output.splitlines()
        assert max(len(line) for line in lines) <= 80, (path, [line for line in lines if len(line) > 80])
        for param in cmd.params:
            for opt in param.opts:
                if opt.startswith("--"):
                    assert opt in r.output, (path, opt)
        own = (cmd.help or "") + "".join(getattr(p, "help", None) or "" for p in cmd.params)
        assert r.output.count("…") == own.count("…"), (path, [line for line in lines if "…" in line])
        checked += 1
    assert checked >= 30  # the groups and every command under them
