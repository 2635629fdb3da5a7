"""A minimal resumable training loop, used only when ``kernelkit.train.Trainer`` is not available.

Same contract as the foundation trainer for what FSCIL needs: SGD (Nesterov) with a per-step cosine
schedule, a per-batch ``batch_transform``, validation after each epoch, the best-on-validation
weights kept as ``best.safetensors``, and resume from ``state.pt`` at epoch boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kernelkit.utils.checkpoint import save_tensors
from kernelkit.utils.io import atomic_path


@dataclass
class LoopResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: Path | None = None
    last_checkpoint: Path | None = None


class SimpleTrainer:
    def __init__(self, model: nn.Module, train_set: Dataset, config: Any, out_dir: Path, val_set: Dataset | None = None,
                 batch_transform: Any = None, device: str = "cpu", section: Any = None, quiet: bool = True) -> None:
        self.model, self.train_set, self.cfg, self.out = model, train_set, config, Path(out_dir)
        self.val_set, self.batch_transform, self.device, self.section = val_set, batch_transform, device, section

    def evaluate(self, dataset: Dataset) -> dict[str, float]:
        self.model.eval()
        loss = correct = total = 0.0
        with torch.no_grad():
            for x, y in DataLoader(dataset, batch_size=256):
                out = self.model(x.to(self.device))
                loss += float(F.cross_entropy(out, y.to(self.device), reduction="sum"))
                correct += float((out.argmax(1).cpu() == y).sum())
                total += len(y)
        return {"loss": loss / max(1, total), "acc": correct / max(1, total)}

    def fit(self) -> LoopResult:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        model = self.model.to(self.device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                              weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(self.train_set) / cfg.batch_size)
        total = cfg.epochs * steps_per_epoch
        result = LoopResult()
        start, best_acc = 0, -1.0
        state_path, best_path = self.out / "state.pt", self.out / "best.safetensors"
        if state_path.is_file():
            state = torch.load(state_path, weights_only=True)
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start, best_acc, result.history = state["epoch"], state["best_acc"], list(state["history"])
            torch.set_rng_state(state["rng"])
        gen = torch.Generator().manual_seed(cfg.seed)
        for epoch in range(start, cfg.epochs):
            gen.manual_seed(cfg.seed * 1000 + epoch)
            model.train()
            seen = loss_sum = 0.0
            for i, (x, y) in enumerate(DataLoader(self.train_set, batch_size=cfg.batch_size, shuffle=True,
                                                  generator=gen)):
                step = epoch * steps_per_epoch + i
                for g in opt.param_groups:
                    g["lr"] = 0.5 * cfg.lr * (1 + math.cos(math.pi * step / max(1, total)))
                x, y = x.to(self.device), y.to(self.device)
                if self.batch_transform is not None:
                    x, y = self.batch_transform(x, y)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(y)
                loss_sum += float(loss) * len(y)
            record: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss_sum / max(1, seen)}
            if self.val_set is not None and len(self.val_set):
                ev = self.evaluate(self.val_set)
                record.update(val_loss=ev["loss"], val_acc=ev["acc"])
                if ev["acc"] > best_acc:
                    best_acc = ev["acc"]
                    save_tensors(best_path, {k: v for k, v in model.state_dict().items()})
            result.history.append(record)
            if self.section is not None:
                self.section.log(step=epoch + 1, **record)
            with atomic_path(state_path) as tmp:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                            "best_acc": best_acc, "history": result.history, "rng": torch.get_rng_state()}, tmp)
        result.best_checkpoint = best_path if best_path.is_file() else None
        result.last_checkpoint = state_path
        return result
