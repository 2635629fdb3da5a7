"""Run an FSCIL plan on frozen features: teach a method session by session, score it after each.

The runner hands a method only the rows the plan lists as that session's training data; test
features go to scoring alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kernelkit.fscil.core import average_accuracy, performance_drop, session_metrics
from kernelkit.fscil.methods import PrototypeClassifier
from kernelkit.fscil.protocol import SessionPlan

# features(rows) -> (len(rows), D): lets callers extract lazily or slice a cached matrix
FeatureSource = Callable[[np.ndarray], Tensor]


@dataclass
class FSCILResult:
    """Per-session metrics of one method on one plan."""

    method: dict[str, Any]
    sessions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accs(self) -> list[float]:
        return [s["acc"] for s in self.sessions]

    def summary(self) -> dict[str, Any]:
        accs = self.accs
        last = self.sessions[-1]
        return {**self.method, "acc": accs, "avg": average_accuracy(accs), "pd": performance_drop(accs),
                "last": accs[-1], "last_new_acc": last["new_acc"], "last_hm": last["hm"],
                "last_new_to_base": last["new_to_base"]}


def _as_tensor(labels: np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(labels, dtype=np.int64))


def run_plan(method: PrototypeClassifier, plan: SessionPlan, train_labels: np.ndarray, train_features: FeatureSource,
             test_features: Tensor, *, on_session: Callable[[dict[str, Any]], None] | None = None) -> FSCILResult:
    """Teach ``method`` every session of ``plan`` and score it on the joint test set after each.

    Args:
        train_labels: labels of the whole train set (rows index it).
        train_features: callable giving features of train-set rows; only the plan's rows are asked for.
        test_features: features of the whole test set, ``(len(plan.test_labels), D)``.
    """
    if test_features.shape[0] != len(plan.test_labels):
        raise ValueError(f"test features have {test_features.shape[0]} rows, "
                         f"the plan's test set {len(plan.test_labels)}")
    train_labels = np.asarray(train_labels)
    result = FSCILResult(method.describe())
    for session in plan.sessions:
        rows = session.train_indices
        feats = train_features(rows)
        labels = _as_tensor(train_labels[rows])
        if session.index == 0:
            method.learn_base(feats, labels, session.classes)
        else:
            method.learn_session(feats, labels, session.classes)
        test_rows = plan.test_indices(session.index)
        if test_features.shape[1] != method.feature_dim:
            raise ValueError(f"feature dimension mismatch: test features have {test_features.shape[1]}, "
                             f"prototypes {method.feature_dim}")
        with torch.no_grad():
            pred = method.predict(test_features[torch.as_tensor(test_rows)])
        metrics = session_metrics(_as_tensor(plan.test_labels[test_rows]), pred, plan.seen_classes(session.index),
                                  plan.num_base)
        record = {"session": session.index, "classes": len(method.classes), **metrics}
        result.sessions.append(record)
        if on_session is not None:
            on_session(record)
    return result
