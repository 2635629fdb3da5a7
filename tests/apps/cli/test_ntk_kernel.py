"""``kernelkit ntk kernel``: a blocked kernel in a ``.npy`` file equals ``ntk.analytic``; resume; exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from kernelkit.apps.cli.ntk import app as ntk_app
from kernelkit.ntk import analytic
from kernelkit.ntk.training import fc_network

app = typer.Typer()  # the ntk group as ``kernelkit`` mounts it
app.add_typer(ntk_app, name="ntk")
ENV = {"COLUMNS": "400", "NO_COLOR": "1"}


@pytest.fixture(autouse=True)
def _keep_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _kernel(*args: str, quiet: bool = True) -> typer.testing.Result:
    r = CliRunner().invoke(app, ["ntk", "kernel", *args, "--threads", "1", *(["--quiet"] if quiet else [])],
                           env=ENV)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    return r


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.normal(size=(23, 5)))
    np.save(tmp_path / "y.npy", rng.normal(size=(9, 5)))
    return tmp_path / "x.npy", tmp_path / "y.npy"


@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_written_matrix_equals_analytic(tmp_path: Path, inputs: tuple[Path, Path], kind: str) -> None:
    x, y = inputs
    out = tmp_path / "k.npy"
    r = _kernel("--inputs", str(x), "--out-file", str(out), "--block", "5", "--kind", kind, "--depth", "4",
                "--beta", "0.3", "--out", str(tmp_path / "run"))
    assert r.exit_code == 0, r.output
    # the same 5 × 5 blocking: on the diagonal the ReLU arc-cosine turns the rounding of the input Gram matrix
    # (which depends on the block's shape) into errors of order sqrt(machine epsilon)
    direct = getattr(analytic(fc_network(1, 4, 0.3), torch.as_tensor(np.load(x)), batch_size=5), kind).numpy()
    whole = getattr(analytic(fc_network(1, 4, 0.3), torch.as_tensor(np.load(x))), kind).numpy()
    written = np.load(out)
    assert written.shape == (23, 23) and written.dtype == np.float64
    np.testing.assert_allclose(written, direct, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(written, whole, rtol=1e-7)
    assert np.array_equal(written, written.T)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["kind"] == kind and config["block"] == 5 and config["out_file"] == str(out)

    rect = tmp_path / "rect.npy"
    r = _kernel("--inputs", str(x), "--inputs2", str(y), "--out-file", str(rect), "--block", "4", "--kind", kind)
    assert r.exit_code == 0, r.output
    direct = getattr(analytic(fc_network(1, 3, 0.1), torch.as_tensor(np.load(x)), torch.as_tensor(np.load(y)),
                              batch_size=4), kind).numpy()
    np.testing.assert_allclose(np.load(rect), direct, rtol=1e-12, atol=1e-14)


def test_resume_keeps_finished_blocks_and_computes_the_rest(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    x, _ = inputs
    out = tmp_path / "k.npy"
    args = ("--inputs", str(x), "--out-file", str(out), "--block", "10")
    assert _kernel(*args).exit_code == 0
    full = np.load(out)
    # an interrupted run: block (0, 2) never recorded and never written; block (0, 0) recorded and kept
    done = out.with_name("k.npy.done.0.json")
    rec = json.loads(done.read_text())
    assert sorted(map(tuple, rec["blocks"])) == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    rec["blocks"] = [b for b in rec["blocks"] if tuple(b) != (0, 2)]
    done.write_text(json.dumps(rec))
    mm = np.lib.format.open_memmap(out, mode="r+")
    mm[0:10, 20:23] = 0.0
    mm[20:23, 0:10] = 0.0
    mm[0, 0] = -7.0  # a marker in a finished block: a resumed run must not recompute it
    mm.flush()
    del mm
    r = _kernel(*args, "--resume", "--json")
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout[r.stdout.index("{"):])["sections"]["ntk_kernel"]
    assert res["blocks"] == 6 and res["blocks_kept"] == 5
    resumed = np.load(out)
    assert resumed[0, 0] == -7.0
    resumed[0, 0] = full[0, 0]
    assert np.array_equal(resumed, full)


def test_exit_codes(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    x, _ = inputs
    out = tmp_path / "k.npy"
    base = ("--inputs", str(x), "--out-file", str(out), "--block", "8")
    assert _kernel(*base).exit_code == 0
    before = out.read_bytes()
    r = _kernel(*base)  # an existing file without --resume
    assert r.exit_code == 2 and "--out-file" in r.output and "--resume" in r.output
    for other, says in ((("--kind", "nngp"), "kind"), (("--depth", "5"), "depth"), (("--block", "4"), "block")):
        args = [*base[:-2], *(("--block", "8") if other[0] != "--block" else ()), *other, "--resume"]
        r = _kernel(*args)
        assert r.exit_code == 2 and "--out-file" in r.output and says in r.output, r.output
    assert out.read_bytes() == before  # a refused run leaves the file alone
    foreign = tmp_path / "foreign.npy"
    np.save(foreign, np.zeros((23, 23)))
    r = _kernel("--inputs", str(x), "--out-file", str(foreign), "--resume")
    assert r.exit_code == 2 and "not started by" in r.output
    np.save(x, np.load(x) + 1.0)  # same settings, other numbers in the input file
    r = _kernel(*base, "--resume")
    assert r.exit_code == 2 and "another kernel" in r.output, r.output
    cases = [(("--kind", "laplace"), "--kind"), (("--out-file", str(tmp_path / "k.txt")), "--out-file"),
             (("--out-file", str(tmp_path)), "--out-file"), (("--block", "0"), "--block"),
             (("--inputs", str(tmp_path / "missing.npy")), "missing.npy")]
    for extra, says in cases:
        args = ["--inputs", str(x), "--out-file", str(tmp_path / "new.npy"), "--block", "8"]
        for flag, value in zip(extra[::2], extra[1::2], strict=True):
            i = args.index(flag) if flag in args else len(args)
            args[i:i + 2] = [flag, value]
        r = _kernel(*args)
        assert r.exit_code == 2 and says in r.output, (extra, r.output)
    assert not (tmp_path / "new.npy").exists()


def test_progress_bar_counts_the_blocks_unless_quiet(tmp_path: Path, inputs: tuple[Path, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from kernelkit.ntk import blocked

    bars: list[dict[str, object]] = []

    class Recorder:
        def __init__(self, description: str, total: int | None = None, disable: bool = False) -> None:
            self.state: dict[str, object] = {"total": total, "disable": disable, "steps": 0}
            bars.append(self.state)

        def __enter__(self) -> Recorder:
            return self

        def advance(self, steps: int = 1, info: str | None = None) -> None:
            self.state["steps"] = int(self.state["steps"]) + steps  # type: ignore[call-overload]

        def __exit__(self, *exc: object) -> None:
            pass

    monkeypatch.setattr(blocked, "ProgressBar", Recorder)
    x, _ = inputs
    assert _kernel("--inputs", str(x), "--out-file", str(tmp_path / "a.npy"), "--block", "10", quiet=False
                   ).exit_code == 0
    assert bars == [{"total": 6, "disable": False, "steps": 6}]  # 3 × 3 blocks, upper triangle
    assert _kernel("--inputs", str(x), "--out-file", str(tmp_path / "b.npy"), "--block", "10").exit_code == 0
    assert bars[1]["disable"] is True
