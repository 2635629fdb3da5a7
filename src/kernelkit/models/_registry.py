"""Model registry and the one public way to build a model."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from kernelkit.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model", discover=("kernelkit.models",))


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a variant builder under its function name (``unireplknet_a``, ``mixnet_s``)."""
    return MODELS.register(fn.__name__)(fn)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a shell-style pattern (``"mixnet_*"``)."""
    return MODELS.names(pattern)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("unireplknet_a", num_classes=10)``.

    Unknown names raise ``KeyError`` suggesting close matches; keyword arguments a variant does not
    accept raise ``TypeError`` naming them.
    """
    builder = MODELS.get(name)
    params = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(f"{name} does not accept {', '.join(unknown)}; it accepts {', '.join(params)}")
    return builder(**kwargs)


def reparameterize(model: nn.Module) -> nn.Module:
    """Convert every re-parameterizable submodule to its deploy form, in place; returns ``model``.

    A module opts in by defining an idempotent ``reparameterize()`` that converts only itself (and
    may replace its own children). Modules are visited deepest first, then ``model`` itself.
    """
    for module in reversed(list(model.modules())):
        fn = getattr(module, "reparameterize", None)
        if callable(fn):
            fn()
    return model
