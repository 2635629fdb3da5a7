"""``kernelkit ntk`` commands end to end (subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import fields

import numpy as np

from kernelkit.apps.configs.ntk import NtkEmpiricalConfig, NtkPredictConfig
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
    config = json.loads((out2 / "config.json").read_text())
    assert set(config) == {f.name for f in fields(NtkEmpiricalConfig)}
    assert config["compare"] is True and config["width"] == 64 and config["inputs"] == str(tmp_path / "x.npy")


def test_predict_and_bad_input(tmp_path):
    out = tmp_path / "p"
    r = _run("predict", "--train", "circle", "--n-train", "6", "--n-test", "10", "--t", "50", "--out", str(out),
             "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["sections"]["ntk_predict"]["predictions"]
    assert [row["t"] for row in rows] == ["50", "inf"]
    config = json.loads((out / "config.json").read_text())
    assert set(config) == {f.name for f in fields(NtkPredictConfig)}
    assert config["times"] == [50.0] and config["y"] is None and config["n_train"] == 6
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,nan\n")
    r = _run("analytic", "--inputs", str(bad), "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "NaN" in r.stderr
    r = _run("analytic", "--inputs", str(tmp_path / "missing.npy"))
    assert r.returncode == 2 and "missing.npy" in r.stderr


def test_targets_file_is_recorded(tmp_path):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "x.npy", rng.normal(size=(5, 2)))
    np.save(tmp_path / "y.npy", rng.normal(size=5))
    out = tmp_path / "p"
    r = _run("predict", "--train", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy"), "--test", "circle",
             "--n-test", "4", "--n-train", "5", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["y"] == str(tmp_path / "y.npy") and config["times"] == [100.0, 1000.0]


def test_predict_values_match_the_closed_form_gradient_flow(tmp_path):
    """The predicted test means and standard deviations equal the closed form computed here with scipy from the
    command's own saved kernels: loss |f - y|^2 / (2n), A = K*_ntk K_ntk^-1 (I - exp(-t K_ntk / n)),
    mean = A y, cov = K**_nngp - A K*_nngp^T - K*_nngp A^T + A K_nngp A^T (t = inf: A = K*_ntk K_ntk^-1);
    no diagonal regularization."""
    from scipy.linalg import expm

    rng = np.random.default_rng(3)
    np.save(tmp_path / "x.npy", rng.normal(size=(6, 2)))
    y = rng.normal(size=6)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "p"
    r = _run("predict", "--train", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy"), "--test", "circle",
             "--n-test", "5", "--n-train", "6", "--t", "3", "--t", "40", "--diag-reg", "0", "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["t"]: row for row in json.loads(r.stdout)["sections"]["ntk_predict"]["predictions"]}
    sec = out / "ntk_predict"
    ntk, nngp = np.load(sec / "ntk.npy"), np.load(sec / "nngp.npy")
    n = 6
    th, th_star, k, k_star, k_ss = ntk[:n, :n], ntk[n:, :n], nngp[:n, :n], nngp[n:, :n], nngp[n:, n:]
    for key, t in (("3", 3.0), ("40", 40.0), ("inf", None)):
        flow = np.eye(n) if t is None else np.eye(n) - expm(-t * th / n)
        a = th_star @ np.linalg.solve(th, flow)
        mean = a @ y
        std = np.sqrt(np.clip(np.diag(k_ss - a @ k_star.T - k_star @ a.T + a @ k @ a.T), 0, None))
        np.testing.assert_allclose(np.load(sec / f"mean_t{key}.npy").ravel(), mean, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(np.load(sec / f"std_t{key}.npy").ravel(), std, rtol=1e-5, atol=1e-7)
        assert abs(rows[key]["mean |f|"] - np.abs(mean).mean()) < 1e-6 * np.abs(mean).mean()
    assert not np.allclose(np.load(sec / "mean_t3.npy"), np.load(sec / "mean_tinf.npy"))  # t matters


def test_reproduce_rejects_an_unknown_figure(tmp_path):
    r = _run("reproduce", "--quick", "--only", "ntk_fig9", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "ntk_fig9" in r.stderr and "ntk_fig1" in r.stderr
