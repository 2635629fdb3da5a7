"""Pure tensor math of TEEN few-shot class-incremental learning: prototypes, calibration, metrics.

No I/O and no models here. Reference: Wang et al., "Few-Shot Class-Incremental Learning via
Training-Free Prototype Calibration" (TEEN), NeurIPS 2023; the calibration follows the official
code's ``soft_calibration`` exactly (see ``teen_calibrate``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

COSINE_TEMPERATURE = 16.0  # logit scale of the cosine classifier (TEEN's CIFAR-100 setting)

HM_VARIANT = "TEEN (utils.harm_mean): 2SU/(S+U), S = mean per-class acc of base classes, U = of all new classes seen"


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows scaled to unit L2 norm (as ``F.normalize(x, p=2, dim=-1)``)."""
    return F.normalize(x, p=2, dim=-1, eps=eps)


def _check_matrix(name: str, x: Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name} must be a (classes, feature_dim) matrix, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 classes)")


def _check_same_dim(a_name: str, a: Tensor, b_name: str, b: Tensor) -> None:
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"feature dimension mismatch: {a_name} has {a.shape[-1]} features, {b_name} has {b.shape[-1]}"
        )


def class_prototypes(features: Tensor, labels: Tensor, classes: Sequence[int]) -> Tensor:
    """Raw (un-normalised) mean feature of each class in ``classes``, in that order: ``(len(classes), D)``."""
    if features.dim() != 2 or labels.dim() != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"features (N, D) and labels (N,) must match, got {tuple(features.shape)} and "
                         f"{tuple(labels.shape)}")
    rows = []
    for c in classes:
        mask = labels == int(c)
        if not bool(mask.any()):
            raise ValueError(f"class {c} has no training samples; cannot form its prototype")
        rows.append(features[mask].mean(dim=0))
    return torch.stack(rows)


@dataclass(frozen=True)
class TeenConfig:
    """TEEN's two hyperparameters, validated once; the defaults are the official CIFAR-100 setting.

    ``tau``: softmax temperature on the cosine similarities to the base prototypes (official ``softmax_t``), > 0.
    ``alpha``: weight of the shift towards the base prototypes (official ``shift_weight``), in ``[0, 1]``.
    Every place that takes a TEEN ``tau``/``alpha`` (:func:`teen_calibrate`, the ``teen`` method, the CLI and
    the recipes) takes its default from here and checks it by building one.
    """

    tau: float = 16.0
    alpha: float = 0.1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


def teen_calibrate(base_prototypes: Tensor, new_prototypes: Tensor, tau: float = TeenConfig.tau,
                   alpha: float = TeenConfig.alpha) -> Tensor:
    """TEEN's training-free calibration of new-class prototypes (official ``soft_calibration``).

    With ``n`` the L2 normalisation, ``b_j = n(B_j)`` and ``p_c = n(N_c)``::

        w_cj = softmax_j(tau * <p_c, b_j>)       # over base classes only
        delta_c = n(sum_j w_cj * b_j)
        result_c = (1 - alpha) * p_c + alpha * delta_c   # not re-normalised

    Args:
        base_prototypes: ``(num_base, D)`` base-class prototypes (raw means are fine).
        new_prototypes: ``(num_new, D)`` prototypes of the current session's new classes.
        tau: softmax temperature on the cosine similarities (official ``softmax_t``).
        alpha: weight of the base-prototype shift (official ``shift_weight``), in ``[0, 1]``; 0 gives ``p_c``.

    Returns:
        ``(num_new, D)`` calibrated prototypes, in the dtype of ``new_prototypes``.
    """
    _check_matrix("base_prototypes", base_prototypes)
    _check_matrix("new_prototypes", new_prototypes)
    _check_same_dim("base_prototypes", base_prototypes, "new_prototypes", new_prototypes)
    TeenConfig(tau, alpha)  # the one range check
    b = l2_normalize(base_prototypes.to(new_prototypes.dtype))
    p = l2_normalize(new_prototypes)
    weights = torch.softmax(tau * p @ b.T, dim=1)  # (num_new, num_base)
    delta = l2_normalize(weights @ b)
    return (1.0 - alpha) * p + alpha * delta


def cosine_logits(features: Tensor, prototypes: Tensor, temperature: float = 1.0) -> Tensor:
    """``temperature * cos(features_i, prototypes_c)``: ``(N, C)`` (the cosine classifier)."""
    if features.dim() != 2:
        raise ValueError(f"features must be (N, D), got shape {tuple(features.shape)}")
    _check_matrix("prototypes", prototypes)
    _check_same_dim("features", features, "prototypes", prototypes)
    return temperature * l2_normalize(features) @ l2_normalize(prototypes.to(features.dtype)).T


# -- metrics ------------------------------------------------------------------------------------


def confusion_matrix(targets: Tensor, predictions: Tensor, classes: Sequence[int]) -> Tensor:
    """Counts ``M[i, j]`` of samples of ``classes[i]`` predicted as ``classes[j]`` (int64)."""
    index = {int(c): i for i, c in enumerate(classes)}
    if len(index) != len(classes):
        raise ValueError("classes must be distinct")
    try:
        t = torch.tensor([index[int(v)] for v in targets.tolist()], dtype=torch.long)
        p = torch.tensor([index[int(v)] for v in predictions.tolist()], dtype=torch.long)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]} is not among the {len(classes)} given classes") from None
    k = len(classes)
    return torch.bincount(t * k + p, minlength=k * k).reshape(k, k)


def per_class_accuracy(confusion: Tensor) -> Tensor:
    """Diagonal of the row-normalised confusion matrix (NaN for classes without test samples)."""
    totals = confusion.sum(dim=1).to(torch.float64)
    return confusion.diagonal().to(torch.float64) / totals


def harmonic_mean(base_acc: float, new_acc: float) -> float:
    """``2SU/(S+U)`` (0 when both are 0)."""
    return 0.0 if base_acc + new_acc == 0 else 2.0 * base_acc * new_acc / (base_acc + new_acc)


def session_metrics(targets: Tensor, predictions: Tensor, classes: Sequence[int], num_base: int) -> dict[str, float]:
    """Metrics of one session over the joint test set of all classes seen so far.

    ``classes`` lists the seen classes with the ``num_base`` base classes first. Returns sample
    accuracy ``acc``; mean per-class accuracy over base (``base_acc``, S) and over all new classes
    seen (``new_acc``, U); TEEN's harmonic mean ``hm`` (NaN in the base session); the fraction of
    new-class test samples predicted as a base class (``new_to_base``); of base samples predicted as
    a new class (``base_to_new``); and the 2x2 block confusion counts ``bb, bn, nb, nn``.
    """
    cm = confusion_matrix(targets, predictions, classes)
    pca = per_class_accuracy(cm)
    nb_ = num_base
    base_rows, new_rows = cm[:nb_], cm[nb_:]
    has_new = len(classes) > nb_
    out = {
        "acc": float((targets == predictions).to(torch.float64).mean()),
        "base_acc": float(torch.nanmean(pca[:nb_])),
        "new_acc": float(torch.nanmean(pca[nb_:])) if has_new else float("nan"),
        "bb": int(base_rows[:, :nb_].sum()),
        "bn": int(base_rows[:, nb_:].sum()),
        "nb": int(new_rows[:, :nb_].sum()) if has_new else 0,
        "nn": int(new_rows[:, nb_:].sum()) if has_new else 0,
        "num_test": int(targets.numel()),
    }
    n_new = out["nb"] + out["nn"]
    out["new_to_base"] = out["nb"] / n_new if n_new else float("nan")
    out["base_to_new"] = out["bn"] / max(1, out["bb"] + out["bn"])
    out["hm"] = harmonic_mean(out["base_acc"], out["new_acc"]) if has_new else float("nan")
    return out


def average_accuracy(session_accs: Sequence[float]) -> float:
    """Mean of Acc_0 ... Acc_N."""
    return sum(session_accs) / len(session_accs)


def performance_drop(session_accs: Sequence[float]) -> float:
    """PD = Acc_0 - Acc_N."""
    return session_accs[0] - session_accs[-1]
