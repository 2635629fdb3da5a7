"""Quality gates: ruff over the tree, mypy over all of src/, and the import-linter layering contracts."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def test_ruff_clean():
    r = subprocess.run([_tool("ruff"), "check", "src", "tests", "benchmarks"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_clean():
    r = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_covers_all_of_src():
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
    assert cfg["files"] == ["src/kernelkit"] and not cfg.get("exclude")


def test_import_contracts_kept():
    """The library never imports kernelkit.apps or typer; layers import downward only; no import cycles."""
    r = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"Contracts: [4-9]\d* kept, 0 broken", r.stdout), r.stdout


def test_import_contracts_catch_a_library_module_importing_the_cli(tmp_path):
    """The contracts can fail: a copy of the package whose utils import typer and kernelkit.apps is refused."""
    pkg = tmp_path / "kernelkit"
    shutil.copytree(REPO / "src" / "kernelkit", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "utils" / "bad_import.py").write_text("import typer\n\nfrom kernelkit.apps.cli import app\n")
    config = tmp_path / "contracts.toml"
    text = (REPO / "pyproject.toml").read_text()
    config.write_text(text[text.index("[tool.importlinter]"):])
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([_tool("lint-imports"), "--no-cache", "--config", str(config)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode != 0
    assert "kernelkit.utils.bad_import -> typer" in r.stdout
    assert "kernelkit.utils.bad_import -> kernelkit.apps" in r.stdout


def test_no_library_code_switches_the_matplotlib_backend():
    """Plots are plain ``matplotlib.figure.Figure`` objects; nothing calls ``matplotlib.use`` behind the caller."""
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "src").rglob("*.py")
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\bmatplotlib\.use\(|\bplt\.switch_backend\(", line)]
    assert not offenders, offenders
