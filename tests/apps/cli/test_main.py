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
