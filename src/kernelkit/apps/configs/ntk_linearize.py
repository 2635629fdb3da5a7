"""Config of the ``ntk_linearize`` recipe (Lee et al. 2019: wide networks evolve as their linearization)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(kw_only=True)
class NtkLinearizeConfig:
    """Finite FC ReLU networks vs their linearization vs the analytic NTK prediction, as the width grows.

    Full-batch gradient descent on MSE (one-hot targets − 0.1) on digits, the same learning rate and steps for
    the network and its linearization; the learning rate is ``lr_fraction`` × the largest stable rate of the
    analytic NTK (``2n / λ_max``).
    """

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    depth: int = 3  # weight layers: depth − 1 hidden ReLU layers
    beta: float = 0.1  # bias standard deviation
    seeds: int = 2  # initializations per width
    n_train: int = 64
    n_test: int = 64
    steps: int = 100
    records: int = 10  # outputs are recorded at this many evenly spaced steps (and at steps 0 and the last)
    lr_fraction: float = 0.5
    slope_tolerance: float = 0.25  # verdict: the fitted log-log slope lies within this of the predicted −1/2

    @classmethod
    def quick(cls) -> NtkLinearizeConfig:
        return replace(cls(), widths=(64, 256, 1024), seeds=1, n_train=32, n_test=32, steps=40, records=4)
