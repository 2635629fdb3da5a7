"""Small helpers shared by the NTK experiments and CLI: the paper's network and full-batch GD on MSE."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter

from kernelkit.ntk import layerwise
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


def _layer_scales(m: nn.Module) -> tuple[float, float]:
    return m.scales() if isinstance(m, knn.Dense) else (1.0, 1.0)


def _rank_update_layers(model: nn.Module, x: Tensor) -> list[nn.Module] | None:
    """Fully connected layers owning every trainable parameter, each called once on a 2-D input; else None."""
    params = [p for p in model.parameters() if p.requires_grad]
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, knn.Dense))]
    owned = {id(p) for m in layers for p in m.parameters(recurse=False)}
    if not layers or any(id(p) not in owned for p in params) or len(owned) != sum(
            len(list(m.parameters(recurse=False))) for m in layers):
        return None  # a parameter outside these layers, or one shared between layers
    calls: dict[nn.Module, list[int]] = {m: [] for m in layers}
    hooks = [m.register_forward_hook(lambda mod, inp, out: calls[mod].append(inp[0].dim())) for m in layers]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    if any(c != [2] for c in calls.values()):
        return None
    return [m for m in layers if any(p.requires_grad for p in m.parameters(recurse=False))]


def _rank_update(m: nn.Module, g: Tensor, inputs: Tensor, lr: float, trained: set[int]) -> None:
    """In-place SGD step of a fully connected layer from its output gradient ``g`` ``(N, out)`` and its inputs
    ``(N, in)``: ``W -= lr·s_w·gᵀx`` and ``b -= lr·s_b·Σ_n g`` for the parameters whose ids are in ``trained``."""
    ws, bs = _layer_scales(m)
    weight, bias = m.weight, m.bias
    if isinstance(weight, Tensor) and id(weight) in trained:
        weight.addmm_(g.T, inputs, alpha=-lr * ws)
    if isinstance(bias, Tensor) and id(bias) in trained:
        bias.add_(g.sum(0), alpha=-lr * bs)


class _RankUpdateStep:
    """GD step for fully connected layers: ``W -= lr·s·Gᵀ A`` in place (``G``: loss gradient at the layer output,
    ``A``: the layer input), identical to autograd + SGD but without materialising the ``out × in`` gradient
    (the largest tensor for wide layers on small batches)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        self.layers = layers
        self.trained = {id(p) for m in layers for p in m.parameters(recurse=False) if p.requires_grad}
        self.inputs: dict[nn.Module, Tensor] = {}
        self.shifts: dict[nn.Module, Tensor] = {}

    def _hook(self, mod: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> Tensor:
        self.inputs[mod] = inp[0]
        shift = torch.zeros_like(out, requires_grad=True)
        self.shifts[mod] = shift
        return out + shift

    def forward(self, model: nn.Module, x: Tensor) -> Tensor:
        handles = [m.register_forward_hook(self._hook) for m in self.layers]
        try:
            return model(x)
        finally:
            for h in handles:
                h.remove()

    def step(self, loss: Tensor, lr: float) -> None:
        grads = torch.autograd.grad(loss, [self.shifts[m] for m in self.layers])
        with torch.no_grad():
            for m, g in zip(self.layers, grads, strict=True):
                _rank_update(m, g, self.inputs[m], lr, self.trained)
        self.inputs.clear()
        self.shifts.clear()


def train_mse(model: torch.nn.Module, x: Tensor, y: Tensor, lr: float, steps: int,
              callback: Callable[[int, Tensor], None] | None = None, every: int = 1) -> Tensor:
    """Full-batch gradient descent on ``‖f − y‖² / (2·y.numel())`` (the paper's ½·E_pin for one output).

    Networks of fully connected layers take the same steps as ``torch.optim.SGD`` through an in-place rank-N
    weight update that never forms the ``out × in`` weight gradient; other models use autograd and SGD.
    ``callback(step, outputs)`` is called at step 0 and every ``every`` steps with the training outputs.
    Returns the final training outputs.
    """
    y = y.reshape(x.shape[0], -1).to(x.dtype)
    if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
        with torch.no_grad():
            model(x[:1])
    chain = layerwise.chain_layers(model)
    if chain is not None and not any(isinstance(m, (nn.Conv2d, knn.Conv2d)) for m in chain):
        try:
            return _train_chain(chain, x, y, lr, steps, callback, every)
        except layerwise.NotAChainError:
            pass
    layers = _rank_update_layers(model, x)
    if layers is None:
        return _train_autograd(model, x, y, lr, steps, callback, every)
    frozen = [p for m in layers for p in m.parameters(recurse=False) if p.requires_grad]
    update = _RankUpdateStep(layers)
    try:
        for p in frozen:  # gradients flow to the layer outputs only; weights are updated by hand
            p.requires_grad_(False)
        out = update.forward(model, x).reshape(y.shape)
        for step in range(steps + 1):
            if callback is not None and (step % every == 0 or step == steps):
                callback(step, out.detach())
            if step == steps:
                break
            update.step(((out - y) ** 2).sum() / (2 * y.numel()), lr)
            out = update.forward(model, x).reshape(y.shape)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return out.detach()


def _train_chain(layers: list[nn.Module], x: Tensor, y: Tensor, lr: float, steps: int,
                 callback: Callable[[int, Tensor], None] | None, every: int) -> Tensor:
    """GD on a chain of fully connected and elementwise layers with explicit backpropagation (the layer-wise
    forward/backward of :mod:`kernelkit.ntk.layerwise`) and in-place rank-N weight updates."""
    trained = {id(p) for m in layers for p in m.parameters(recurse=False) if p.requires_grad}
    for step in range(steps + 1):
        with torch.no_grad():
            saved, out = layerwise.forward_saving(layers, x)
        out = out.reshape(y.shape)
        if callback is not None and (step % every == 0 or step == steps):
            callback(step, out)
        if step == steps:
            break
        with torch.no_grad():
            g = ((out - y) / y.numel()).unsqueeze(1)  # (N, 1, O): gradient of the loss at the output
            for i in range(len(layers) - 1, -1, -1):
                m, s = layers[i], saved[i]
                assert s is not None
                if not isinstance(m, (nn.Linear, knn.Dense)):
                    g = g * s.unsqueeze(1)  # elementwise derivative
                    continue
                g_in = layerwise.input_grad(m, g, s) if i > 0 else None  # before the weights change
                _rank_update(m, g[:, 0], s, lr, trained)
                if g_in is not None:
                    g = g_in
    return out


def _train_autograd(model: nn.Module, x: Tensor, y: Tensor, lr: float, steps: int,
                    callback: Callable[[int, Tensor], None] | None, every: int) -> Tensor:
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
