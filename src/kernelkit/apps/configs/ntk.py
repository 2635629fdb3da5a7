"""Configs of the ``kernelkit ntk`` commands and of the ``ntk_fig1/2/3`` recipes (Jacot et al. 2018, Section 6)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kernelkit.apps.configs.base import RunSettings
from kernelkit.apps.configs.reproduce import ReproduceConfig
from kernelkit.ntk.nn import PARAMETRIZATIONS

PAPER_BETA = 0.1  # bias standard deviation β of the paper's networks


# --------------------------------------------------------------------------------------------- commands
@dataclass(kw_only=True)
class NtkNetworkConfig(RunSettings):
    """The fully connected network of the NTK commands (``kernelkit.ntk.training.fc_network``)."""

    device: str = "cpu"
    depth: int = 3  # weight layers (paper: L)
    activation: str = "relu"  # relu, erf, abs or identity
    beta: float = PAPER_BETA  # bias standard deviation (0: no bias)
    parametrization: str = "ntk"  # ntk or standard

    def __post_init__(self) -> None:
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"--beta: the bias standard deviation must be >= 0 (0 = no bias), got {self.beta:g}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"--parametrization: expected one of {', '.join(PARAMETRIZATIONS)}, "
                             f"got {self.parametrization!r}")


@dataclass(kw_only=True)
class NtkAnalyticConfig(NtkNetworkConfig):
    """``kernelkit ntk analytic``: infinite-width NNGP and NTK on ``inputs`` (x ``inputs2``)."""

    inputs: str = "circle"  # file (.npy/.npz/.csv) or built-in: circle, digits, mnist
    inputs2: str | None = None  # second input set (None: same as inputs)
    n: int | None = None  # use the first n samples
    batch_size: int | None = None  # block size bounding memory


@dataclass(kw_only=True)
class NtkEmpiricalConfig(NtkAnalyticConfig):
    """``kernelkit ntk empirical``: the NTK of a randomly initialized network of ``width``."""

    width: int = 512
    method: str = "auto"  # auto, jacobian, ntvp, structured
    compare: bool = True  # also report the distance to the analytic limit


KERNEL_KINDS = ("nngp", "ntk")


@dataclass(kw_only=True)
class NtkKernelConfig(NtkNetworkConfig):
    """``kernelkit ntk kernel``: one infinite-width kernel computed in blocks into a ``.npy`` file (resumable)."""

    inputs: str = "circle"  # file (.npy/.npz/.csv) or built-in: circle, digits, mnist
    inputs2: str | None = None  # second input set (None: same as inputs, symmetric blocks computed once)
    n: int | None = None  # use the first n samples
    out_file: str = "kernel.npy"  # the .npy file the kernel is written to
    block: int = 1024  # rows and columns per block
    kind: str = "ntk"  # nngp or ntk
    resume: bool = False  # continue a file this command started with the same settings

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind not in KERNEL_KINDS:
            raise ValueError(f"--kind: expected one of {', '.join(KERNEL_KINDS)}, got {self.kind!r}")
        if not self.out_file.endswith(".npy"):
            raise ValueError(f"--out-file {self.out_file}: name a .npy file")


@dataclass(kw_only=True)
class NtkPredictConfig(NtkNetworkConfig):
    """``kernelkit ntk predict``: closed-form gradient-descent prediction of infinite-width networks."""

    train: str = "circle"  # training inputs (.npz with x, y; or built-in)
    test: str = "circle"
    y: str | None = None  # targets (.npy/.csv) for file inputs without y
    n_train: int = 8
    n_test: int = 64
    times: tuple[float, ...] = (100.0, 1000.0)  # times t = steps x learning rate; t = inf is always added
    learning_rate: float = 1.0
    diag_reg: float = 1e-6

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [t for t in self.times if not (math.isfinite(t) and t >= 0)]
        if bad or not self.times:
            raise ValueError(f"--t: times must be finite and >= 0 (t = inf is always added), got {bad[0]:g}"
                             if bad else "--t: give at least one time")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"--lr: the learning rate must be > 0, got {self.learning_rate:g}")
        if not (math.isfinite(self.diag_reg) and self.diag_reg >= 0):
            raise ValueError(f"--diag-reg: must be >= 0, got {self.diag_reg:g}")


@dataclass(kw_only=True)
class NtkReproduceConfig(ReproduceConfig):
    """``kernelkit ntk reproduce``: the paper's figures (the NTK part of ``kernelkit reproduce``), on the CPU
    unless told otherwise."""

    device: str = "cpu"


# --------------------------------------------------------------------------------------------- recipes
@dataclass(kw_only=True)
class NtkFig1Config:
    """Fig. 1: empirical NTK Θ(x₀, x) on the circle at init and after training, for each width over seeds."""

    widths: tuple[int, ...] = (500, 10000)
    seeds: int = 10
    points: int = 97  # circle points γ ∈ [−3, 3]
    depth: int = 4
    beta: float = PAPER_BETA
    n_train: int = 10
    steps: int = 200
    lr: float = 1.0

    @classmethod
    def quick(cls) -> NtkFig1Config:
        return replace(cls(), widths=(500, 1000), seeds=3, points=49)


@dataclass(kw_only=True)
class NtkFig2Config:
    """Fig. 2: trained networks of each width vs the limiting Gaussian process."""

    widths: tuple[int, ...] = (50, 1000)
    seeds: int = 10
    depth: int = 4
    beta: float = PAPER_BETA
    train_gamma: tuple[float, ...] = (-2.4, -0.9, 0.6, 2.2)  # training points (cos γ, sin γ)
    test_points: int = 100
    steps: int = 1000
    lr: float = 1.0

    @classmethod
    def quick(cls) -> NtkFig2Config:
        return replace(cls(), seeds=5)


@dataclass(kw_only=True)
class NtkFig3Config:
    """Fig. 3: principal components of the limiting NTK on digits, and training along the second one."""

    n_digits: int = 512
    depths: tuple[int, ...] = (2, 3, 4, 5, 6)  # depths of the eigenvalue table
    beta: float = PAPER_BETA
    footnote_beta: float = 1.0  # the paper's footnote 3, shown at depth ``depth``
    depth: int = 4  # the depth of Figs. 1 and 2, fixed in advance: the paper does not state Fig. 3's
    widths: tuple[int, ...] = (100, 1000)
    trials: int = 2
    lr: float = 8.0
    t_max: float = 4000.0

    @classmethod
    def quick(cls) -> NtkFig3Config:
        return replace(cls(), widths=(100, 300), trials=1, t_max=2000.0)
