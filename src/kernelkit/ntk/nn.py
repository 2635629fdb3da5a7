"""Finite networks that also know their infinite-width kernel.

Every layer is an ordinary ``torch.nn.Module`` (use it, train it, take its empirical NTK) with an
explicit :meth:`KernelLayer.kernel` method mapping a :class:`~kernelkit.ntk.core.Kernel` to the next
one, so the finite network and its limit are defined side by side::

    net = Sequential(Dense(512, bias_std=0.1), ReLU(), Dense(1, bias_std=0.1))
    y = net(x)                                  # a finite network, N(0, 1) init, NTK parametrization
    k = kernelkit.ntk.analytic(net, x)          # its infinite-width NNGP and NTK

Parametrizations: ``"ntk"`` (Jacot et al.): ``z = σw/√fan_in · W x + σb · b`` with ``W, b ~ N(0, 1)``;
``"standard"``: ``W ~ N(0, σw²/fan_in)``, ``b ~ N(0, σb²)``, ``z = W x + b``. Same NNGP, different NTK.

Layers follow neural-tangents' ``stax`` (values agree to float64 precision): Dense, Conv2d (``padding="same"``
is JAX/TF SAME at every stride; torch's symmetric padding is ``"symmetric"``), AvgPool2d, GlobalAvgPool,
Flatten, LayerNorm, Dropout, GlobalSelfAttention, the ReLU family, Erf and Gelu (closed forms), Tanh, Sigmoid,
Softplus and any :class:`Elementwise` function (quadrature), Identity, Sequential, ParallelSum, Residual;
:func:`wide_resnet` and :func:`cnn_gap` build the networks of the NTK literature. Plain torch activations,
``nn.Dropout``, ``nn.AvgPool2d`` and affine-free ``nn.LayerNorm`` map to these rules (:data:`SUPPORTED_LAYERS`).
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
    "SUPPORTED_LAYERS",
    "ABReLU",
    "Abs",
    "AvgPool2d",
    "Conv2d",
    "Dense",
    "Dropout",
    "Elementwise",
    "Erf",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "GlobalSelfAttention",
    "Identity",
    "KernelLayer",
    "LayerNorm",
    "LeakyReLU",
    "ParallelSum",
    "ReLU",
    "Residual",
    "Sequential",
    "Sigmoid",
    "Softplus",
    "Tanh",
    "UnsupportedLayerError",
    "cnn_gap",
    "layer_kernel",
    "wide_resnet",
    "wide_resnet_block",
]

PARAMETRIZATIONS = ("ntk", "standard")


class UnsupportedLayerError(TypeError):
    """A module has no infinite-width kernel rule; ``path`` is its position in the network (``"2.1"``)."""

    def __init__(self, message: str, path: str = "") -> None:
        self.message, self.path = message, path
        super().__init__(message)

    def __str__(self) -> str:
        return f"layer {self.path}: {self.message}" if self.path else self.message

    def inside(self, name: str) -> UnsupportedLayerError:
        """The same error seen from the container holding the failing layer under ``name``."""
        return UnsupportedLayerError(self.message, f"{name}.{self.path}" if self.path else name)

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.message, self.path)


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
    """2-D convolution on NCHW input.

    ``padding``: ``"same"`` is JAX/TF (and neural-tangents) SAME for every stride: output size
    ``ceil(size/stride)``, the odd extra row/column padded at the bottom/right; ``"circular"`` wraps the
    same amounts around; ``"valid"`` pads nothing; ``"symmetric"`` pads ``(k-1)//2`` before and ``k//2``
    after whatever the stride (torch's ``padding=k//2`` for odd ``k``; equals ``"same"`` at stride 1).
    """

    def __init__(self, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: str = "same", weight_std: float = 1.0, bias_std: float | None = None,
                 parametrization: str = "ntk", in_channels: int | None = None) -> None:
        super().__init__(out_channels, weight_std, bias_std, parametrization)
        if padding not in core.PADDINGS:
            raise ValueError(f"padding must be one of {core.PADDINGS}, got {padding!r}")
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

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(left, right, top, bottom)`` padding of an ``height x width`` input (``F.pad`` order)."""
        top, bottom = core.conv_pads(height, self.kernel_size[0], self.stride, self.padding)
        left, right = core.conv_pads(width, self.kernel_size[1], self.stride, self.padding)
        return left, right, top, bottom

    def _pad(self, x: Tensor) -> Tensor:
        pad = self.pads(x.shape[-2], x.shape[-1])
        if not any(pad):
            return x
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


class Gelu(KernelLayer):
    """Exact GELU ``x·Φ(x)`` (closed-form kernel, as neural-tangents' ``stax.Gelu``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x)

    def kernel(self, k: Kernel) -> Kernel:
        return core.elementwise_kernel(k, core.gelu_kernel(), "Gelu")


class Tanh(Elementwise):
    """``tanh`` (no closed form: Gauss–Hermite quadrature with ``order²`` nodes)."""

    def __init__(self, order: int = 128) -> None:
        super().__init__(torch.tanh, name="Tanh", order=order)


class Sigmoid(Elementwise):
    """Logistic sigmoid (no closed form: Gauss–Hermite quadrature with ``order²`` nodes)."""

    def __init__(self, order: int = 128) -> None:
        super().__init__(torch.sigmoid, name="Sigmoid", order=order)


class Softplus(Elementwise):
    """``log(1 + exp(βx))/β`` (torch's, linear above ``threshold``); kernel by Gauss–Hermite quadrature."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0, order: int = 128) -> None:
        super().__init__(F.softplus, name="Softplus", order=order)
        self.beta, self.threshold = float(beta), float(threshold)
        self.fn = self._softplus

    def _softplus(self, x: Tensor) -> Tensor:
        return F.softplus(x, self.beta, self.threshold)


# ------------------------------------------------------------------- pooling, normalization, dropout
class AvgPool2d(KernelLayer):
    """Local average pooling on NCHW input.

    ``stride=None`` means ``stride = kernel_size`` (torch's default; neural-tangents' ``AvgPool`` defaults to
    stride 1). ``padding`` as :class:`Conv2d` (``"valid"``, ``"same"``, ``"circular"``, ``"symmetric"``);
    padded zeros count in the window mean (neural-tangents' ``normalize_edges=False``, torch's
    ``count_include_pad=True``).
    """

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: str = "valid") -> None:
        super().__init__()
        if padding not in core.PADDINGS:
            raise ValueError(f"padding must be one of {core.PADDINGS}, got {padding!r}")
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"AvgPool2d needs an (N, C, H, W) input, got shape {tuple(x.shape)}")
        top, bottom = core.conv_pads(x.shape[2], self.kernel_size[0], self.stride[0], self.padding)
        left, right = core.conv_pads(x.shape[3], self.kernel_size[1], self.stride[1], self.padding)
        if left or right or top or bottom:
            x = F.pad(x, (left, right, top, bottom), mode="circular" if self.padding == "circular" else "constant")
        return F.avg_pool2d(x, self.kernel_size, self.stride)

    def kernel(self, k: Kernel) -> Kernel:
        return core.avg_pool_kernel(k, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding!r}"


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    t = (v, v) if isinstance(v, int) else tuple(v)
    if len(t) != 2 or min(t) < 1:
        raise ValueError(f"expected a positive int or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


class LayerNorm(KernelLayer):
    """Normalize over channels at each position: ``(x − mean_c x)/√(var_c x + eps)`` (no affine parameters), as
    neural-tangents' ``stax.LayerNorm(axis=-1)``. The kernel needs Gaussian input (right after Dense/Conv2d)."""

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = x.var(1, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps)

    def kernel(self, k: Kernel) -> Kernel:
        return core.layer_norm_kernel(k, self.eps)

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


class Dropout(KernelLayer):
    """Dropout with drop probability ``rate`` (torch's ``p``; neural-tangents' ``rate`` is the keep probability
    ``1 − rate``). In training mode (the default) the kernel is neural-tangents' ``Dropout(mode="train")``;
    after ``.eval()`` the layer and its kernel are the identity."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.rate, training=self.training)

    def kernel(self, k: Kernel) -> Kernel:
        return core.dropout_kernel(k, self.rate) if self.training and self.rate > 0 else k

    def extra_repr(self) -> str:
        return f"rate={self.rate}"


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
        return layer_kernel(self, k)


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
        kernels = []
        for i, b in enumerate(self.branches):
            try:
                kernels.append(layer_kernel(b, k))
            except UnsupportedLayerError as e:
                raise e.inside(f"branches.{i}") from None
        return core.sum_kernels(kernels)


class Residual(ParallelSum):
    """``x + layers(x)`` (the layers should end in a Dense/Conv2d)."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__(Identity(), Sequential(*layers))


class GlobalSelfAttention(LazyModuleMixin, KernelLayer):
    """Multi-head self-attention over all positions, neural-tangents' ``GlobalSelfAttention`` with
    ``linear_scaling=True`` (the parametrization with an infinite-width kernel): per head, tied keys and queries
    ``K = x W_K``, logits ``σ_QK K Kᵀ/(C_in d_key)`` (``σ_QK = W_query_std·W_key_std``), weights
    ``attention_mechanism(logits)`` (softmax over key positions, or elementwise identity/abs/relu), values
    ``x W_V``; the heads are concatenated and mapped by ``σ_OV W_out/√(d_val·heads·C_in)``
    (``σ_OV = W_out_std·W_value_std``) plus ``b_std·b``; all weights N(0, 1).

    Covered: every ``attention_mechanism``, ``b_std``, any input (NCHW: attention over the H·W positions;
    ``(N, features)``: one position). Not covered: ``linear_scaling=False`` (no closed form), positional
    embeddings (``pos_emb_type`` other than ``"NONE"``) and masks.
    """

    cls_to_become = None
    key: nn.Parameter
    value: nn.Parameter
    out: nn.Parameter
    bias: nn.Parameter | None

    def __init__(self, n_chan_out: int, n_chan_key: int, n_chan_val: int, n_heads: int, W_key_std: float = 1.0,
                 W_value_std: float = 1.0, W_query_std: float = 1.0, W_out_std: float = 1.0,
                 b_std: float | None = None, attention_mechanism: str = "softmax") -> None:
        super().__init__()
        if min(n_chan_out, n_chan_key, n_chan_val, n_heads) < 1:
            raise ValueError("GlobalSelfAttention sizes must be >= 1, got "
                             f"{(n_chan_out, n_chan_key, n_chan_val, n_heads)}")
        mechanism = attention_mechanism.lower()
        if mechanism not in core.ATTENTION_MECHANISMS:
            raise ValueError(f"attention_mechanism must be one of {core.ATTENTION_MECHANISMS}, "
                             f"got {attention_mechanism!r}")
        self.n_chan_out, self.n_chan_key, self.n_chan_val, self.n_heads = n_chan_out, n_chan_key, n_chan_val, n_heads
        self.qk_std = float(W_query_std) * float(W_key_std)
        self.ov_std = float(W_out_std) * float(W_value_std)
        self.b_std = None if b_std is None else float(b_std)
        self.mechanism = mechanism
        self.key = UninitializedParameter()  # type: ignore[assignment]
        self.value = UninitializedParameter()  # type: ignore[assignment]
        self.out = UninitializedParameter()  # type: ignore[assignment]
        self.bias = UninitializedParameter() if b_std is not None else None  # type: ignore[assignment]

    def initialize_parameters(self, x: Tensor) -> None:
        if not self.has_uninitialized_params():
            return
        c = x.shape[1]
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
        shapes = {"key": (self.n_heads, c, self.n_chan_key), "value": (self.n_heads, c, self.n_chan_val),
                  "out": (self.n_chan_val * self.n_heads, self.n_chan_out), "bias": (self.n_chan_out,)}
        with torch.no_grad():
            for name, shape in shapes.items():
                param = getattr(self, name)
                if isinstance(param, UninitializedParameter):
                    param.materialize(shape, dtype=dtype, device=x.device)
                    param.normal_()

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        if c != self.key.shape[1]:
            raise ValueError(f"GlobalSelfAttention expects {self.key.shape[1]} input channels, got {c}")
        z = x.reshape(n, c, -1).transpose(1, 2)  # (N, P, C)
        keys = torch.einsum("npc,hcd->hnpd", z, self.key)
        logits = keys @ keys.transpose(-1, -2) * (self.qk_std / (c * self.n_chan_key))
        values = torch.einsum("npc,hcd->hnpd", z, self.value)
        heads = core.attention_weights(logits, self.mechanism) @ values  # (heads, N, P, d_val)
        heads = heads.permute(1, 2, 3, 0).reshape(n, z.shape[1], -1)  # channel = value index · heads + head
        y = heads @ self.out * (self.ov_std / math.sqrt(self.n_chan_val * self.n_heads * c))
        if self.bias is not None:
            y = y + self.b_std * self.bias  # type: ignore[operator]
        return y.transpose(1, 2).reshape(n, self.n_chan_out, *x.shape[2:])

    def kernel(self, k: Kernel) -> Kernel:
        return core.self_attention_kernel(k, self.qk_std, self.ov_std, self.b_std, self.mechanism).replace(
            channels=self.n_chan_out)

    def extra_repr(self) -> str:
        return (f"out={self.n_chan_out}, key={self.n_chan_key}, val={self.n_chan_val}, heads={self.n_heads}, "
                f"qk_std={self.qk_std}, ov_std={self.ov_std}, b_std={self.b_std}, mechanism={self.mechanism!r}")


# ------------------------------------------------------------------------------------------- networks
def wide_resnet_block(channels: int, stride: int = 1, channel_mismatch: bool = False) -> ParallelSum:
    """neural-tangents' README ``WideResnetBlock``: ReLU-Conv-ReLU-Conv plus an identity (or conv) shortcut."""
    main = Sequential(ReLU(), Conv2d(channels, 3, stride), ReLU(), Conv2d(channels, 3))
    shortcut: nn.Module = Conv2d(channels, 3, stride) if channel_mismatch else Identity()
    return ParallelSum(main, shortcut)


def wide_resnet(block_size: int, k: int = 1, num_classes: int = 10, pool: int = 8) -> Sequential:
    """The WideResNet of neural-tangents' README (``WideResnet(block_size, k, num_classes)``): a 3x3 conv, three
    groups of ``block_size`` blocks (16k, 32k, 64k channels; the last two start with stride 2), ``AvgPool``
    over ``pool x pool``, Flatten and ``Dense(num_classes, 1, 0)``. The README's ``pool=8`` fits 32x32 images
    (final 8x8 map); use the final map's size (input size / 4) for others. All convolutions pad SAME."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    layers: list[nn.Module] = [Conv2d(16, 3)]
    for channels, stride in ((16 * k, 1), (32 * k, 2), (64 * k, 2)):
        layers.append(wide_resnet_block(channels, stride, channel_mismatch=True))
        layers += [wide_resnet_block(channels) for _ in range(block_size - 1)]
    return Sequential(*layers, AvgPool2d(pool), Flatten(), Dense(num_classes, 1.0, 0.0))


def cnn_gap(depth: int, channels: int = 1, num_classes: int = 10, weight_std: float = 2**0.5,
            bias_std: float | None = None) -> Sequential:
    """CNN-GAP (Novak et al. 2019; Arora et al. 2019): ``depth`` x (3x3 SAME conv, ReLU), global average pooling
    and a dense readout."""
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [Conv2d(channels, 3, weight_std=weight_std, bias_std=bias_std), ReLU()]
    return Sequential(*layers, GlobalAvgPool(), Dense(num_classes, weight_std, bias_std))


# -------------------------------------------------------------------------------------- dispatching
def _torch_rule(m: nn.Module, k: Kernel | None = None) -> KernelLayer | None:
    """Kernel rules for plain torch activations/reshapes/pooling (weights of nn.Linear/Conv2d have another
    init); ``k`` (the input kernel) rules out torch modules whose axes differ from the rule's."""
    if isinstance(m, nn.ReLU):
        return ReLU()
    if isinstance(m, nn.LeakyReLU):
        return LeakyReLU(m.negative_slope)
    if isinstance(m, nn.Identity):
        return Identity()
    if isinstance(m, nn.Flatten) and m.start_dim == 1 and m.end_dim == -1:
        return Flatten()
    if isinstance(m, nn.GELU):
        return Gelu() if m.approximate == "none" else Elementwise(m, name="GELU(tanh)")
    if isinstance(m, nn.Tanh):
        return Tanh()
    if isinstance(m, nn.Sigmoid):
        return Sigmoid()
    if isinstance(m, nn.Softplus):
        return Softplus(m.beta, m.threshold)
    if isinstance(m, (nn.SiLU, nn.ELU, nn.Mish)):
        return Elementwise(m, name=type(m).__name__)
    if type(m) is nn.Dropout:
        return Dropout(m.p) if m.training else Identity()
    if isinstance(m, nn.AvgPool2d):
        return _torch_avg_pool(m)
    if (isinstance(m, nn.LayerNorm) and not m.elementwise_affine and len(m.normalized_shape) == 1
            and (k is None or not k.spatial)):
        return LayerNorm(m.eps)  # over the features of an (N, features) input = its channels
    return None


def _torch_avg_pool(m: nn.AvgPool2d) -> AvgPool2d | None:
    ks = _pair(m.kernel_size)  # type: ignore[arg-type]
    stride = _pair(m.stride) if m.stride else ks  # type: ignore[arg-type]
    pad = _pair(m.padding) if m.padding else (0, 0)  # type: ignore[arg-type]
    if m.ceil_mode or m.divisor_override is not None:
        return None
    if pad == (0, 0):
        return AvgPool2d(ks, stride, "valid")
    if m.count_include_pad and all(2 * p + 1 == q for p, q in zip(pad, ks, strict=True)):
        return AvgPool2d(ks, stride, "symmetric")
    return None


SUPPORTED_LAYERS = (
    "kernelkit.ntk.nn: Dense, Conv2d, ReLU, LeakyReLU, Abs, ABReLU, Erf, Gelu, Tanh, Sigmoid, Softplus, "
    "Elementwise, Identity, Flatten, GlobalAvgPool, AvgPool2d, LayerNorm, Dropout, GlobalSelfAttention, "
    "Sequential, ParallelSum, Residual; torch.nn: ReLU, LeakyReLU, GELU, Tanh, Sigmoid, Softplus, SiLU, ELU, "
    "Mish, Identity, Flatten, Dropout, AvgPool2d (no ceil_mode/divisor; padding 0 or k//2 with odd k), "
    "LayerNorm (elementwise_affine=False, on (N, features)), Sequential"
)


def layer_kernel(m: nn.Module, k: Kernel) -> Kernel:
    """The kernel after module ``m``; unsupported modules raise :class:`UnsupportedLayerError` naming them
    (with their position inside ``Sequential`` containers) and listing the supported layers."""
    if isinstance(m, KernelLayer) and not isinstance(m, Sequential):
        return m.kernel(k)
    if isinstance(m, nn.Sequential):  # ours or torch's: name the failing child by its index
        for name, layer in m.named_children():
            try:
                k = layer_kernel(layer, k)
            except UnsupportedLayerError as e:
                raise e.inside(name) from None
        return k
    rule = _torch_rule(m, k)
    if rule is not None:
        return rule.kernel(k)
    hint = ""
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        hint = f"; use kernelkit.ntk.nn.{'Dense' if isinstance(m, nn.Linear) else 'Conv2d'} (N(0,1) init)"
    elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.MaxPool2d)):
        hint = "; use kernelkit.ntk.empirical or monte_carlo for this model"
    elif isinstance(m, nn.LayerNorm):
        hint = "; use kernelkit.ntk.nn.LayerNorm (over channels, no affine parameters)"
    raise UnsupportedLayerError(f"no infinite-width kernel rule for layer {type(m).__name__} ({m!r}){hint}. "
                                f"Supported: {SUPPORTED_LAYERS}")
