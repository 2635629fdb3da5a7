"""End to end: a small MLP learns scikit-learn's digits (embedded, no download)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from kernelkit.train import TrainConfig, Trainer
from kernelkit.utils.checkpoint import load_tensors


def test_mlp_learns_digits(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val, test = order[:1200], order[1200:1400], order[1400:]
    split = lambda idx: TensorDataset(x[idx], y[idx])  # noqa: E731
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    cfg = TrainConfig(epochs=6, batch_size=64, optimizer="adamw", lr=1e-2, weight_decay=1e-4, warmup_steps=10,
                      label_smoothing=0.05, ema_decay=0.9, checkpoint_every=50, seed=0)
    trainer = Trainer(model, split(train), cfg, tmp_path, val_set=split(val), quiet=True)
    result = trainer.fit()
    assert result.steps == 6 * 19
    assert result.history[-1]["train_loss"] < 0.5 * result.history[0]["train_loss"]
    assert result.metrics["best_val_acc"] > 0.9
    # the best (validation-selected) weights on the untouched test split
    best = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    best.load_state_dict(load_tensors(result.best_checkpoint))
    test_acc = trainer.evaluate(split(test), model=best)["acc"]
    print(f"digits: best val acc {result.metrics['best_val_acc']:.3f}, test acc {test_acc:.3f}")
    assert test_acc > 0.9
