"""ntk_conv_cifar: the regression solve, the regulariser rule, the verdict rules, the published box and quick runs on
real CIFAR-10 (skipped without it) and on the embedded stand-in."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from kernelkit.apps.configs.ntk_conv_cifar import NtkConvCifarConfig
from kernelkit.apps.recipes import EXPERIMENTS, ExperimentContext, recipe_configs
from kernelkit.apps.recipes.ntk_conv_cifar import (
    PUBLISHED,
    balanced_split,
    centred_one_hot,
    conv_cifar,
    cross_validated_ridge,
    paired_difference,
    published_rows,
    published_verdict,
    regress,
    same_n_verdict,
)
from kernelkit.runs import Run, Section


def _psd(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, 3 * n, generator=g, dtype=torch.float64)
    return a @ a.T / (3 * n)


def test_recipe_registers_its_config_and_quick_only_shrinks_it() -> None:
    entry = EXPERIMENTS.entry("ntk_conv_cifar")
    assert entry.meta["system"] == "ntk" and entry.meta["config"] is NtkConvCifarConfig
    full, quick = asdict(NtkConvCifarConfig()), asdict(NtkConvCifarConfig.quick())
    assert {k for k in full if full[k] != quick[k]} == {"n_train", "n_test", "depth", "wrn_block_size", "ridge_grid"}
    assert quick["image_size"] == full["image_size"] == 8
    assert recipe_configs(["ntk_conv_cifar"], quick=True)["ntk_conv_cifar"] == quick


def test_config_rejects_sizes_the_recipe_cannot_run() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        NtkConvCifarConfig(image_size=10)
    with pytest.raises(ValueError, match="10,000"):
        NtkConvCifarConfig(n_train=9000, n_test=2000)
    with pytest.raises(ValueError, match="ridge_grid"):
        NtkConvCifarConfig(ridge_grid=(0.0, 1.0))


def test_regression_equals_a_direct_numpy_solve() -> None:
    n, m, ridge = 30, 7, 1e-2
    k_all = _psd(n + m)
    k_train, k_test = k_all[:n, :n], k_all[n:, :n]
    labels = torch.arange(n) % 10
    ours = regress(k_train, k_test, labels, ridge).numpy()
    kn = k_train.numpy()
    y = np.eye(10)[labels.numpy()] - 0.1
    reference = k_test.numpy() @ np.linalg.solve(kn + ridge * np.mean(np.diag(kn)) * np.eye(n), y)
    np.testing.assert_allclose(ours, reference, rtol=1e-10, atol=1e-12)
    assert np.allclose(centred_one_hot(labels).sum(1).numpy(), 0.0)


def test_ridge_is_chosen_by_cross_validation_on_the_training_kernel() -> None:
    """Labels that a linear kernel of one feature predicts: any small λ classifies the folds; a huge λ shrinks the
    outputs but keeps their argmax, so the tie goes to the larger λ; λ values are scored on held-out folds."""
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(100) % 10
    feats = torch.nn.functional.one_hot(labels, 10).double() + 0.01 * torch.randn(100, 10, generator=g,
                                                                                  dtype=torch.float64)
    k = feats @ feats.T
    best, scores = cross_validated_ridge(k, labels, (1e-3, 1e-1), folds=5, seed=0)
    assert scores == {1e-3: 1.0, 1e-1: 1.0} and best == 1e-1
    noise = torch.randn(100, 100, generator=g, dtype=torch.float64)
    _, noisy = cross_validated_ridge(noise @ noise.T, labels, (1e-3,), folds=5, seed=0)
    assert noisy[1e-3] < 0.4  # a kernel unrelated to the labels scores near chance on held-out folds


def test_balanced_split_is_disjoint_and_class_balanced() -> None:
    targets = torch.arange(1000) % 10
    tr, te = balanced_split(targets, 45, 30, seed=3)
    assert len(tr) == 45 and len(te) == 30 and not set(tr.tolist()) & set(te.tolist())
    assert torch.bincount(targets[tr], minlength=10).tolist() == [5] * 5 + [4] * 5
    assert torch.bincount(targets[te], minlength=10).tolist() == [3] * 10


def test_same_n_verdict_rule() -> None:
    assert same_n_verdict(0.05, 0.02) == "supported"
    assert same_n_verdict(0.03, 0.02) == "inconclusive"
    assert same_n_verdict(-0.05, 0.02) == "not supported"
    a = torch.tensor([1, 1, 0, 1, 0, 1, 1, 1])
    b = torch.tensor([0, 1, 0, 1, 0, 0, 1, 0])
    diff, se = paired_difference(a, b)
    d = (a - b).double().numpy()
    assert diff == pytest.approx(0.375) and se == pytest.approx(d.std(ddof=1) / np.sqrt(8))


def test_published_verdict_decides_only_at_the_same_n() -> None:
    assert published_verdict(0.70, 0.78, 400, 50_000, 0.02) == "inconclusive"
    assert published_verdict(0.77, 0.78, 2000, 2000, 0.01) == "supported"
    assert published_verdict(0.70, 0.78, 2000, 2000, 0.01) == "not supported"


def test_published_rows_name_their_source_and_flag_unverified_values() -> None:
    rows = published_rows()
    assert len(rows) == len(PUBLISHED) >= 1
    for row, p in zip(rows, PUBLISHED, strict=True):
        assert "https://arxiv.org/abs/" in row["source"] and 0 < row["accuracy"] < 1
        assert row["verified in text"] == ("yes" if p.verified else "NO")
        if not p.verified:
            assert "UNVERIFIED" in row["source"]
    assert any(p.verified for p in PUBLISHED)


def _run(tmp_path: Path, cfg: NtkConvCifarConfig, root: Path) -> Section:
    run = Run.create("conv", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("ntk_conv_cifar", "conv kernels")
    conv_cifar(ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=root, config=cfg))
    return sec


def test_without_data_the_digits_stand_in_and_are_named(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("KERNELKIT_DATA", raising=False)
    empty = tmp_path / "no-data"
    empty.mkdir()
    cfg = replace(NtkConvCifarConfig.quick(), n_train=50, n_test=30, depth=1, image_size=4)
    sec = _run(tmp_path, cfg, empty)
    res = sec.results["conv_cifar"]
    assert not res["real_data"] and "digits" in res["data"]
    assert any(d.startswith("EMBEDDED FALLBACK") and "scikit-learn" in d for d in sec.results["data"])
    tables = [item for kind, item in sec.items if kind == "table"]
    assert "STAND-IN" in tables[0].title
    assert all(r["test accuracy"] > 0.4 for r in res["rows"])  # digits: chance is 0.1
    (box,) = [item for kind, item in sec.items if kind == "published"]
    assert "NOT CIFAR-10" in box.differs and "50,000" in box.differs


def _cifar_root() -> Path | None:
    from kernelkit.data.imagefolder import CIFAR10_JPG_FILE
    from kernelkit.data.root import data_root, find

    return data_root() if find(CIFAR10_JPG_FILE) is not None else None


def test_quick_run_on_real_cifar10_is_above_chance(tmp_path: Path) -> None:
    root = _cifar_root()
    if root is None:
        pytest.skip("CIFAR-10 JPEGs not found: set KERNELKIT_DATA to the data root holding cifar10_jpg/")
    cfg = NtkConvCifarConfig.quick()
    sec = _run(tmp_path, cfg, root)
    res = sec.results["conv_cifar"]
    assert res["real_data"] and res["data"] == "CIFAR-10" and res["image_size"] == 8
    accs = [r["test accuracy"] for r in res["rows"]]
    assert len(accs) == 6 and min(accs) > 0.1
    assert sum(accs) / 6 > 0.17  # chance 0.10; 0.17 is 5 binomial SEs above it for 480 predictions
    tables = [item for kind, item in sec.items if kind == "table"]
    assert "downsampled 32x32 -> 8x8" in tables[0].title
    verdicts = res["verdicts"]
    assert {v["verdict"] for v in verdicts[2:]} == {"inconclusive"}  # published values are at N = 50,000
    assert all(v["verdict"] in ("supported", "not supported", "inconclusive") for v in verdicts[:2])
    assert len([1 for kind, _ in sec.items if kind == "figure"]) == 1
