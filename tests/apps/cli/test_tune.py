"""``kernelkit tune``: measures into the one cache file ($KERNELKIT_CACHE/tune.json), show, clear, errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kernelkit import tune
from kernelkit.apps.cli.tune import app
from kernelkit.apps.configs.tune import TuneConfig


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache folder: testing the tuner's file, so the variable is patched."""
    monkeypatch.setenv("KERNELKIT_CACHE", str(tmp_path))
    tune.clear()
    yield tmp_path / "tune.json"
    tune.clear()


def test_tune_writes_the_cache_then_show_and_clear(cache) -> None:
    res = CliRunner().invoke(app, ["depthwise", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert rows and {r["op"] for r in rows} == {"depthwise"}
    assert all(r["choice"] in r["ms"] for r in rows)
    on_disk = json.loads(cache.read_text())["entries"]
    assert len(on_disk) == len(rows)
    again = CliRunner().invoke(app, ["depthwise", "--quick"])
    assert again.exit_code == 0 and "nothing new" in again.output  # cached: measured once
    shown = CliRunner().invoke(app, ["show", "--json"])
    assert shown.exit_code == 0 and len(json.loads(shown.stdout)) == len(rows)
    assert not tune.is_enabled()  # the command's tuning ended with it
    cleared = CliRunner().invoke(app, ["clear"])
    assert cleared.exit_code == 0 and not cache.exists()


def test_tune_mixconv_and_ntk_quick(cache) -> None:
    res = CliRunner().invoke(app, ["mixconv", "--quick", "--json"])
    assert res.exit_code == 0, res.output
    assert "mixconv" in {r["op"] for r in json.loads(res.stdout)}
    res = CliRunner().invoke(app, ["ntk", "--quick", "--samples", "3", "--json"])
    assert res.exit_code == 0, res.output
    (row,) = json.loads(res.stdout)
    assert row["op"] == "ntk" and set(row["ms"]) == {"structured", "jacobian"}


def test_tune_model_and_usage_errors(cache) -> None:
    res = CliRunner().invoke(app, ["model", "mixnet_s", "--size", "32", "--quiet"])
    assert res.exit_code == 0, res.output
    assert any(k.startswith("mixconv|") for k in json.loads(cache.read_text())["entries"])
    bad = CliRunner().invoke(app, ["model", "mixnet_zz", "--quiet"])
    assert bad.exit_code == 2 and "mixnet_zz" in bad.output
    bad = CliRunner().invoke(app, ["model", "mixnet_s", "--batch", "0"])
    assert bad.exit_code == 2 and "batch" in bad.output


def test_config_validation_in_one_place() -> None:
    with pytest.raises(ValueError, match="target"):
        TuneConfig(target="everything")
    with pytest.raises(ValueError, match="model name"):
        TuneConfig(target="model")
    with pytest.raises(ValueError, match="size"):
        TuneConfig(target="mixconv", size=0)


def test_registered_in_the_main_command(tmp_path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "KERNELKIT_CACHE": str(tmp_path), "COLUMNS": "400", "NO_COLOR": "1"}
    r = subprocess.run([sys.executable, "-m", "kernelkit", "tune", "show", "--json"], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
