"""Training configuration: one validated dataclass, JSON round-trippable (stored in every checkpoint)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kernelkit.runs import ConfigMismatchError as ConfigMismatchError  # defined beside the run directories

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine", "constant", "multistep")
SCHEDULE_UNITS = ("step", "epoch")
AMP_MODES = ("auto", "off", "bf16", "fp16")

# Fields that may change between a run and its resume without changing the training trajectory.
RESUME_VOLATILE = frozenset({"checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "eval_batch_size"})


@dataclass
class TrainConfig:
    """Hyperparameters of one classification training run.

    ``max_steps`` (when set) fixes the number of optimizer steps, cycling through epochs as needed;
    otherwise training runs ``epochs`` full passes. ``batch_size`` is the *global* batch: under DDP
    every rank gets a shard of it. ``checkpoint_every=0`` checkpoints only at epoch ends.
    The schedule is evaluated per optimizer step; with ``schedule_unit="epoch"`` it is evaluated at the
    epoch index instead (``warmup_steps`` then counts epochs). ``amp`` is honoured on CUDA only
    ("auto": bf16 when supported, else fp16); on CPU it is a no-op.
    """

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 64
    eval_batch_size: int | None = None  # defaults to batch_size
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9  # SGD only
    nesterov: bool = False  # SGD only
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW only
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_steps: int = 0  # linear warmup, per optimizer step
    min_lr: float = 0.0  # floor of the cosine schedule
    milestones: tuple[int, ...] = ()  # multistep: epochs at which the LR is multiplied by gamma
    gamma: float = 0.1  # multistep decay factor
    schedule_unit: str = "step"  # "epoch": LR held within an epoch (a torch scheduler stepped per epoch)
    label_smoothing: float = 0.0
    ema_decay: float | None = None  # e.g. 0.999; evaluation then uses the EMA weights
    grad_clip: float | None = None  # max global L2 norm of the gradients
    amp: str = "auto"
    checkpoint_every: int = 100  # optimizer steps between checkpoints (0: epoch ends only)
    keep_checkpoints: int = 2  # most recent full-state checkpoints kept on disk
    log_every: int = 10  # optimizer steps between step-level metric records
    drop_last: bool = False  # drop a final partial batch of each epoch
    num_workers: int = 0  # DataLoader worker processes
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        _int("epochs", self.epochs, minimum=1)
        if self.max_steps is not None:
            _int("max_steps", self.max_steps, minimum=1)
        _int("batch_size", self.batch_size, minimum=1)
        if self.eval_batch_size is not None:
            _int("eval_batch_size", self.eval_batch_size, minimum=1)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _number("lr", self.lr, low=0.0, low_open=True)
        _number("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _bool("nesterov", self.nesterov)
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov: needs optimizer='sgd' and momentum > 0")
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise ValueError(f"betas: expected two numbers in [0, 1), got {self.betas!r}")
        for b in self.betas:
            _number("betas", b, low=0.0, high=1.0, high_open=True)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        _number("weight_decay", self.weight_decay, low=0.0)
        _choice("schedule", self.schedule, SCHEDULES)
        _int("warmup_steps", self.warmup_steps, minimum=0)
        _choice("schedule_unit", self.schedule_unit, SCHEDULE_UNITS)
        if not isinstance(self.milestones, (tuple, list)):
            raise ValueError(f"milestones: expected a list of epochs, got {self.milestones!r}")
        for m in self.milestones:
            _int("milestones", m, minimum=1)
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones: must be strictly increasing, got {list(self.milestones)}")
        if self.schedule == "multistep" and not self.milestones:
            raise ValueError("milestones: schedule='multistep' needs at least one milestone epoch")
        self.milestones = tuple(self.milestones)
        _number("gamma", self.gamma, low=0.0, low_open=True)
        _number("min_lr", self.min_lr, low=0.0)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr: must not exceed lr ({self.min_lr} > {self.lr})")
        _number("label_smoothing", self.label_smoothing, low=0.0, high=1.0, high_open=True)
        if self.ema_decay is not None:
            _number("ema_decay", self.ema_decay, low=0.0, high=1.0, low_open=True, high_open=True)
        if self.grad_clip is not None:
            _number("grad_clip", self.grad_clip, low=0.0, low_open=True)
        _choice("amp", self.amp, AMP_MODES)
        _int("checkpoint_every", self.checkpoint_every, minimum=0)
        _int("keep_checkpoints", self.keep_checkpoints, minimum=1)
        _int("log_every", self.log_every, minimum=1)
        _bool("drop_last", self.drop_last)
        _int("num_workers", self.num_workers, minimum=0)
        _int("seed", self.seed, minimum=0)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["milestones"] = list(self.milestones)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build from a mapping; unknown keys raise (naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(unknown)}")
        d = dict(d)
        for key in ("betas", "milestones"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)


def _int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")


def _bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected True or False, got {value!r}")


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(options)}; got {value!r}")


def _number(name: str, value: Any, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name}: must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name}: must be {'<' if high_open else '<='} {high}, got {value}")
