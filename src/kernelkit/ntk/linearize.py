"""Linearized networks (Lee et al. 2019): the first-order Taylor expansion of a model in its parameters.

``linearize(model)`` returns a module computing ``f_lin(x; θ) = f(x; θ₀) + J_θ f(x; θ₀) (θ − θ₀)`` with one
``torch.func.jvp`` per call. Its parameters are ``θ`` (starting at ``θ₀``), so any torch optimizer trains
it; ``θ₀`` is kept in buffers. Its empirical NTK is the NTK of ``model`` at ``θ₀`` whatever ``θ`` is, and
gradient descent on MSE follows the closed form of :func:`kernelkit.ntk.predict.gradient_descent_mse`::

    lin = ntk.linearize(model)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
"""

from __future__ import annotations

import copy
from operator import attrgetter
from typing import Any

from torch import Tensor, nn
from torch.func import functional_call, jvp
from torch.nn.parameter import UninitializedParameter

__all__ = ["Linearized", "linearize"]


class Linearized(nn.Module):
    """First-order Taylor expansion of ``model`` around its parameters at construction.

    ``self.params`` are the current ``θ`` (trainable, in the order of ``self.names``); the expansion point
    ``θ₀``, the parameters with ``requires_grad=False`` and the model's buffers are buffers of this module
    (saved in ``state_dict``, moved by ``.to()``). The copy of ``model`` that defines the computation is kept
    out of the module tree, so ``named_modules()`` shows no layers: the function is not ``model``'s (put
    models with batch statistics in eval mode first).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if any(isinstance(p, UninitializedParameter) for p in model.parameters()):
            raise ValueError("model has uninitialized (lazy) parameters; call it once on an input first")
        template = copy.deepcopy(model)
        object.__setattr__(self, "_template", template)  # not a submodule: see the class docstring
        self.names = [n for n, p in template.named_parameters() if p.requires_grad]
        if not self.names:
            raise ValueError("model has no trainable parameters (requires_grad=True) to linearize in")
        self.frozen_names = [n for n, p in template.named_parameters() if not p.requires_grad]
        self.frozen_names += [n for n, _ in template.named_buffers()]
        self.params = nn.ParameterList(nn.Parameter(attrgetter(n)(template).detach().clone()) for n in self.names)
        for i, n in enumerate(self.names):
            self.register_buffer(f"initial_{i}", attrgetter(n)(template).detach().clone())
        for i, n in enumerate(self.frozen_names):
            self.register_buffer(f"frozen_{i}", attrgetter(n)(template).detach().clone())

    def train(self, mode: bool = True) -> Linearized:
        """Set training mode here and on the model copy (dropout, batch statistics)."""
        object.__getattribute__(self, "_template").train(mode)
        return super().train(mode)

    def initial_parameters(self) -> dict[str, Tensor]:
        """``θ₀`` by parameter name of ``model``."""
        return {n: getattr(self, f"initial_{i}") for i, n in enumerate(self.names)}

    def current_parameters(self) -> dict[str, Tensor]:
        """``θ`` by parameter name of ``model``."""
        return dict(zip(self.names, self.params, strict=True))

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        theta0 = self.initial_parameters()
        frozen = {n: getattr(self, f"frozen_{i}") for i, n in enumerate(self.frozen_names)}
        delta = {n: p - theta0[n] for n, p in self.current_parameters().items()}
        template: nn.Module = object.__getattribute__(self, "_template")

        def f(params: dict[str, Tensor]) -> Tensor:
            out = functional_call(template, {**frozen, **params}, args, kwargs, strict=True)
            if not isinstance(out, Tensor):
                raise TypeError(f"linearize supports models returning one tensor, got {type(out).__name__}")
            return out

        out, tangent = jvp(f, (theta0,), (delta,))  # type: ignore[misc]  # 2 values without has_aux
        return out + tangent


def linearize(model: nn.Module) -> Linearized:
    """``f_lin(x; θ) = f(x; θ₀) + J_θ f(x; θ₀)(θ − θ₀)`` around the current parameters of ``model`` (which is
    copied, not changed)."""
    return Linearized(model)
