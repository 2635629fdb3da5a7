"""Training math against closed forms and torch references; config validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.train import ModelEma, TrainConfig, lr_at, smoothed_cross_entropy
from kernelkit.train.core import ema_update_, epoch_batches, shard


@pytest.mark.parametrize(("field", "value"), [
    ("epochs", 0), ("epochs", 1.5), ("max_steps", 0), ("batch_size", True), ("optimizer", "adam"),
    ("lr", 0.0), ("lr", float("nan")), ("momentum", 1.0), ("weight_decay", -1e-4), ("schedule", "step"),
    ("warmup_steps", -1), ("min_lr", 1.0), ("label_smoothing", 1.0), ("ema_decay", 1.0), ("ema_decay", 0.0),
    ("grad_clip", 0.0), ("amp", "fp8"), ("checkpoint_every", -1), ("keep_checkpoints", 0), ("log_every", 0),
    ("drop_last", 1), ("seed", -3), ("betas", (0.9,)), ("milestones", (5, 3)), ("milestones", (0,)),
    ("milestones", 4), ("gamma", 0.0), ("schedule_unit", "batch"),
])
def test_config_rejects_bad_field_naming_it(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        TrainConfig(**{field: value})  # type: ignore[arg-type]


def test_config_nesterov_needs_sgd_with_momentum() -> None:
    with pytest.raises(ValueError, match="^nesterov:"):
        TrainConfig(optimizer="adamw", nesterov=True)
    with pytest.raises(ValueError, match="^nesterov:"):
        TrainConfig(momentum=0.0, nesterov=True)


def test_config_multistep_needs_milestones() -> None:
    with pytest.raises(ValueError, match="^milestones: schedule='multistep' needs"):
        TrainConfig(schedule="multistep")


def test_config_round_trips_through_dict_and_rejects_unknown_keys() -> None:
    c = TrainConfig(epochs=3, optimizer="adamw", betas=(0.8, 0.99), ema_decay=0.99, schedule="multistep",
                    milestones=[1, 2], gamma=0.5)
    assert c.milestones == (1, 2)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown TrainConfig field.*learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_lr_schedule_warmup_then_cosine_closed_form() -> None:
    base, total, warm, floor = 0.4, 50, 10, 0.01
    lrs = [lr_at(s, total, base, "cosine", warm, floor) for s in range(total)]
    for s in range(warm):  # linear warmup reaching base at the last warmup step
        assert lrs[s] == pytest.approx(base * (s + 1) / warm, rel=1e-12)
    assert lrs[warm - 1] == pytest.approx(base)
    for s in range(warm, total):
        t = (s - warm) / (total - warm)
        assert lrs[s] == pytest.approx(floor + (base - floor) * (1 + math.cos(math.pi * t)) / 2, rel=1e-12)
    assert lrs[warm] == pytest.approx(base)
    assert lrs[warm + (total - warm) // 2] == pytest.approx((base + floor) / 2)  # half way: the mean
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:], strict=False))  # monotone decay


def test_lr_schedule_constant_with_warmup() -> None:
    assert [lr_at(s, 20, 0.1, "constant", 4) for s in range(6)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1])


def test_lr_schedule_multistep() -> None:
    lrs = [lr_at(s, 100, 0.8, "multistep", 2, milestones=[5, 8], gamma=0.25) for s in range(10)]
    assert lrs == pytest.approx([0.4, 0.8, 0.8, 0.8, 0.8, 0.2, 0.2, 0.2, 0.05, 0.05])


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_matches_torch_cross_entropy(eps: float) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 7, generator=g) * 3
    y = torch.randint(0, 7, (32,), generator=g)
    ref = F.cross_entropy(logits, y, label_smoothing=eps)
    assert torch.allclose(smoothed_cross_entropy(logits, y, eps), ref, atol=1e-6)
    # one-hot probabilities give the same value (soft-target path)
    assert torch.allclose(smoothed_cross_entropy(logits, F.one_hot(y, 7).float(), eps), ref, atol=1e-6)


def test_soft_targets_match_torch_probability_cross_entropy() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 5, generator=g)
    q = torch.softmax(torch.randn(8, 5, generator=g), -1)
    assert torch.allclose(smoothed_cross_entropy(logits, q), F.cross_entropy(logits, q), atol=1e-6)


def test_ema_update_formula() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = ModelEma(model, decay=0.9)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    snapshots = []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(5, 3))  # moves BN running statistics and num_batches_tracked
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update(model)
    for k, v in ema.state_dict().items():
        if v.dtype.is_floating_point:
            expected = start[k]
            for snap in snapshots:
                expected = 0.9 * expected + 0.1 * snap[k]
            assert torch.allclose(v, expected, atol=1e-6), k
        else:
            assert torch.equal(v, snapshots[-1][k]), k
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_update_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError):
        ema_update_([torch.zeros(1)], [], 0.5)


def test_epoch_batches_are_a_seeded_permutation() -> None:
    a = epoch_batches(50, 8, seed=3, epoch=1)
    assert a == epoch_batches(50, 8, seed=3, epoch=1)
    assert a != epoch_batches(50, 8, seed=3, epoch=2) and a != epoch_batches(50, 8, seed=4, epoch=1)
    assert sorted(i for b in a for i in b) == list(range(50))
    assert [len(b) for b in a] == [8] * 6 + [2]
    assert [len(b) for b in epoch_batches(50, 8, 3, 1, drop_last=True)] == [8] * 6
    assert [len(b) for b in epoch_batches(50, 8, 3, 1, min_size=3)] == [8] * 6


def test_shard_splits_contiguously_and_evenly() -> None:
    idx = list(range(11))
    parts = [shard(idx, r, 3) for r in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert shard(idx, 0, 1) == idx
