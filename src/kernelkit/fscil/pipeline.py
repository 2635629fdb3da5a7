"""The FSCIL recipe end to end: train the base model, freeze it, run methods over a session plan.

Used by ``kernelkit fscil run`` and the registered experiments; the steps are separate so several
plans (seeds) and methods can share one base model and one feature cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kernelkit.fscil.data import FSCILData
from kernelkit.fscil.methods import create_method
from kernelkit.fscil.protocol import SessionPlan
from kernelkit.fscil.sessions import FSCILResult, run_plan
from kernelkit.fscil.training import (
    BaseTrainConfig,
    CosineClassifierNet,
    RelabeledSubset,
    build_backbone,
    evaluate_head,
    extract_features,
    train_base,
)


def build_net(data: FSCILData, backbone: str, num_base: int, temperature: float, **backbone_kwargs: Any
              ) -> CosineClassifierNet:
    """Backbone (any registered model, ``num_classes=0``) plus a cosine head over the base classes."""
    in_chans = int(data.train[0][0].shape[0])
    model, num_features, repeat = build_backbone(backbone, in_chans, **backbone_kwargs)
    return CosineClassifierNet(model, num_features, num_base, temperature, data.mean, data.std, repeat)


def train_base_model(data: FSCILData, plan: SessionPlan, backbone: str, cfg: BaseTrainConfig, out_dir: str | Path,
                     *, image_size: int, device: str | torch.device = "cpu", section: Any = None, quiet: bool = True,
                     backbone_kwargs: dict[str, Any] | None = None) -> tuple[CosineClassifierNet, dict[str, Any]]:
    """Train on the base session (validation rows held out), keep the best-on-validation weights."""
    torch.manual_seed(cfg.seed)
    net = build_net(data, backbone, plan.num_base, cfg.temperature, **(backbone_kwargs or {})).to(device)
    base = plan.without_base_rows(data.val_rows).sessions[0]
    train_set = RelabeledSubset(data.train, base.train_indices, base.classes)
    val_rows = data.val_rows if data.val_rows is not None and len(data.val_rows) else None
    val_set = RelabeledSubset(data.train, val_rows, base.classes) if val_rows is not None else None
    summary: dict[str, Any] = {"backbone": backbone, "num_features": net.num_features,
                               "params": sum(p.numel() for p in net.backbone.parameters()),
                               "base_train_rows": len(train_set), "val_rows": len(val_set) if val_set else 0}
    if cfg.epochs > 0:
        summary.update(train_base(net, train_set, val_set, cfg, out_dir, image_size, section=section, quiet=quiet,
                                  device=device))
    if val_set is not None:
        summary["val_head_acc"] = evaluate_head(net, val_set, device=device)
    net.eval()
    return net, summary


class FeatureCache:
    """Features of dataset rows from a frozen network, computed once per row."""

    def __init__(self, net: CosineClassifierNet, dataset: Any, device: str | torch.device = "cpu") -> None:
        self.net, self.dataset, self.device = net, dataset, device
        self._rows: dict[int, Tensor] = {}

    def __call__(self, rows: np.ndarray) -> Tensor:
        rows = np.asarray(rows, dtype=np.int64)
        missing = np.asarray(sorted({int(r) for r in rows} - set(self._rows)), dtype=np.int64)
        if len(missing):
            feats = extract_features(self.net, self.dataset, missing, device=self.device)
            self._rows.update(zip(missing.tolist(), feats, strict=True))
        if len(rows) == 0:
            return torch.zeros(0, self.net.num_features)
        return torch.stack([self._rows[int(r)] for r in rows])


def run_methods(plan: SessionPlan, train_labels: np.ndarray, train_features: FeatureCache, test_features: Tensor,
                methods: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, FSCILResult]:
    """Each ``label -> (method name, kwargs)`` run over the plan with fresh state."""
    return {label: run_plan(create_method(name, **kw), plan, train_labels, train_features, test_features)
            for label, (name, kw) in methods.items()}


def default_methods(temperature: float, tau: float, alpha: float, which: list[str]) -> dict[str, tuple[str, dict]]:
    """Method table for the CLI: ``prototype`` and/or ``teen`` (with ``tau``, ``alpha``)."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in which:
        if name == "teen":
            kw = {"tau": tau, "alpha": alpha, "temperature": temperature}
            out[f"teen(tau={tau:g},alpha={alpha:g})"] = ("teen", kw)
        else:
            out[name] = (name, {"temperature": temperature})
    return out
