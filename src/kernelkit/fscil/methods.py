"""Incremental classifiers on frozen features, behind one interface, found through a registry.

A method sees only training shots: ``learn_base`` gets the base session's training features and
``learn_session`` one incremental session's shots. Scoring goes through ``logits`` and never
updates the method, so test data cannot influence any prototype.

Registered: ``prototype`` (cosine classifier on raw class-mean prototypes, TEEN's baseline; the
same predictions as TEEN with ``alpha=0``) and ``teen`` (training-free calibration of each new
session's prototypes towards the base prototypes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from kernelkit.fscil.core import COSINE_TEMPERATURE, TeenConfig, class_prototypes, cosine_logits, teen_calibrate
from kernelkit.registry import Registry

METHODS: Registry[Callable[..., PrototypeClassifier]] = Registry("FSCIL method", discover=("kernelkit.fscil.methods",))


MethodFactory = Callable[..., "PrototypeClassifier"]


def register_method(name: str, **meta: Any) -> Callable[[MethodFactory], MethodFactory]:
    """Register a method factory (a class or function returning a :class:`PrototypeClassifier`)."""
    return METHODS.register(name, **meta)


def create_method(name: str, **kwargs: Any) -> PrototypeClassifier:
    """Build a registered method, e.g. ``create_method("teen", tau=16.0, alpha=0.5)``."""
    return METHODS.get(name)(**kwargs)


def list_methods() -> list[str]:
    return METHODS.names()


class PrototypeClassifier:
    """Cosine classifier over one prototype per seen class; prototypes are only ever appended.

    Subclasses change how a session's new prototypes are formed by overriding :meth:`new_prototypes`.
    """

    name = "prototype"

    def __init__(self, temperature: float = COSINE_TEMPERATURE) -> None:
        self.temperature = temperature
        self._blocks: list[Tensor] = []  # one (classes, D) block per session; never modified
        self.classes: list[int] = []
        self.num_base = 0

    # -- learning -----------------------------------------------------------------------------
    def learn_base(self, features: Tensor, labels: Tensor, classes: Sequence[int]) -> None:
        """Base session: one raw mean prototype per base class."""
        if self._blocks:
            raise RuntimeError("learn_base called twice; create a new method for a new run")
        self._append(class_prototypes(features, labels, classes), classes)
        self.num_base = len(classes)

    def learn_session(self, features: Tensor, labels: Tensor, classes: Sequence[int]) -> None:
        """One incremental session from its training shots only."""
        if not self._blocks:
            raise RuntimeError("learn_session before learn_base")
        if features.shape[-1] != self.feature_dim:
            raise ValueError(f"feature dimension mismatch: session features have {features.shape[-1]}, "
                             f"base prototypes {self.feature_dim}")
        clash = set(map(int, classes)) & set(self.classes)
        if clash:
            raise ValueError(f"classes {sorted(clash)} were already learned")
        raw = class_prototypes(features, labels, classes)
        self._append(self.new_prototypes(raw), classes)

    def new_prototypes(self, raw: Tensor) -> Tensor:
        """Prototypes stored for a session's new classes given their raw means (identity here)."""
        return raw

    def _append(self, block: Tensor, classes: Sequence[int]) -> None:
        block = block.detach().clone()
        block.requires_grad_(False)
        self._blocks.append(block)
        self.classes.extend(int(c) for c in classes)

    # -- inference ----------------------------------------------------------------------------
    @property
    def feature_dim(self) -> int:
        return int(self._blocks[0].shape[1])

    @property
    def base_prototypes(self) -> Tensor:
        return self._blocks[0]

    @property
    def prototypes(self) -> Tensor:
        """All prototypes ``(seen classes, D)``, rows in the order of :attr:`classes` (a copy)."""
        return torch.cat(self._blocks).clone()

    def logits(self, features: Tensor) -> Tensor:
        """``temperature * cos(features, prototypes)`` over all classes seen so far."""
        return cosine_logits(features, torch.cat(self._blocks), self.temperature)

    def predict(self, features: Tensor) -> Tensor:
        """Predicted class ids (not head indices)."""
        return torch.as_tensor(self.classes)[self.logits(features).argmax(dim=1)]

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "temperature": self.temperature}


@register_method("prototype", title="Cosine classifier on class-mean prototypes (TEEN's baseline)")
class PrototypeBaseline(PrototypeClassifier):
    """New prototypes are the raw class means of the shots."""

    name = "prototype"


@register_method("teen", title="TEEN: training-free prototype calibration")
class TEEN(PrototypeClassifier):
    """New prototypes are calibrated towards the base prototypes (:func:`teen_calibrate`)."""

    name = "teen"

    def __init__(self, tau: float = TeenConfig.tau, alpha: float = TeenConfig.alpha,
                 temperature: float = COSINE_TEMPERATURE) -> None:
        super().__init__(temperature)
        self.config = TeenConfig(tau, alpha)  # validates alpha before any session is learned
        self.tau, self.alpha = tau, alpha

    def new_prototypes(self, raw: Tensor) -> Tensor:
        return teen_calibrate(self.base_prototypes, raw, tau=self.tau, alpha=self.alpha)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tau": self.tau, "alpha": self.alpha}
