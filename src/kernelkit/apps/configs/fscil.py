"""Configs of ``kernelkit fscil run`` and of the ``fscil_teen_omniglot`` recipe.

TEEN's ``tau``/``alpha`` defaults and their range check live in :class:`kernelkit.fscil.TeenConfig`;
the base-training defaults in :class:`kernelkit.fscil.training.BaseTrainConfig`; the Omniglot
protocol's in :class:`kernelkit.fscil.data.OmniglotProtocol`. The configs here reference them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kernelkit.apps.configs.base import RunSettings
from kernelkit.data.omniglot import SET_SIZES as OMNIGLOT_CHARACTERS
from kernelkit.fscil.core import TeenConfig
from kernelkit.fscil.data import OmniglotProtocol
from kernelkit.fscil.training import BaseTrainConfig


@dataclass(frozen=True)
class DatasetDefaults:
    """What ``fscil run`` uses for a dataset unless told otherwise."""

    backbone: str
    temperature: float  # cosine logit scale
    alpha: float  # TEEN shift weight
    augment: str  # base-training augmentation (kernelkit.fscil.training.base_augmentation)
    size: int  # training image side


# Per-dataset defaults from TEEN's scripts (omniglot and digits: kernelkit's own protocols).
DATASET_DEFAULTS: dict[str, DatasetDefaults] = {
    "omniglot": DatasetDefaults("resnet20", 16.0, 0.1, "omniglot", 28),
    "cifar100": DatasetDefaults("resnet20", 16.0, 0.1, "cifar", 32),
    "mini_imagenet": DatasetDefaults("resnet18", 32.0, 0.5, "imagenet", 84),
    "cub200": DatasetDefaults("resnet18", 32.0, 0.5, "imagenet", 224),
    "digits": DatasetDefaults("resnet8", 16.0, 0.1, "omniglot", 8),
}


@dataclass(kw_only=True)
class FscilRunConfig(RunSettings):
    """Every input of ``kernelkit fscil run``. ``None`` for backbone/alpha/temperature means the dataset's
    default (:data:`DATASET_DEFAULTS`); :meth:`resolved` fills them in, so ``config.json`` holds the values used."""

    dataset: str
    backbone: str | None = None
    width: int | None = None  # width of a CIFAR ResNet backbone (None: the model's default)
    methods: tuple[str, ...] = ("prototype", "teen")
    tau: float = TeenConfig.tau
    alpha: float | None = None
    temperature: float | None = None
    epochs: int = 30
    batch_size: int = BaseTrainConfig.batch_size
    lr: float = BaseTrainConfig.lr
    split_dir: str | None = None
    val_fraction: float = 0.1
    num_base: int = OmniglotProtocol.num_base
    way: int = OmniglotProtocol.way
    sessions: int = OmniglotProtocol.num_sessions

    def __post_init__(self) -> None:
        """Refuse nonsense with ``ValueError("--option: ...")`` (the command exits 2 with it)."""
        if self.dataset not in DATASET_DEFAULTS:
            raise ValueError(f"--dataset: unknown dataset {self.dataset!r}; expected one of "
                             f"{', '.join(DATASET_DEFAULTS)}")
        teen_checks: list[tuple[str, dict[str, float]]] = [("--tau", {"tau": self.tau})]
        if self.alpha is not None:
            teen_checks.append(("--alpha", {"alpha": self.alpha}))
        for option, teen_kwargs in teen_checks:
            try:
                TeenConfig(**teen_kwargs)  # the one range check of TEEN's settings
            except ValueError as exc:
                raise ValueError(f"{option}: {exc}") from None
        for option, value in (("--lr", self.lr), ("--temperature", self.temperature)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{option}: must be > 0, got {value:g}")
        if self.backbone is not None:
            from kernelkit.models import list_models

            if self.backbone not in list_models():
                raise ValueError(f"--backbone: unknown model {self.backbone!r}; "
                                 "see 'kernelkit list models' for the registered names")
        if self.dataset == "omniglot":
            bg, ev = OMNIGLOT_CHARACTERS["background"], OMNIGLOT_CHARACTERS["evaluation"]
            if self.num_base > bg:
                raise ValueError(f"--num-base: at most {bg} (Omniglot's background characters), got {self.num_base}")
            if self.way * (self.sessions - 1) > ev:
                raise ValueError(f"--sessions: at most {1 + ev // self.way} with --way {self.way} (Omniglot has "
                                 f"{ev} evaluation characters for the new sessions), got {self.sessions}")
        else:
            plan = FscilRunConfig.num_base, FscilRunConfig.way, FscilRunConfig.sessions
            for option, value, default in zip(("--num-base", "--way", "--sessions"),
                                              (self.num_base, self.way, self.sessions), plan, strict=True):
                if value != default:
                    raise ValueError(f"{option}: applies to --dataset omniglot only; {self.dataset} follows its "
                                     "fixed session plan")

    @property
    def defaults(self) -> DatasetDefaults:
        return DATASET_DEFAULTS[self.dataset]

    def resolved(self) -> FscilRunConfig:
        """The dataset's defaults filled in (the checks of ``__post_init__`` run again on the result)."""
        d = self.defaults
        return replace(self, backbone=self.backbone or d.backbone,
                       alpha=d.alpha if self.alpha is None else self.alpha,
                       temperature=d.temperature if self.temperature is None else self.temperature)

    def teen(self) -> TeenConfig:
        return TeenConfig(self.tau, self.defaults.alpha if self.alpha is None else self.alpha)

    def protocol(self) -> OmniglotProtocol:
        return OmniglotProtocol(num_base=self.num_base, way=self.way, num_sessions=self.sessions)

    def train(self) -> BaseTrainConfig:
        assert self.temperature is not None, "call resolved() first"
        return BaseTrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                               temperature=self.temperature, augment=self.defaults.augment, seed=self.seed)


@dataclass(kw_only=True)
class FscilTeenOmniglotConfig:
    """The ``fscil_teen_omniglot`` recipe: full run by default, :meth:`quick` the small preset.

    With the Omniglot arrays: a ``backbone`` of ``width`` on the protocol (``num_base`` base characters,
    ``sessions`` sessions of ``way``-way ``shot``-shot). Without them the scikit-learn digits stand in
    (``fallback_*`` settings). Then TEEN at (``tau``, ``alpha``) against the baseline over ``plan_seeds``
    session plans, and a sensitivity grid over ``taus`` x ``alphas``.
    """

    backbone: str = "resnet8"
    width: int = 16
    num_base: int = 100
    way: int = 10
    shot: int = 5
    sessions: int = 9
    epochs: int = 12
    batch_size: int = 64
    lr: float = 0.05
    augment: str = "omniglot"
    fallback_width: int = 8
    fallback_image_size: int = 8
    fallback_epochs: int = 20
    tau: float = TeenConfig.tau  # TEEN's CIFAR-100 setting, fixed before looking at any result
    alpha: float = TeenConfig.alpha
    taus: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
    alphas: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
    plan_seeds: int = 3

    def __post_init__(self) -> None:
        for a in (self.alpha, *self.alphas):
            TeenConfig(self.tau, a)

    @classmethod
    def quick(cls) -> FscilTeenOmniglotConfig:
        return replace(cls(), num_base=60, sessions=6, epochs=8, fallback_epochs=4)

    def protocol(self) -> OmniglotProtocol:
        return OmniglotProtocol(num_base=self.num_base, way=self.way, shot=self.shot, num_sessions=self.sessions)
