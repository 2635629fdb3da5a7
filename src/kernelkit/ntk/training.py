"""Small helpers shared by the NTK experiments and CLI: the paper's network and full-batch GD on MSE."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kernelkit.ntk import nn as knn

__all__ = ["fc_network", "train_mse"]


def fc_network(width: int, depth: int, beta: float = 0.1, out: int = 1, activation: str = "relu",
               parametrization: str = "ntk") -> knn.Sequential:
    """The paper's network: ``depth`` weight layers (``depth − 1`` hidden), NTK parametrization, bias std β."""
    acts = {"relu": knn.ReLU, "erf": knn.Erf, "identity": knn.Identity, "abs": knn.Abs}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    layers: list[torch.nn.Module] = []
    for _ in range(depth - 1):
        layers += [knn.Dense(width, 1.0, beta, parametrization), acts[activation]()]
    layers.append(knn.Dense(out, 1.0, beta, parametrization))
    return knn.Sequential(*layers)


def train_mse(model: torch.nn.Module, x: Tensor, y: Tensor, lr: float, steps: int,
              callback: Callable[[int, Tensor], None] | None = None, every: int = 1) -> Tensor:
    """Full-batch gradient descent on ``‖f − y‖² / (2·y.numel())`` (the paper's ½·E_pin for one output).

    ``callback(step, outputs)`` is called at step 0 and every ``every`` steps with the training outputs.
    Returns the final training outputs.
    """
    y = y.reshape(x.shape[0], -1).to(x.dtype)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr)
    out = model(x).reshape(y.shape)
    for step in range(steps + 1):
        if callback is not None and (step % every == 0 or step == steps):
            callback(step, out.detach())
        if step == steps:
            break
        loss = ((out - y) ** 2).sum() / (2 * y.numel())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        out = model(x).reshape(y.shape)
    return out.detach()
