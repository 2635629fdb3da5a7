"""Bad input to the ntk, fscil and convnet commands and to the common options (issue 14): every row ends with
exit status 2 (usage) or 1 (runtime failure), one message naming the option or file, and no traceback.

The rows run in-process through typer's ``CliRunner`` (an exception that escapes a command shows up as
``result.exception`` that is not a ``SystemExit``); one row also runs as a real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from kernelkit.apps.cli.convnet import app as convnet_app
from kernelkit.apps.cli.fscil import app as fscil_app
from kernelkit.apps.cli.ntk import app as ntk_app

app = typer.Typer()  # the command groups under test, as ``kernelkit`` mounts them
for _name, _group in (("ntk", ntk_app), ("convnet", convnet_app), ("fscil", fscil_app)):
    app.add_typer(_group, name=_name)

ENV = {"COLUMNS": "400", "NO_COLOR": "1", "KERNELKIT_DATA": ""}


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]  # "{tmp}" is replaced by the test's temporary directory
    code: int  # 2: usage error, 1: runtime failure
    says: tuple[str, ...]  # each must appear in the output (the option or file named, and why)
    never: tuple[str, ...] = ()  # must not appear (a wrong option blamed, torch's internals)


FSCIL = ("fscil", "run", "--dataset", "digits", "--epochs", "0", "--threads", "1")
ANALYTIC = ("ntk", "analytic", "--n", "4", "--threads", "1")

CASES = [
    Case("fscil-unknown-backbone", (*FSCIL, "--backbone", "nosuch"), 2, ("--backbone", "nosuch")),
    Case("fscil-negative-lr", (*FSCIL, "--lr=-1"), 2, ("--lr", "> 0")),
    Case("fscil-zero-lr", (*FSCIL, "--lr", "0"), 2, ("--lr", "> 0")),
    Case("fscil-zero-tau", (*FSCIL, "--tau", "0"), 2, ("--tau", "> 0")),
    Case("fscil-negative-tau", (*FSCIL, "--tau", "-1"), 2, ("--tau", "> 0")),
    Case("fscil-alpha-out-of-range", (*FSCIL, "--alpha", "2"), 2, ("--alpha", "[0, 1]")),
    Case("fscil-temperature-zero", (*FSCIL, "--temperature", "0"), 2, ("--temperature", "> 0")),
    Case("fscil-sessions-on-digits", (*FSCIL, "--sessions", "100"), 2, ("--sessions", "omniglot only")),
    Case("fscil-too-many-omniglot-sessions",
         ("fscil", "run", "--dataset", "omniglot", "--sessions", "100"), 2, ("--sessions", "at most 66")),
    Case("fscil-too-many-omniglot-base", ("fscil", "run", "--dataset", "omniglot", "--num-base", "2000"), 2,
         ("--num-base", "at most 964")),
    Case("ntk-predict-negative-time", ("ntk", "predict", "--t=-5", "--n-test", "4"), 2, ("--t", ">= 0")),
    Case("ntk-predict-zero-lr", ("ntk", "predict", "--lr", "0", "--n-test", "4"), 2, ("--lr", "> 0")),
    Case("ntk-analytic-negative-beta", (*ANALYTIC, "--beta", "-1"), 2, ("--beta", ">= 0")),
    Case("ntk-analytic-bad-parametrization", (*ANALYTIC, "--parametrization", "mup"), 2,
         ("--parametrization", "ntk, standard")),
    Case("ntk-analytic-out-is-a-file", (*ANALYTIC, "--out", "{tmp}/a_file"), 2,
         ("--out", "a_file", "not a directory")),
    Case("ntk-analytic-out-under-a-file", (*ANALYTIC, "--out", "{tmp}/a_file/run"), 2,
         ("--out", "a_file/run", "cannot create")),
    Case("ntk-inputs-is-a-directory", (*ANALYTIC, "--inputs", "{tmp}/root"), 2, ("root", "is a directory")),
    Case("ntk-text-as-npz", (*ANALYTIC, "--inputs", "{tmp}/text.npz"), 2, ("text.npz", "not a valid .npz"),
         ("pickle",)),
    Case("ntk-text-as-npy", (*ANALYTIC, "--inputs", "{tmp}/text.npy"), 2, ("text.npy", "not a valid .npy"),
         ("pickle",)),
    Case("ntk-text-as-npy-targets", ("ntk", "predict", "--train", "{tmp}/x.npy", "--y", "{tmp}/text.npy",
                                     "--n-train", "3", "--n-test", "4"), 2, ("text.npy", "not a valid .npy"),
         ("pickle",)),
    Case("erf-bad-compare-kernel", ("convnet", "erf", "--compare-kernel", "4", "--images", "1"), 2,
         ("--compare-kernel 4", "got 4"), ("--model",)),
    Case("mixconv-text-as-cifar-zip",
         ("convnet", "mixconv-ablation", "--quick", "--seeds", "1", "--kernel-sets", "3", "--epochs", "1",
          "--data-dir", "{tmp}/root", "--out", "{tmp}/run"), 1,
         ("cifar10_jpg_test.zip", "not a zip file")),
    *(Case(f"{args[0]}-{args[1]}-data-dir-is-a-file", (*args, "--data-dir", "{tmp}/a_file"), 2,
           ("--data-dir", "a_file", "not a directory"), ("does not exist",))
      for args in (ANALYTIC, FSCIL, ("convnet", "mixnet-info"))),
    *(Case(f"{args[0]}-{args[1]}-unknown-device", (*args, "--device", "foo"), 2,
           ("--device", "'foo'", "auto, cpu, cuda, cuda:N, mps"), ("privateuseone", "mkldnn"))
      for args in (ANALYTIC, FSCIL, ("convnet", "mixnet-info"))),
    Case("unknown-device-index", (*ANALYTIC, "--device", "cuda:99"), 2, ("--device", "cuda:99")),
]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    import numpy as np

    (tmp_path / "a_file").write_text("not a directory\n")
    (tmp_path / "text.npz").write_text("0.1 0.2\n0.3 0.4\n")
    (tmp_path / "text.npy").write_text("0.1 0.2\n0.3 0.4\n")
    np.save(tmp_path / "x.npy", np.ones((3, 2)))
    (tmp_path / "root" / "cifar10_jpg").mkdir(parents=True)
    (tmp_path / "root" / "cifar10_jpg" / "cifar10_jpg_test.zip").write_text("this is not a zip file\n")
    return tmp_path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_exits_cleanly_naming_the_problem(case: Case, files: Path) -> None:
    args = [a.replace("{tmp}", str(files)) for a in case.args]
    r = CliRunner().invoke(app, args, env=ENV)
    assert r.exception is None or isinstance(r.exception, SystemExit), \
        f"escaped exception {type(r.exception).__name__}: {r.exception}"
    assert r.exit_code == case.code, r.output
    assert "Traceback" not in r.output
    for text in case.says:
        assert text in r.output, r.output
    for text in case.never:
        assert text not in r.output, r.output


def test_a_real_process_prints_one_line_and_no_traceback(files: Path) -> None:
    """The runtime-failure path as a user sees it: exit 1, one line on stderr naming the file."""
    r = subprocess.run([sys.executable, "-m", "kernelkit", "convnet", "mixconv-ablation", "--quick", "--seeds", "1",
                        "--kernel-sets", "3", "--epochs", "1", "--threads", "1", "--data-dir", str(files / "root"),
                        "--out", str(files / "run")], capture_output=True, text=True, timeout=240,
                       env={**os.environ, **ENV})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cifar10_jpg_test.zip" in lines[0], r.stderr
