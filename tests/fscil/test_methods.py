"""Methods on frozen features: TEEN's invariants and that no method ever receives test data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kernelkit.fscil.core import class_prototypes, teen_calibrate
from kernelkit.fscil.methods import TEEN, PrototypeBaseline, create_method, list_methods
from kernelkit.fscil.protocol import generate_plan
from kernelkit.fscil.sessions import run_plan


def _toy(seed: int = 0, dim: int = 16):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(14, dim))
    train_labels = np.repeat(np.arange(14), 10)
    test_labels = np.repeat(np.arange(14), 4)
    train = torch.from_numpy(centres[train_labels] + 0.6 * rng.normal(size=(len(train_labels), dim)))
    test = torch.from_numpy(centres[test_labels] + 0.6 * rng.normal(size=(len(test_labels), dim)))
    plan = generate_plan(train_labels, test_labels, num_base=6, way=2, shot=5, num_sessions=5, seed=seed)
    return plan, train_labels, train, test


def test_registry_lists_and_builds_methods() -> None:
    assert {"prototype", "teen"} <= set(list_methods())
    m = create_method("teen", tau=4.0, alpha=0.3)
    assert isinstance(m, TEEN) and (m.tau, m.alpha) == (4.0, 0.3)
    with pytest.raises(KeyError, match="did you mean 'teen'"):
        create_method("teenn")


def test_alpha_zero_teen_predicts_like_the_baseline() -> None:
    plan, labels, train, test = _toy()
    base = run_plan(PrototypeBaseline(), plan, labels, lambda r: train[torch.as_tensor(r)], test)
    teen0 = run_plan(TEEN(alpha=0.0), plan, labels, lambda r: train[torch.as_tensor(r)], test)
    assert [s["acc"] for s in base.sessions] == [s["acc"] for s in teen0.sessions]
    assert [s["nb"] for s in base.sessions] == [s["nb"] for s in teen0.sessions]


def test_old_prototypes_never_change_and_only_base_prototypes_calibrate() -> None:
    plan, labels, train, _ = _toy(1)
    m = TEEN(tau=16.0, alpha=0.5)
    snapshots = []
    for s in plan.sessions:
        x, y = train[torch.as_tensor(s.train_indices)], torch.as_tensor(labels[s.train_indices])
        (m.learn_base if s.index == 0 else m.learn_session)(x, y, s.classes)
        snapshots.append(m.prototypes)
    for before, after in zip(snapshots, snapshots[1:], strict=False):
        assert torch.equal(after[: len(before)], before)  # bit-identical: earlier rows are never rewritten
    base = class_prototypes(train, torch.as_tensor(labels), plan.sessions[0].classes)
    last = plan.sessions[-1]
    raw = class_prototypes(train[torch.as_tensor(last.train_indices)], torch.as_tensor(labels[last.train_indices]),
                           last.classes)
    torch.testing.assert_close(snapshots[-1][-len(last.classes):], teen_calibrate(base, raw, 16.0, 0.5))
    torch.testing.assert_close(snapshots[-1][:6], base)  # base rows stay raw means


class SpyTEEN(TEEN):
    """Records every tensor the method is given to learn from."""

    def __init__(self) -> None:
        super().__init__(alpha=0.5)
        self.seen: list[torch.Tensor] = []

    def learn_base(self, features, labels, classes):  # type: ignore[no-untyped-def]
        self.seen.append(features.clone())
        super().learn_base(features, labels, classes)

    def learn_session(self, features, labels, classes):  # type: ignore[no-untyped-def]
        self.seen.append(features.clone())
        super().learn_session(features, labels, classes)


def test_methods_never_receive_test_data() -> None:
    plan, labels, train, test = _toy(2)
    asked: list[int] = []

    def train_features(rows: np.ndarray) -> torch.Tensor:
        asked.extend(int(r) for r in rows)
        return train[torch.as_tensor(rows)]

    spy = SpyTEEN()
    before = spy.prototypes if spy._blocks else None
    result = run_plan(spy, plan, labels, train_features, test)
    assert before is None and len(result.sessions) == len(plan.sessions)
    allowed = {int(r) for s in plan.sessions for r in s.train_indices}
    assert set(asked) == allowed  # only the plan's training rows were read
    learned = torch.cat(spy.seen)
    assert len(learned) == len(allowed)
    # no test row (nor anything close to one) was ever passed to the method
    dists = torch.cdist(learned, test)
    assert float(dists.min()) > 1e-6
    # and scoring does not change the model: predicting again gives identical prototypes
    protos = spy.prototypes
    spy.predict(test)
    assert torch.equal(protos, spy.prototypes)


def test_mismatched_feature_dimensions_are_reported() -> None:
    plan, labels, train, test = _toy(3)
    m = PrototypeBaseline()
    m.learn_base(train[:60], torch.as_tensor(labels[:60]), list(range(6)))
    with pytest.raises(ValueError, match="feature dimension mismatch: session features have 8, base prototypes 16"):
        m.learn_session(torch.randn(10, 8), torch.tensor([6] * 5 + [7] * 5), [6, 7])
    with pytest.raises(ValueError, match="feature dimension mismatch"):
        run_plan(PrototypeBaseline(), plan, labels, lambda r: train[torch.as_tensor(r)], test[:, :8])
    with pytest.raises(ValueError, match="already learned"):
        m.learn_session(train[:10], torch.as_tensor(labels[:10]), [0])
