"""The real-data NNGP/NTK regression recipe: kernels per depth, the regression, the published box and the verdicts."""

from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from kernelkit.apps.configs.ntk_real_data import NtkRealDataConfig
from kernelkit.apps.recipes import EXPERIMENTS, ExperimentContext, recipe_configs
from kernelkit.apps.recipes.ntk_real_data import (
    LEE_TABLE1,
    LEE_URL,
    TOLERANCE,
    ImageSplit,
    centred_one_hot,
    depth_kernel_fn,
    differs_line,
    network,
    published_rows,
    real_data,
    regression_accuracy,
    regression_outputs,
    verdict,
    verdict_lines,
)
from kernelkit.ntk import analytic
from kernelkit.runs import Run, Section


def test_recipe_registers_its_config_and_quick_only_shrinks_the_full_run() -> None:
    entry = EXPERIMENTS.entry("ntk_real_data")
    assert entry.meta["system"] == "ntk" and entry.meta["config"] is NtkRealDataConfig
    full, quick = asdict(NtkRealDataConfig()), asdict(NtkRealDataConfig.quick())
    assert {k for k in full if full[k] != quick[k]} == {"n_train", "n_test", "depths", "train_sizes", "block",
                                                        "depths_per_pass"}
    assert full["n_train"] + full["n_test"] == 10_000 and max(full["depths"]) == 20
    assert recipe_configs(["ntk_real_data"], quick=True)["ntk_real_data"] == quick


@pytest.mark.parametrize("changes", [{"size_depth": 4}, {"train_sizes": (100, 9000)}, {"datasets": ("svhn",)},
                                     {"depths": (0, 3)}, {"weight_var": 0.0}])
def test_config_rejects_settings_it_cannot_run(changes: dict) -> None:
    with pytest.raises(ValueError):
        replace(NtkRealDataConfig(), **changes)


def test_one_pass_gives_the_analytic_kernels_of_each_depths_network() -> None:
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(7, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)
    depths = (4, 1, 2)
    stacked, sym = depth_kernel_fn(depths, 2.0, 0.1)(x1, x2), depth_kernel_fn(depths, 2.0, 0.1)(x1, None)
    assert stacked.shape == (6, 7, 4) and sym.shape == (6, 7, 7)
    for i, depth in enumerate(sorted(depths)):
        ref, ref_sym = analytic(network(depth, 2.0, 0.1), x1, x2), analytic(network(depth, 2.0, 0.1), x1)
        torch.testing.assert_close(stacked[2 * i], ref.nngp, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(stacked[2 * i + 1], ref.ntk, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(sym[2 * i + 1], ref_sym.ntk, rtol=1e-12, atol=1e-12)


def test_one_hidden_layer_kernels_match_the_arc_cosine_closed_form() -> None:
    """Independent reference: Cho & Saul's arc-cosine formulas written out in plain torch."""
    g = torch.Generator().manual_seed(1)
    x, z = torch.randn(6, 9, generator=g, dtype=torch.float64), torch.randn(5, 9, generator=g, dtype=torch.float64)
    w2, b2 = 2.0, 0.1
    k = depth_kernel_fn((1,), w2, b2)(x, z)
    s12 = w2 * x @ z.T / 9 + b2
    s11, s22 = w2 * (x * x).sum(1) / 9 + b2, w2 * (z * z).sum(1) / 9 + b2
    norm = torch.sqrt(s11[:, None] * s22[None, :])
    theta = torch.arccos((s12 / norm).clamp(-1, 1))
    nngp = w2 * norm / (2 * math.pi) * (torch.sin(theta) + (math.pi - theta) * torch.cos(theta)) + b2
    ntk = nngp + w2 * (math.pi - theta) / (2 * math.pi) * s12
    torch.testing.assert_close(k[0], nngp, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(k[1], ntk, rtol=1e-12, atol=1e-12)


def test_regression_equals_a_direct_numpy_solve() -> None:
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(30, 12))
    k_all = feats @ feats.T / 12 + 0.5
    labels = rng.integers(0, 10, size=30)
    k_train, k_test = k_all[:20, :20], k_all[20:, :20]
    reg = 1e-3
    y = np.eye(10)[labels[:20]] - 0.1
    expected = k_test @ np.linalg.solve(k_train + reg * np.mean(np.diag(k_train)) * np.eye(20), y)
    out = regression_outputs(torch.from_numpy(k_train), torch.from_numpy(k_test), torch.from_numpy(labels[:20]), reg)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-9, atol=1e-10)
    acc = regression_accuracy(torch.from_numpy(k_train), torch.from_numpy(k_test), torch.from_numpy(labels[:20]),
                              torch.from_numpy(labels[20:]), reg)
    assert acc == pytest.approx(float(np.mean(expected.argmax(1) == labels[20:])))


def test_targets_are_centred_one_hot() -> None:
    t = centred_one_hot(torch.tensor([2, 0]))
    assert t.shape == (2, 10) and t[0, 2] == pytest.approx(0.9) and t[1, 0] == pytest.approx(0.9)
    assert t.sum(1).tolist() == pytest.approx([0.0, 0.0])


def test_verdict_rule() -> None:
    assert verdict(0.9279 + TOLERANCE * 0.75, 0.9279, same_n=True) == "supported"
    assert verdict(0.9279 - TOLERANCE * 0.75, 0.9279, same_n=True) == "supported"
    assert verdict(0.9279 - TOLERANCE * 1.25, 0.9279, same_n=True) == "not supported"
    assert verdict(0.9279, 0.9279, same_n=False).startswith("inconclusive")
    assert verdict(0.9279, 0.9279, same_n=True, same_data=False).startswith("inconclusive")


def test_published_rows_are_lee_et_al_table_1() -> None:
    mnist, cifar = published_rows("mnist"), published_rows("cifar10")
    assert len(mnist) == len(cifar) == 6 and len(LEE_TABLE1) == 12
    gp = {(p.dataset, p.n_train): p.accuracy for p in LEE_TABLE1 if p.model == "NNGP"}
    assert gp == {("mnist", 1000): 0.9279, ("mnist", 10000): 0.9765, ("mnist", 50000): 0.9875,
                  ("cifar10", 1000): 0.3608, ("cifar10", 10000): 0.4780, ("cifar10", 45000): 0.5566}
    assert LEE_URL == "https://arxiv.org/abs/1711.00165"


def _split(key: str = "mnist", real: bool = True, n_train: int = 8000) -> ImageSplit:
    x = torch.zeros(1, 4)
    return ImageSplit(key, "MNIST" if real else "digits", real, x, torch.zeros(n_train), x, torch.zeros(2000), "")


def test_verdict_lines_compare_at_the_same_n_and_say_inconclusive_elsewhere() -> None:
    cfg = NtkRealDataConfig()
    acc = {("mnist", "NNGP", cfg.size_depth, n): a for n, a in ((1000, 0.92), (8000, 0.97))}
    acc["mnist", "NNGP", 1, 1000] = 0.5  # another depth: not the one fixed in advance
    lines = {v["published N"]: v for v in verdict_lines(_split(), acc, cfg)}
    assert set(lines) == {1000, 10000, 50000}
    assert lines[1000]["our N"] == 1000 and lines[1000]["verdict"] == "supported"
    assert lines[10000]["our N"] == 8000 and lines[10000]["verdict"] == "inconclusive (different N)"
    acc["mnist", "NNGP", cfg.size_depth, 1000] = 0.85
    assert verdict_lines(_split(), acc, cfg)[0]["verdict"] == "not supported"
    assert {v["verdict"] for v in verdict_lines(_split(real=False), acc, cfg)} == {"inconclusive (different data)"}


def test_differs_line_names_every_difference() -> None:
    line = differs_line(_split("cifar10"), NtkRealDataConfig())
    for part in ("8000 training and 2000 test", "test split", "JPEG", "σw² = 2", "σb² = 0.1", "validation",
                 "lookup table", "1e-06", "equal norm", "no NTK"):
        assert part in line


def _run(tmp_path: Path, cfg: NtkRealDataConfig, root: Path) -> Section:
    run = Run.create("real", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("ntk_real_data", "real data")
    real_data(ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=root, config=cfg))
    return sec


def _real_root() -> Path | None:
    from kernelkit.data.imagefolder import CIFAR10_JPG_FILE
    from kernelkit.data.root import data_root, find

    if find("mnist/t10k-images-idx3-ubyte.gz") is None or find(CIFAR10_JPG_FILE) is None:
        return None
    return data_root()


def test_quick_run_on_real_mnist_and_cifar_is_far_above_chance(tmp_path: Path) -> None:
    root = _real_root()
    if root is None:
        pytest.skip("real data not found (set KERNELKIT_DATA or place the shared data at ../shared/data)")
    cfg = NtkRealDataConfig.quick()
    sec = _run(tmp_path, cfg, root)
    res = sec.results["ntk_real_data"]
    top = {(r["dataset"], r["kernel"], r["depth"]): r["accuracy"] for r in res["accuracy"]
           if r["n_train"] == cfg.n_train}
    assert len(top) == 2 * 2 * len(cfg.depths)
    for (dataset, _, _), a in top.items():  # chance is 0.1
        assert a > (0.85 if dataset == "mnist" else 0.25), (dataset, a)
    assert res["data"] == {"mnist": "MNIST", "cifar10": "CIFAR-10 (JPEG)"}
    assert any("MNIST test split" in d for d in sec.results["data"])
    boxes = [item for kind, item in sec.items if kind == "published"]
    assert len(boxes) == 2 and all(LEE_URL in b.source and "review version" in b.note for b in boxes)
    assert len([1 for kind, _ in sec.items if kind == "figure"]) == 2
    assert {v["verdict"] for v in res["verdicts"]} == {"inconclusive (different N)"}  # quick N = 500 only


def test_without_data_the_digits_stand_in_and_cifar_is_skipped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KERNELKIT_DATA", raising=False)
    empty = tmp_path / "no-data"
    empty.mkdir()
    cfg = replace(NtkRealDataConfig.quick(), n_train=200, n_test=200, depths=(1, 3), train_sizes=(100, 200),
                  size_depth=1)
    sec = _run(tmp_path, cfg, empty)
    res = sec.results["ntk_real_data"]
    assert res["data"] == {"mnist": "scikit-learn 8×8 digits (MNIST not found)"}
    assert any("scikit-learn" in d for d in sec.results["data"])
    assert any("CIFAR-10 was not found" in t for kind, t in sec.items if kind == "text")
    assert all(r["accuracy"] > 0.8 for r in res["accuracy"] if r["n_train"] == 200)
    assert {v["verdict"] for v in res["verdicts"]} == {"inconclusive (different data)"}
    tables = [item for kind, item in sec.items if kind == "table"]
    assert "scikit-learn" in str(tables[0].rows)
