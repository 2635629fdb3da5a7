"""Monte-Carlo NNGP / NTK: average the kernels of independently initialized finite networks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from kernelkit.console import ProgressBar
from kernelkit.ntk.analytic_kernel import GETS, check_inputs
from kernelkit.ntk.empirical_kernel import empirical

__all__ = ["MonteCarloKernels", "monte_carlo"]


@dataclass
class MonteCarloKernels:
    """Sample means ``nngp``/``ntk`` ``(N1, N2)`` and their standard errors (std over samples / √n)."""

    nngp: Tensor | None
    ntk: Tensor | None
    nngp_sem: Tensor | None
    ntk_sem: Tensor | None
    n_samples: int


def monte_carlo(make_model: Callable[[], nn.Module], x1: Tensor, x2: Tensor | None = None, n_samples: int = 64,
                get: str | Sequence[str] = GETS, seed: int = 0, method: str = "auto",
                batch_size: int | None = None, progress: bool = False) -> MonteCarloKernels:
    """Estimate the NNGP and NTK by averaging over ``n_samples`` networks from ``make_model()``.

    Network ``i`` is built after ``torch.manual_seed(seed + i)``. The NNGP sample is
    ``f(x1) f(x2)ᵀ / O`` (outputs flattened to ``(N, O)``, averaged over logits); the NTK sample is the
    empirical NTK with ``trace="mean"``. Outputs are unbiased estimates of the finite-width expectations.
    ``progress=True`` shows a :class:`kernelkit.console.ProgressBar` counting the ``n_samples`` networks (off
    by default: nothing is printed unless asked).
    """
    gets = (get,) if isinstance(get, str) else tuple(get)
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 (standard errors need two samples), got {n_samples}")
    x1, x2 = check_inputs(x1, x2)
    xb = x1 if x2 is None else x2
    sums: dict[str, Tensor] = {}
    sq: dict[str, Tensor] = {}
    with ProgressBar("Monte Carlo networks", total=n_samples, disable=not progress) as bar:
        for i in range(n_samples):
            _add_sample(make_model, x1, x2, xb, gets, seed + i, method, batch_size, sums, sq)
            bar.advance(1)
    mean = {k: v / n_samples for k, v in sums.items()}
    sem = {k: ((sq[k] / n_samples - mean[k] ** 2).clamp_min(0) * n_samples / (n_samples - 1) / n_samples).sqrt()
           for k in sums}
    return MonteCarloKernels(mean.get("nngp"), mean.get("ntk"), sem.get("nngp"), sem.get("ntk"), n_samples)


def _add_sample(make_model: Callable[[], nn.Module], x1: Tensor, x2: Tensor | None, xb: Tensor,
                gets: tuple[str, ...], seed: int, method: str, batch_size: int | None, sums: dict[str, Tensor],
                sq: dict[str, Tensor]) -> None:
    """Add the kernels of the network built after ``torch.manual_seed(seed)`` to the running sums."""
    torch.manual_seed(seed)
    model = make_model()
    samples: dict[str, Tensor] = {}
    if "nngp" in gets:
        with torch.no_grad():
            if any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters()):
                model(x1[:1].to(torch.get_default_dtype()))
            dtype = next(model.parameters()).dtype
            f1 = model(x1.to(dtype)).reshape(x1.shape[0], -1)
            f2 = f1 if x2 is None else model(xb.to(dtype)).reshape(xb.shape[0], -1)
        samples["nngp"] = (f1 @ f2.T / f1.shape[1]).double()
    if "ntk" in gets:
        samples["ntk"] = empirical(model, x1, x2, method=method, batch_size=batch_size).double()
    for k, v in samples.items():
        sums[k] = sums.get(k, 0) + v  # type: ignore[operator]
        sq[k] = sq.get(k, 0) + v * v  # type: ignore[operator]
