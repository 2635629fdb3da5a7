"""``kernelkit ntk`` commands end to end (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from kernelkit.utils.checkpoint import load_tensors


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kernelkit", "ntk", *args, "--threads", "1"],
                          capture_output=True, text=True, timeout=240)


def test_analytic_and_empirical_from_csv(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 3))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    out = tmp_path / "run"
    r = _run("analytic", "--inputs", str(tmp_path / "x.csv"), "--depth", "3", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    ntk = np.load(out / "ntk_analytic" / "ntk.npy")
    assert ntk.shape == (6, 6) and np.allclose(ntk, ntk.T)
    st = load_tensors(out / "ntk_analytic" / "kernels.safetensors")
    assert np.allclose(st["nngp"].numpy(), np.load(out / "ntk_analytic" / "nngp.npy"))
    assert list((out / "plots").glob("*heatmap*.png")) and (out / "report.html").exists()

    np.save(tmp_path / "x.npy", x)
    out2 = tmp_path / "run2"
    r = _run("empirical", "--inputs", str(tmp_path / "x.npy"), "--width", "64", "--out", str(out2), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["sections"]["ntk_empirical"]
    assert 0 < res["relative_frobenius_distance_to_limit"] < 1


def test_predict_and_bad_input(tmp_path):
    out = tmp_path / "p"
    r = _run("predict", "--train", "circle", "--n-train", "6", "--n-test", "10", "--t", "50", "--out", str(out),
             "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["sections"]["ntk_predict"]["predictions"]
    assert [row["t"] for row in rows] == ["50", "inf"]
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,nan\n")
    r = _run("analytic", "--inputs", str(bad), "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "NaN" in r.stderr
    r = _run("analytic", "--inputs", str(tmp_path / "missing.npy"))
    assert r.returncode == 2 and "missing.npy" in r.stderr
