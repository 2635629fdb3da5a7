"""Neural tangent kernels: empirical NTK of any PyTorch module, infinite-width kernels, prediction.

Public API::

    from kernelkit import ntk
    net = ntk.nn.Sequential(ntk.nn.Dense(512, bias_std=0.1), ntk.nn.ReLU(), ntk.nn.Dense(1, bias_std=0.1))
    ntk.analytic(net, x)               # infinite-width NNGP / NTK (float64)
    ntk.empirical(net, x)              # NTK of this finite network (any nn.Module)
    ntk.monte_carlo(make_net, x, n_samples=64)
    ntk.predict.gradient_descent_mse(k_train_train, y_train)(t, fx_train_0)
    ntk.blocked.kernel_blocks(ntk.blocked.kernel_fn(ntk.analytic, net, get="ntk"), x, out="k.npy")  # resumable
    ntk.predict.kernel_regression(k_train_train, y_train, k_test_train)  # Cholesky, or CG beyond max_direct
    ntk.linearize(model)               # first-order Taylor expansion in the parameters, trainable
"""

from kernelkit.ntk import blocked, nn, predict
from kernelkit.ntk.analytic_kernel import Kernels, analytic
from kernelkit.ntk.blocked import kernel_blocks
from kernelkit.ntk.empirical_kernel import empirical
from kernelkit.ntk.linearize import Linearized, linearize
from kernelkit.ntk.monte_carlo_kernel import MonteCarloKernels, monte_carlo

__all__ = ["Kernels", "Linearized", "MonteCarloKernels", "analytic", "blocked", "empirical", "kernel_blocks",
           "linearize", "monte_carlo", "nn", "predict"]
