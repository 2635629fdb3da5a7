"""TEEN calibration and FSCIL metrics against independent float64 computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kernelkit.fscil import core


def _reference_calibration(base: np.ndarray, new: np.ndarray, tau: float, alpha: float) -> np.ndarray:
    """The official soft_calibration written out row by row in float64 numpy."""
    out = np.zeros_like(new, dtype=np.float64)
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    for c, row in enumerate(new):
        p = row / np.linalg.norm(row)
        s = tau * np.array([p @ bj for bj in b])
        w = np.exp(s - s.max())
        w /= w.sum()
        d = sum(wj * bj for wj, bj in zip(w, b, strict=True))
        d /= np.linalg.norm(d)
        out[c] = (1 - alpha) * p + alpha * d
    return out


@pytest.mark.parametrize(("tau", "alpha"), [(16.0, 0.1), (16.0, 0.5), (1.0, 0.9), (64.0, 1.0)])
def test_teen_calibrate_matches_float64_reference(tau: float, alpha: float) -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 32)) * rng.uniform(0.5, 3, size=(60, 1))
    new = rng.normal(size=(5, 32)) * 7.0
    got = core.teen_calibrate(torch.from_numpy(base), torch.from_numpy(new), tau=tau, alpha=alpha)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _reference_calibration(base, new, tau, alpha), rtol=1e-12, atol=1e-12)


def test_calibrated_rows_are_not_renormalised() -> None:
    rng = np.random.default_rng(1)
    base, new = torch.from_numpy(rng.normal(size=(10, 8))), torch.from_numpy(rng.normal(size=(3, 8)))
    norms = core.teen_calibrate(base, new, alpha=0.5).norm(dim=1)
    assert bool((norms < 1 - 1e-6).all())  # a convex mix of two unit vectors is shorter unless they coincide


def test_alpha_zero_is_the_normalised_prototype() -> None:
    rng = np.random.default_rng(2)
    base, new = torch.from_numpy(rng.normal(size=(10, 8))), torch.from_numpy(rng.normal(size=(4, 8)))
    got = core.teen_calibrate(base, new, tau=16.0, alpha=0.0)
    torch.testing.assert_close(got, new / new.norm(dim=1, keepdim=True), rtol=0, atol=1e-15)


def test_calibration_input_errors() -> None:
    with pytest.raises(ValueError, match="feature dimension mismatch"):
        core.teen_calibrate(torch.randn(10, 64), torch.randn(5, 32))
    with pytest.raises(ValueError, match="alpha"):
        core.teen_calibrate(torch.randn(10, 8), torch.randn(5, 8), alpha=1.5)
    with pytest.raises(ValueError, match="matrix"):
        core.teen_calibrate(torch.randn(10, 8), torch.randn(8))
    with pytest.raises(ValueError, match="feature dimension mismatch"):
        core.cosine_logits(torch.randn(4, 8), torch.randn(3, 9))


def test_cosine_logits_and_prototypes() -> None:
    feats = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [5.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 0])
    protos = core.class_prototypes(feats, labels, [1, 0])
    torch.testing.assert_close(protos, torch.tensor([[0.5, 1.5], [4.0, 0.0]]))
    logits = core.cosine_logits(feats[:1], protos, temperature=16.0)
    torch.testing.assert_close(logits, 16.0 * torch.tensor([[0.5 / math.sqrt(2.5), 1.0]]))
    with pytest.raises(ValueError, match="class 7 has no training samples"):
        core.class_prototypes(feats, labels, [0, 7])


def test_session_metrics_by_hand() -> None:
    # base classes 0, 1 (2 test samples each); new classes 5, 6 (2 each)
    targets = torch.tensor([0, 0, 1, 1, 5, 5, 6, 6])
    preds = torch.tensor([0, 5, 1, 1, 0, 5, 1, 0])
    m = core.session_metrics(targets, preds, [0, 1, 5, 6], num_base=2)
    assert m["acc"] == pytest.approx(4 / 8)
    assert m["base_acc"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["new_acc"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["hm"] == pytest.approx(2 * 0.75 * 0.25 / (0.75 + 0.25))
    assert (m["bb"], m["bn"], m["nb"], m["nn"]) == (3, 1, 3, 1)
    assert m["new_to_base"] == pytest.approx(3 / 4)
    assert m["base_to_new"] == pytest.approx(1 / 4)
    base_only = core.session_metrics(torch.tensor([0, 1]), torch.tensor([0, 0]), [0, 1], num_base=2)
    assert math.isnan(base_only["hm"]) and math.isnan(base_only["new_to_base"])
    assert core.performance_drop([0.8, 0.7, 0.5]) == pytest.approx(0.3)
    assert core.average_accuracy([0.8, 0.7, 0.6]) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="label 9"):
        core.confusion_matrix(torch.tensor([9]), torch.tensor([0]), [0, 1])


def test_teen_defaults_and_range_come_from_teen_config() -> None:
    import inspect

    from kernelkit.fscil import TEEN, TeenConfig

    sig = inspect.signature(core.teen_calibrate).parameters
    assert (sig["tau"].default, sig["alpha"].default) == (TeenConfig.tau, TeenConfig.alpha)
    m = TEEN()
    assert (m.tau, m.alpha) == (TeenConfig.tau, TeenConfig.alpha)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            TeenConfig(alpha=bad)
        with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
            TEEN(alpha=bad)
