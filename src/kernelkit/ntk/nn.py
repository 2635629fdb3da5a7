"""Finite networks that also know their infinite-width kernel.

Every layer is an ordinary ``torch.nn.Module`` (use it, train it, take its empirical NTK) with an
explicit :meth:`KernelLayer.kernel` method mapping a :class:`~kernelkit.ntk.core.Kernel` to the next
one, so the finite network and its limit are defined side by side::

    net = Sequential(Dense(512, bias_std=0.1), ReLU(), Dense(1, bias_std=0.1))
    y = net(x)                                  # a finite network, N(0, 1) init, NTK parametrization
    k = kernelkit.ntk.analytic(net, x)          # its infinite-width NNGP and NTK

Parametrizations: ``"ntk"`` (Jacot et al.): ``z = σw/√fan_in · W x + σb · b`` with ``W, b ~ N(0, 1)``;
``"standard"``: ``W ~ N(0, σw²/fan_in)``, ``b ~ N(0, σb²)``, ``z = W x + b``. Same NNGP, different NTK.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from kernelkit.ntk import core
from kernelkit.ntk.core import Kernel

__all__ = [
    "ABReLU",
    "Abs",
    "Conv2d",
    "Dense",
    "Elementwise",
    "Erf",
    "Flatten",
    "GlobalAvgPool",
    "Identity",
    "KernelLayer",
    "LeakyReLU",
    "ParallelSum",
    "ReLU",
    "Residual",
    "Sequential",
    "UnsupportedLayerError",
    "layer_kernel",
]

PARAMETRIZATIONS = ("ntk", "standard")


class UnsupportedLayerError(TypeError):
    """A module has no infinite-width kernel rule."""


class KernelLayer(nn.Module):
    """A module with an infinite-width rule: ``kernel(k)`` returns the kernel after this layer."""

    def kernel(self, k: Kernel) -> Kernel:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_parametrization(p: str) -> str:
    if p not in PARAMETRIZATIONS:
        raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS}, got {p!r}")
    return p


class _WeightLayer(LazyModuleMixin, KernelLayer):
    """Shared parts of Dense and Conv2d: lazy N(0, 1) init and parametrization scales."""

    cls_to_become = None
    weight: nn.Parameter
    bias: nn.Parameter | None

    def __init__(self, out_features: int, weight_std: float, bias_std: float | None, parametrization: str) -> None:
        super().__init__()
        if out_features < 1:
            raise ValueError(f"out features/channels must be >= 1, got {out_features}")
        self.out_features = int(out_features)
        self.weight_std = float(weight_std)
        self.bias_std = None if bias_std is None else float(bias_std)
        self.parametrization = _check_parametrization(parametrization)
        self.weight = UninitializedParameter()  # type: ignore[assignment]  # materialized on the first call
        self.bias = UninitializedParameter() if bias_std is not None else None  # type: ignore[assignment]

    def _materialize(self, shape: tuple[int, ...], ref: Tensor) -> None:
        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
        with torch.no_grad():
            for param, size in ((self.weight, shape), (self.bias, (self.out_features,))):
                if isinstance(param, UninitializedParameter):
                    param.materialize(size, dtype=dtype, device=ref.device)
        self.reset_parameters()

    def fan_in(self) -> int:
        return self.weight[0].numel()

    def reset_parameters(self) -> None:
        if self.has_uninitialized_params():
            return
        std = 1.0 if self.parametrization == "ntk" else self.weight_std / math.sqrt(self.fan_in())
        with torch.no_grad():
            self.weight.normal_(0.0, std)
            if self.bias is not None:
                self.bias.normal_(0.0, 1.0 if self.parametrization == "ntk" else self.bias_std)  # type: ignore[arg-type]

    def scales(self) -> tuple[float, float]:
        """Multipliers of ``W`` and ``b`` in the forward pass (per-sample gradients scale by them)."""
        if self.parametrization == "ntk":
            return self.weight_std / math.sqrt(self.fan_in()), (self.bias_std or 0.0)
        return 1.0, 1.0


class Dense(_WeightLayer):
    """Fully connected layer on ``(N, features)``; ``in_features`` is inferred on the first call."""

    def __init__(self, out_features: int, weight_std: float = 1.0, bias_std: float | None = None,
                 parametrization: str = "ntk", in_features: int | None = None) -> None:
        super().__init__(out_features, weight_std, bias_std, parametrization)
        self.in_features = in_features
        if in_features is not None:
            self._materialize((self.out_features, in_features), torch.empty(0))

    def initialize_parameters(self, x: Tensor) -> None:  # called by LazyModuleMixin before forward
        if self.has_uninitialized_params():
            _require_2d(x, self)
            self.in_features = x.shape[1]
            self._materialize((self.out_features, x.shape[1]), x)

    def forward(self, x: Tensor) -> Tensor:
        _require_2d(x, self)
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"Dense expects {self.weight.shape[1]} input features, got {x.shape[1]}")
        ws, bs = self.scales()
        out = F.linear(x, self.weight) * ws
        return out if self.bias is None else out + bs * self.bias

    def kernel(self, k: Kernel) -> Kernel:
        if k.spatial:
            raise ValueError(f"Dense needs a 2-D (N, features) input, got spatial dims {k.spatial}; "
                             "add Flatten or GlobalAvgPool before it")
        if self.in_features is not None and self.in_features != k.channels:
            raise ValueError(f"Dense expects {self.in_features} input features, got {k.channels}")
        return core.dense_kernel(k, self.out_features, self.weight_std, self.bias_std, self.parametrization)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, weight_std={self.weight_std}, "
                f"bias_std={self.bias_std}, parametrization={self.parametrization!r}")


def _require_2d(x: Tensor, layer: nn.Module) -> None:
    if x.dim() != 2:
        raise ValueError(f"{type(layer).__name__} needs a 2-D (N, features) input, got shape {tuple(x.shape)}; "
                         "add Flatten or GlobalAvgPool before it")


class Conv2d(_WeightLayer):
    """2-D convolution on NCHW input; ``padding`` is ``"same"``, ``"valid"`` or ``"circular"``."""

    def __init__(self, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: str = "same", weight_std: float = 1.0, bias_std: float | None = None,
                 parametrization: str = "ntk", in_channels: int | None = None) -> None:
        super().__init__(out_channels, weight_std, bias_std, parametrization)
        if padding not in ("same", "valid", "circular"):
            raise ValueError(f"padding must be 'same', 'valid' or 'circular', got {padding!r}")
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.kernel_size: tuple[int, int] = (int(ks[0]), int(ks[1]))
        self.stride = int(stride)
        self.padding = padding
        self.in_channels = in_channels
        if in_channels is not None:
            self._materialize((self.out_features, in_channels, *self.kernel_size), torch.empty(0))

    def initialize_parameters(self, x: Tensor) -> None:
        if self.has_uninitialized_params():
            self._check_input(x)
            self.in_channels = x.shape[1]
            self._materialize((self.out_features, x.shape[1], *self.kernel_size), x)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"Conv2d needs an (N, C, H, W) input, got shape {tuple(x.shape)}")

    def _pad(self, x: Tensor) -> Tensor:
        if self.padding == "valid":
            return x
        kh, kw = self.kernel_size
        pad = ((kw - 1) // 2, kw - 1 - (kw - 1) // 2, (kh - 1) // 2, kh - 1 - (kh - 1) // 2)
        return F.pad(x, pad, mode="circular" if self.padding == "circular" else "constant")

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"Conv2d expects {self.weight.shape[1]} input channels, got {x.shape[1]}")
        ws, bs = self.scales()
        out = F.conv2d(self._pad(x), self.weight, stride=self.stride) * ws
        return out if self.bias is None else out + (bs * self.bias)[:, None, None]

    def kernel(self, k: Kernel) -> Kernel:
        if self.in_channels is not None and self.in_channels != k.channels:
            raise ValueError(f"Conv2d expects {self.in_channels} input channels, got {k.channels}")
        return core.conv_kernel(k, self.out_features, self.kernel_size, self.stride, self.padding,
                                self.weight_std, self.bias_std, self.parametrization)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_features}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}, weight_std={self.weight_std}, "
                f"bias_std={self.bias_std}, parametrization={self.parametrization!r}")


# ------------------------------------------------------------------------------------ nonlinearities
class ABReLU(KernelLayer):
    """``a·min(x, 0) + b·max(x, 0)``: the family behind ReLU, LeakyReLU, Abs (closed-form kernels)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = float(a), float(b)

    def forward(self, x: Tensor) -> Tensor:
        return self.a * torch.clamp(x, max=0) + self.b * torch.clamp(x, min=0)

    def kernel(self, k: Kernel) -> Kernel:
        return core.elementwise_kernel(k, core.ab_relu(self.a, self.b), type(self).__name__)

    def extra_repr(self) -> str:
        return f"a={self.a}, b={self.b}"


class ReLU(ABReLU):
    def __init__(self) -> None:
        super().__init__(0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)


class LeakyReLU(ABReLU):
    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__(negative_slope, 1.0)


class Abs(ABReLU):
    def __init__(self) -> None:
        super().__init__(-1.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return torch.abs(x)


class Erf(KernelLayer):
    """``a·erf(b x) + c`` (closed-form kernel)."""

    def __init__(self, a: float = 1.0, b: float = 1.0, c: float = 0.0) -> None:
        super().__init__()
        self.a, self.b, self.c = float(a), float(b), float(c)

    def forward(self, x: Tensor) -> Tensor:
        return self.a * torch.erf(self.b * x) + self.c

    def kernel(self, k: Kernel) -> Kernel:
        return core.elementwise_kernel(k, core.erf_kernel(self.a, self.b, self.c), "Erf")


class Elementwise(KernelLayer):
    """Any elementwise function; its kernel is computed by Gauss–Hermite quadrature (``order²`` nodes)."""

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str | None = None, order: int = 128) -> None:
        super().__init__()
        self.fn = fn
        self.name: str = name or str(getattr(fn, "__name__", type(fn).__name__))
        self.order = int(order)

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def kernel(self, k: Kernel) -> Kernel:
        return core.elementwise_kernel(k, core.quadrature_kernel(self.fn, self.order), self.name)

    def extra_repr(self) -> str:
        return f"{self.name}, order={self.order}"


class Identity(KernelLayer):
    def forward(self, x: Tensor) -> Tensor:
        return x

    def kernel(self, k: Kernel) -> Kernel:
        return k


# ------------------------------------------------------------------------------------------ readouts
class Flatten(KernelLayer):
    """``(N, C, H, W) -> (N, C·H·W)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(1)

    def kernel(self, k: Kernel) -> Kernel:
        return core.flatten_kernel(k)


class GlobalAvgPool(KernelLayer):
    """Mean over all spatial positions: ``(N, C, H, W) -> (N, C)``."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() < 3:
            raise ValueError(f"GlobalAvgPool needs an (N, C, H, W) input, got shape {tuple(x.shape)}")
        return x.flatten(2).mean(-1)

    def kernel(self, k: Kernel) -> Kernel:
        return core.gap_kernel(k)


# --------------------------------------------------------------------------------------- combinators
class Sequential(nn.Sequential, KernelLayer):
    """Layers in order; the kernel folds each layer's rule."""

    def kernel(self, k: Kernel) -> Kernel:
        for layer in self:
            k = layer_kernel(layer, k)
        return k


def _ends_with_weights(m: nn.Module) -> bool:
    if isinstance(m, _WeightLayer):
        return True
    if isinstance(m, nn.Sequential) and len(m) > 0:
        return _ends_with_weights(m[-1])
    if isinstance(m, ParallelSum):
        return all(_ends_with_weights(b) for b in m.branches)
    return False


class ParallelSum(KernelLayer):
    """Sum of branch outputs. Branches must be independent: all but one end in their own Dense/Conv2d,
    so cross-covariances vanish and the kernels add."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        if not branches:
            raise ValueError("ParallelSum needs at least one branch")
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        out = self.branches[0](x)
        for b in self.branches[1:]:
            out = out + b(x)
        return out

    def kernel(self, k: Kernel) -> Kernel:
        loose = [type(b).__name__ for b in self.branches if not _ends_with_weights(b)]
        if len(loose) > 1:
            raise ValueError(f"ParallelSum: branches {loose} do not end in a weight layer, so they are correlated; "
                             "only one branch may (the kernels of independent branches add)")
        return core.sum_kernels([layer_kernel(b, k) for b in self.branches])


class Residual(ParallelSum):
    """``x + layers(x)`` (the layers should end in a Dense/Conv2d)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(Identity(), Sequential(*layers))


# -------------------------------------------------------------------------------------- dispatching
def _torch_rule(m: nn.Module) -> KernelLayer | None:
    """Kernel rules for plain torch activations/reshapes (weights of nn.Linear/Conv2d have another init)."""
    if isinstance(m, nn.ReLU):
        return ReLU()
    if isinstance(m, nn.LeakyReLU):
        return LeakyReLU(m.negative_slope)
    if isinstance(m, nn.Identity):
        return Identity()
    if isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
        return Flatten()
    if isinstance(m, (nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Softplus, nn.ELU, nn.Mish)):
        return Elementwise(m, name=type(m).__name__)
    return None


def layer_kernel(m: nn.Module, k: Kernel) -> Kernel:
    """The kernel after module ``m``; unsupported modules raise :class:`UnsupportedLayerError` naming them."""
    if isinstance(m, KernelLayer):
        return m.kernel(k)
    if type(m) is nn.Sequential:
        for layer in m:
            k = layer_kernel(layer, k)
        return k
    rule = _torch_rule(m)
    if rule is not None:
        return rule.kernel(k)
    hint = ""
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        hint = f"; use kernelkit.ntk.nn.{'Dense' if isinstance(m, nn.Linear) else 'Conv2d'} (N(0,1) init)"
    elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.MaxPool2d)):
        hint = "; use kernelkit.ntk.empirical or monte_carlo for this model"
    raise UnsupportedLayerError(f"no infinite-width kernel rule for layer {type(m).__name__} ({m!r}){hint}")
