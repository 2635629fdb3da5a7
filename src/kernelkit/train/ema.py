"""Exponential moving average of a model's weights (parameters and floating buffers)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from kernelkit.train.core import ema_update_


class ModelEma:
    """A frozen copy of ``model`` updated as ``ema = decay * ema + (1 - decay) * model`` after each step.

    Every floating entry of the state dict (weights and BN running statistics) is averaged; integer
    buffers (``num_batches_tracked``) are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay: must be in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def update(self, model: nn.Module) -> None:
        ema_state = self.module.state_dict()
        live = model.state_dict()
        ema_update_((ema_state[k] for k in live), live.values(), self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
