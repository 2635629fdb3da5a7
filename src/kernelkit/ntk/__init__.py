"""Neural tangent kernels: empirical NTK of any PyTorch module, infinite-width kernels, prediction.

Public API::

    from kernelkit import ntk
    net = ntk.nn.Sequential(ntk.nn.Dense(512, bias_std=0.1), ntk.nn.ReLU(), ntk.nn.Dense(1, bias_std=0.1))
    ntk.analytic(net, x)               # infinite-width NNGP / NTK (float64)
    ntk.empirical(net, x)              # NTK of this finite network (any nn.Module)
    ntk.monte_carlo(make_net, x, n_samples=64)
    ntk.predict.gradient_descent_mse(k_train_train, y_train)(t, fx_train_0)
"""

from kernelkit.ntk import nn, predict
from kernelkit.ntk.analytic_kernel import Kernels, analytic
from kernelkit.ntk.empirical_kernel import empirical
from kernelkit.ntk.monte_carlo_kernel import MonteCarloKernels, monte_carlo

__all__ = ["Kernels", "MonteCarloKernels", "analytic", "empirical", "monte_carlo", "nn", "predict"]
