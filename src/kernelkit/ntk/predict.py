"""Closed-form gradient flow under MSE with a fixed kernel (linearized / infinite-width networks).

Loss convention (as in neural-tangents): ``L(f) = ‖f − y‖² / (2·n)`` with ``n = y_train.numel()``, so
gradient descent with learning rate ``η`` for ``t`` steps follows ``∂f/∂t = −(η/n) Θ (f − y)``. For a single
output this is the paper's flow with ``t`` = number of steps at ``η = 1``::

    f_train(t) = y + e^{−ηtΘ/n} (f_train(0) − y)
    f_test(t)  = f_test(0) − Θ* Θ⁻¹ (I − e^{−ηtΘ/n}) (f_train(0) − y)

Kernels are per-logit ``(N, N)`` matrices (trace over outputs); ``y`` is ``(N,)`` or ``(N, O)``.

At ``t = ∞`` and dataset scale, :func:`kernel_regression` gives ``f_test = Θ* Θ⁻¹ y`` with :func:`solve`:
a float64 Cholesky solve while ``N <= max_direct``, beyond it a Jacobi-preconditioned conjugate-gradient
solve that only multiplies row blocks of the kernel, which may be the file-backed result of
:func:`kernelkit.ntk.blocked.kernel_blocks`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["Prediction", "gradient_descent_mse", "gradient_descent_mse_ensemble", "kernel_regression",
           "max_learning_rate", "solve"]

MAX_DIRECT = 20_000  # largest N solved by Cholesky by default (the float64 copy of Θ is 3.2 GB at this size)
SOLVERS = ("auto", "cholesky", "cg")


def _as_times(t: float | Tensor | None, like: Tensor) -> Tensor | None:
    if t is None:
        return None
    tt = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if (tt < 0).any():
        raise ValueError(f"t must be >= 0, got {t}")
    return tt


def _check_kernel(k: Tensor, n: int, name: str) -> Tensor:
    if k.dim() != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {tuple(k.shape)}")
    if k.shape[0] != n:
        raise ValueError(f"{name} is {k.shape[0]}x{k.shape[0]} but y_train has {n} rows")
    if not torch.isfinite(k).all():
        raise ValueError(f"{name} contains NaN/inf")
    return k


def _regularize(k: Tensor, diag_reg: float, absolute: bool) -> Tensor:
    if diag_reg == 0:
        return k
    scale = 1.0 if absolute else float(k.diagonal().mean())
    return k + diag_reg * scale * torch.eye(k.shape[0], dtype=k.dtype, device=k.device)


class _Flow:
    """Eigendecomposition of ``Θ`` (cached) giving ``e^{−τΘ/n}`` and ``Θ⁻¹(I − e^{−τΘ/n})``."""

    def __init__(self, k: Tensor, n: int, learning_rate: float) -> None:
        self.k, self.n, self.lr = k, n, learning_rate
        self._eig: tuple[Tensor, Tensor] | None = None
        self._chol: Tensor | None = None

    def eig(self) -> tuple[Tensor, Tensor]:
        if self._eig is None:
            evals, evecs = torch.linalg.eigh(self.k)
            self._eig = (evals.clamp_min(0.0), evecs)
        return self._eig

    def expm(self, t: Tensor) -> Tensor:
        """``e^{−ηtΘ/n}`` for each time in ``t`` (shape ``t.shape + (N, N)``)."""
        evals, v = self.eig()
        decay = torch.exp(-self.lr * t[..., None] * evals / self.n)
        return (v * decay[..., None, :]) @ v.T

    def inv_one_minus_expm(self, t: Tensor) -> Tensor:
        """``Θ⁻¹(I − e^{−ηtΘ/n})``, with its limit ``ηt/n`` on zero eigenvalues."""
        evals, v = self.eig()
        tau = self.lr * t[..., None] / self.n
        safe = torch.where(evals > 0, evals, torch.ones_like(evals))
        coef = torch.where(evals > 0, -torch.expm1(-tau * evals) / safe, tau.expand_as(tau * evals))
        return (v * coef[..., None, :]) @ v.T

    def solve(self, rhs: Tensor) -> Tensor:
        """``Θ⁻¹ rhs`` by Cholesky (t = ∞)."""
        if self._chol is None:
            chol, info = torch.linalg.cholesky_ex(self.k)
            if int(info) != 0:
                raise ValueError("k_train_train is singular or not positive definite, so t=∞ is undefined; "
                                 "pass diag_reg > 0 or a finite t")
            self._chol = chol
        return torch.cholesky_solve(rhs, self._chol)


@dataclass
class Prediction:
    """Train (and test) outputs at the requested time(s); a leading time axis if ``t`` was an array."""

    train: Tensor
    test: Tensor | None = None


def gradient_descent_mse(k_train_train: Tensor, y_train: Tensor, learning_rate: float = 1.0, diag_reg: float = 0.0,
                         diag_reg_absolute_scale: bool = False) -> Callable[..., Prediction]:
    """Outputs of a network (or its infinite-width limit) trained by gradient descent on MSE.

    Returns ``predict(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None) -> Prediction``: ``t`` is
    the number of steps (scalar or 1-D; ``None`` = ∞); ``fx_*_0`` are the outputs at initialization; with
    ``k_test_train`` ``(N_test, N)`` the test outputs are returned too.
    """
    y = torch.as_tensor(y_train)
    squeeze = y.dim() == 1
    y2 = y[:, None] if squeeze else y
    k = _regularize(_check_kernel(torch.as_tensor(k_train_train), y2.shape[0], "k_train_train"), diag_reg,
                    diag_reg_absolute_scale)
    y2 = y2.to(k.dtype)
    flow = _Flow(k, y2.numel(), learning_rate)

    def predict(t: float | Tensor | None = None, fx_train_0: float | Tensor = 0.0,
                fx_test_0: float | Tensor | None = None, k_test_train: Tensor | None = None) -> Prediction:
        f0 = torch.as_tensor(fx_train_0, dtype=k.dtype).reshape(-1, 1) if squeeze else \
            torch.as_tensor(fx_train_0, dtype=k.dtype)
        f0 = torch.broadcast_to(f0, y2.shape)
        diff = f0 - y2
        tt = _as_times(t, k)
        train = y2.clone() if tt is None else y2 + flow.expm(tt) @ diff
        test = None
        if k_test_train is not None:
            kt = torch.as_tensor(k_test_train, dtype=k.dtype)
            if kt.dim() != 2 or kt.shape[1] != y2.shape[0]:
                raise ValueError(f"k_test_train must be (N_test, {y2.shape[0]}), got shape {tuple(kt.shape)}")
            ft0 = torch.zeros(kt.shape[0], y2.shape[1], dtype=k.dtype) if fx_test_0 is None else \
                torch.broadcast_to(torch.as_tensor(fx_test_0, dtype=k.dtype).reshape(kt.shape[0], -1),
                                   (kt.shape[0], y2.shape[1]))
            test = ft0 - kt @ flow.solve(diff) if tt is None else ft0 - kt @ (flow.inv_one_minus_expm(tt) @ diff)
        if squeeze:
            train = train.squeeze(-1)
            test = None if test is None else test.squeeze(-1)
        return Prediction(train, test)

    return predict


def gradient_descent_mse_ensemble(ntk_train_train: Tensor, ntk_test_train: Tensor, nngp_train_train: Tensor,
                                  nngp_test_train: Tensor, nngp_test_test: Tensor, y_train: Tensor,
                                  t: float | Tensor | None = None, learning_rate: float = 1.0, diag_reg: float = 0.0,
                                  get: str = "ntk") -> tuple[Tensor, Tensor]:
    """Mean and covariance of test outputs over random initializations ``f₀ ~ GP(0, K)`` (K = NNGP).

    With ``A = Θ*Θ⁻¹(I − e^{−ηtΘ/n})``: mean ``A y``, covariance ``K** − A K*ᵀ − K* Aᵀ + A K Aᵀ``
    (at ``t = ∞`` this is the paper's limiting Gaussian). ``get="nngp"`` trains only the readout
    (``Θ`` replaced by ``K``), giving GP posterior inference at ``t = ∞``.
    Returns ``(mean (N_test,) or (N_test, O), covariance (N_test, N_test))``.
    """
    if get not in ("ntk", "nngp"):
        raise ValueError(f"get must be 'ntk' or 'nngp', got {get!r}")
    y = torch.as_tensor(y_train)
    y2 = y[:, None] if y.dim() == 1 else y
    theta, theta_star = (ntk_train_train, ntk_test_train) if get == "ntk" else (nngp_train_train, nngp_test_train)
    theta = _regularize(_check_kernel(theta, y2.shape[0], f"{get}_train_train"), diag_reg, False)
    k = _check_kernel(nngp_train_train, y2.shape[0], "nngp_train_train")
    flow = _Flow(theta, y2.numel(), learning_rate)
    tt = _as_times(t, theta)
    a = flow.solve(theta_star.T).T if tt is None else theta_star @ flow.inv_one_minus_expm(tt)
    mean = a @ y2.to(theta.dtype)
    cov = nngp_test_test - a @ nngp_test_train.T - nngp_test_train @ a.transpose(-1, -2) + a @ k @ a.transpose(-1, -2)
    return (mean.squeeze(-1) if y.dim() == 1 else mean), cov


def max_learning_rate(ntk_train_train: Tensor, y_train_size: int | None = None, momentum: float = 0.0) -> float:
    """Largest stable learning rate for MSE gradient descent: ``2n/λ_max`` (times ``1 + momentum``)."""
    k = torch.as_tensor(ntk_train_train)
    n = k.shape[0] if y_train_size is None else y_train_size
    lam = float(torch.linalg.eigvalsh(k.to(torch.float64)).max())
    if lam <= 0:
        raise ValueError("ntk_train_train has no positive eigenvalue")
    return 2.0 * n / lam * (1.0 + momentum)


def _as_matrix(k: Tensor | np.ndarray[Any, Any], name: str) -> Tensor:
    """A tensor view of ``k`` (no copy for tensors and numpy arrays, memmaps included)."""
    if isinstance(k, np.ndarray):
        with warnings.catch_warnings():  # read-only memmaps (np.load(mmap_mode="r")) are only read here
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(k)
    else:
        t = torch.as_tensor(k)
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(t.shape)}")
    return t


def _row_blocks(k: Tensor, v: Tensor, block: int) -> Tensor:
    """``k @ v`` reading ``block`` rows of ``k`` at a time, in float64."""
    out = v.new_empty(k.shape[0], v.shape[1])
    for i in range(0, k.shape[0], block):
        out[i:i + block] = k[i:i + block].to(device=v.device, dtype=v.dtype) @ v
    return out


def _cg(k: Tensor, b: Tensor, reg: float, rtol: float, max_iter: int, block: int) -> Tensor:
    """Jacobi-preconditioned conjugate gradients on ``(K + reg I) x = b``, each column of ``b`` on its own."""
    d = k.diagonal().to(b.dtype) + reg
    if not torch.isfinite(d).all() or (d <= 0).any():
        raise ValueError("k_train_train must have a positive, finite diagonal for the conjugate-gradient solve")
    b_norm = b.norm(dim=0)
    x = torch.zeros_like(b)
    r = b.clone()
    z = r / d[:, None]
    p = z.clone()
    rz = (r * z).sum(0)
    for _ in range(max_iter):
        if not torch.isfinite(r).all():
            raise ValueError("k_train_train or the right-hand side contains NaN/inf")
        active = r.norm(dim=0) > rtol * b_norm
        if not active.any():
            return x
        ap = _row_blocks(k, p, block) + reg * p
        pap = (p * ap).sum(0)
        alpha = torch.where(active & (pap > 0), rz / torch.where(pap > 0, pap, 1.0), 0.0)
        x += alpha * p
        r -= alpha * ap
        z = r / d[:, None]
        rz_new = (r * z).sum(0)
        beta = torch.where(active & (rz > 0), rz_new / torch.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta * p
        rz = rz_new
    worst = float((r.norm(dim=0) / b_norm.clamp_min(torch.finfo(b.dtype).tiny)).max())
    raise RuntimeError(f"conjugate gradients reached max_iter={max_iter} with relative residual {worst:.3g} > "
                       f"rtol={rtol:g}; the kernel is ill-conditioned: pass diag_reg > 0 or a larger max_iter")


def solve(k_train_train: Tensor | np.ndarray[Any, Any], rhs: Tensor, diag_reg: float = 0.0,
          diag_reg_absolute_scale: bool = False, method: str = "auto", max_direct: int = MAX_DIRECT,
          rtol: float = 1e-10, max_iter: int | None = None, block: int = 4096) -> Tensor:
    """``(Θ + λI)⁻¹ rhs`` in float64, ``λ = diag_reg`` (times ``mean(diag Θ)`` unless absolute).

    ``method="auto"`` uses a Cholesky factorization for ``N <= max_direct`` and conjugate gradients beyond;
    ``"cholesky"`` / ``"cg"`` force one. Conjugate gradients (Jacobi preconditioner, one run per column of
    ``rhs``, ``block`` kernel rows in memory at a time) stop when every column's residual satisfies
    ``‖(Θ + λI)x − rhs‖ <= rtol·‖rhs‖``; the error of ``x`` is then at most ``cond(Θ + λI)·rtol`` relative to
    the exact solution. Not reaching ``rtol`` within ``max_iter`` iterations (default ``10·N``) raises.
    """
    if method not in SOLVERS:
        raise ValueError(f"method must be one of {SOLVERS}, got {method!r}")
    k = _as_matrix(k_train_train, "k_train_train")
    if k.shape[0] != k.shape[1]:
        raise ValueError(f"k_train_train must be a square (N, N) matrix, got shape {tuple(k.shape)}")
    b = torch.as_tensor(rhs, dtype=torch.float64, device=k.device)
    squeeze = b.dim() == 1
    b2 = b[:, None] if squeeze else b
    if b2.shape[0] != k.shape[0]:
        raise ValueError(f"k_train_train is {k.shape[0]}x{k.shape[0]} but rhs has {b2.shape[0]} rows")
    n = k.shape[0]
    reg = 0.0 if diag_reg == 0 else diag_reg * (1.0 if diag_reg_absolute_scale else float(k.diagonal().double().mean()))
    if method == "cholesky" or (method == "auto" and n <= max_direct):
        full = _regularize(_check_kernel(k.to(torch.float64), n, "k_train_train"), reg, True)
        x = _Flow(full, n, 1.0).solve(b2)
    else:
        x = _cg(k, b2, reg, rtol, 10 * n if max_iter is None else max_iter, block)
    return x.squeeze(-1) if squeeze else x


def kernel_regression(k_train_train: Tensor | np.ndarray[Any, Any], y_train: Tensor,
                      k_test_train: Tensor | np.ndarray[Any, Any] | None = None, diag_reg: float = 0.0,
                      diag_reg_absolute_scale: bool = False, method: str = "auto", max_direct: int = MAX_DIRECT,
                      rtol: float = 1e-10, max_iter: int | None = None, block: int = 4096) -> Prediction:
    """Kernel (ridge) regression: ``f_test = Θ* (Θ + λI)⁻¹ y`` and the fit ``f_train = Θ (Θ + λI)⁻¹ y``.

    ``f_test`` equals ``gradient_descent_mse(...)(None, k_test_train=...).test``, the outputs at ``t = ∞`` of
    gradient flow from zero outputs (with the NNGP kernel: the GP posterior mean), for any ``N``: see
    :func:`solve` for the methods and the tolerance. Kernels may be tensors or numpy
    arrays, memmaps included; they are read ``block`` rows at a time for products.
    """
    y = torch.as_tensor(y_train, dtype=torch.float64)
    alpha = solve(k_train_train, y, diag_reg, diag_reg_absolute_scale, method, max_direct, rtol, max_iter, block)
    a2 = alpha[:, None] if alpha.dim() == 1 else alpha
    k = _as_matrix(k_train_train, "k_train_train")
    train = _row_blocks(k, a2.to(k.device), block)
    test = None
    if k_test_train is not None:
        kt = _as_matrix(k_test_train, "k_test_train")
        if kt.shape[1] != k.shape[0]:
            raise ValueError(f"k_test_train must be (N_test, {k.shape[0]}), got shape {tuple(kt.shape)}")
        test = _row_blocks(kt, a2.to(kt.device), block)
    if alpha.dim() == 1:
        train = train.squeeze(-1)
        test = None if test is None else test.squeeze(-1)
    return Prediction(train, test)
