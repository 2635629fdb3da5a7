"""Re-parameterizable depthwise convolutions: the Dilated Reparam Block of UniRepLKNet.

Training form: a non-dilated depthwise K×K conv + BN in parallel with dilated depthwise branches
(each + BN), summed. Deploy form: one depthwise K×K conv with bias. ``equivalent_kernel_bias()``
computes the merged kernel without changing the module (RepVGG style); ``reparameterize()`` swaps
the structure in place and is idempotent. Parameter names follow the official implementation
(``lk_origin``, ``origin_bn``, ``dil_conv_k{k}_{r}``, ``dil_bn_k{k}_{r}``) so checkpoints load as-is.

Large depthwise convs run through :func:`kernelkit.layers.depthwise_conv2d` on CPU when the fast path
is on: per layer with the constructor argument (``DilatedReparamBlock(..., fast_depthwise=False)``,
``DepthwiseConv2d(..., fast=False)``; default on), and for a block of code with
``with use_fast_depthwise(False): model(x)`` (benchmarks, comparisons; scoped, restored after the block).
Under ``torch.compile`` the block is not consulted (traced code reads no context variable): the
constructor argument alone decides. How the fast conv behaves under compile, export, autocast,
FlopCounterMode and on CUDA: :mod:`kernelkit.layers.depthwise`.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.layers.depthwise import depthwise_conv2d
from kernelkit.layers.fusion import add_branches, dilated_to_dense, fold_bn
from kernelkit.utils.switch import Switch

# Branch kernels k and dilations r per large kernel size K (official defaults; equivalent sizes (k-1)r+1 <= K).
DRB_BRANCHES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
}

_FAST_DEPTHWISE = Switch(True, name="kernelkit_fast_depthwise")  # changed only inside use_fast_depthwise


def use_fast_depthwise(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """``with use_fast_depthwise(False): model(x)`` runs plain ``F.conv2d`` inside the block.

    ``use_fast_depthwise(True)`` lets every layer follow its own ``fast`` argument (the default outside
    any block). The previous setting is restored after the block.
    """
    return _FAST_DEPTHWISE.use(enabled)


def _fast_switch_on() -> bool:
    """:func:`use_fast_depthwise`'s setting in eager mode; traced code (``torch.compile``) reads no context
    variable, so there each layer's ``fast`` argument alone decides."""
    return torch.compiler.is_compiling() or _FAST_DEPTHWISE.enabled


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise ``nn.Conv2d`` (same parameters and names) that routes large kernels to the fast CPU conv.

    The fast path is taken on CPU when ``fast`` is on (and not turned off by :func:`use_fast_depthwise`),
    for stride 1 and 'same' padding when the effective kernel size ``(k−1)·d+1`` exceeds 3; everything
    else is ``F.conv2d(groups=C)``.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1, bias: bool = False, stride: int = 1,
                 fast: bool = True):
        effective = (kernel_size - 1) * dilation + 1
        super().__init__(channels, channels, kernel_size, stride=stride, padding=effective // 2,
                         dilation=dilation, groups=channels, bias=bias)
        self.fast = fast
        self._fast_ok = stride == 1 and effective > 3 and effective % 2 == 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast_ok and self.fast and x.device.type == "cpu" and _fast_switch_on():
            return depthwise_conv2d(x, self.weight, self.bias, stride=1, padding="same", dilation=self.dilation[0])
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def bn_fold(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`kernelkit.layers.fusion.fold_bn` with the statistics of ``bn``, computed in float64."""
    assert bn.running_mean is not None and bn.running_var is not None, "BN without running statistics"
    d = torch.float64
    w, b = fold_bn(weight.detach().to(d), None if bias is None else bias.detach().to(d),
                   bn.running_mean.to(d), bn.running_var.to(d),
                   None if bn.weight is None else bn.weight.detach().to(d),
                   None if bn.bias is None else bn.bias.detach().to(d), bn.eps)
    return w, b


class DilatedReparamBlock(nn.Module):
    """Dilated Reparam Block (UniRepLKNet): depthwise K×K conv with parallel dilated small-kernel branches.

    Args:
        channels: number of input = output channels (depthwise).
        kernel_size: K, one of 5, 7, 9, 11, 13, 15, 17 (branch settings in :data:`DRB_BRANCHES`).
        deploy: build the merged inference form (a single K×K depthwise conv with bias).
        fast_depthwise: route the large depthwise convs through the fast CPU conv (see :class:`DepthwiseConv2d`).
    """

    def __init__(self, channels: int, kernel_size: int, deploy: bool = False, fast_depthwise: bool = True):
        super().__init__()
        if kernel_size not in DRB_BRANCHES:
            raise ValueError(f"DilatedReparamBlock supports kernel_size in {sorted(DRB_BRANCHES)}, got {kernel_size}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.kernel_sizes, self.dilates = DRB_BRANCHES[kernel_size]
        self.fast_depthwise = fast_depthwise
        self.lk_origin = DepthwiseConv2d(channels, kernel_size, bias=deploy, fast=fast_depthwise)
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(channels)
            for k, r in self.branches:
                setattr(self, f"dil_conv_k{k}_{r}", DepthwiseConv2d(channels, k, dilation=r, fast=fast_depthwise))
                setattr(self, f"dil_bn_k{k}_{r}", nn.BatchNorm2d(channels))

    @property
    def branches(self) -> list[tuple[int, int]]:
        """``(k, r)`` of each dilated branch."""
        return list(zip(self.kernel_sizes, self.dilates, strict=True))

    @property
    def deployed(self) -> bool:
        return not hasattr(self, "origin_bn")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for k, r in self.branches:
            out = out + getattr(self, f"dil_bn_k{k}_{r}")(getattr(self, f"dil_conv_k{k}_{r}")(x))
        return out

    def equivalent_kernel_bias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The K×K kernel and bias of the single conv equal to this block in eval mode (float64, non-destructive)."""
        if self.deployed:
            bias = self.lk_origin.bias
            assert bias is not None
            return self.lk_origin.weight.detach().double(), bias.detach().double()
        parts = [bn_fold(self.lk_origin.weight, self.lk_origin.bias, self.origin_bn)]
        for k, r in self.branches:
            conv = getattr(self, f"dil_conv_k{k}_{r}")
            w, b = bn_fold(conv.weight, conv.bias, getattr(self, f"dil_bn_k{k}_{r}"))
            parts.append((dilated_to_dense(w, r), b))
        return add_branches(parts)

    def reparameterize(self) -> None:
        """Merge all branches into ``lk_origin`` (one K×K depthwise conv with bias); idempotent."""
        if self.deployed:
            return
        kernel, bias = self.equivalent_kernel_bias()
        ref = self.lk_origin.weight
        merged = DepthwiseConv2d(self.channels, self.kernel_size, bias=True, fast=self.fast_depthwise)
        merged = merged.to(device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            merged.weight.copy_(kernel.to(ref.dtype))
            assert merged.bias is not None
            merged.bias.copy_(bias.to(ref.dtype))
        self.lk_origin = merged
        del self.origin_bn
        for k, r in self.branches:
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, branches={self.branches}, deployed={self.deployed}"


def randomize_for_reparam_check(model: nn.Module, seed: int = 0, scale: float = 0.5) -> nn.Module:
    """Give every BN random running statistics and affine parameters, every layer scale ``gamma`` and GRN
    ``gamma``/``beta`` random values, so that a train→deploy equivalence check is meaningful
    (with default statistics BN is the identity and the check proves little). In place; returns ``model``.
    """
    g = torch.Generator().manual_seed(seed)

    def rnd(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(t.shape, generator=g)).to(t)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(rnd(m.running_mean, -scale, scale))
                m.running_var.copy_(rnd(m.running_var, 0.5, 1.5))
                if m.weight is not None:
                    m.weight.copy_(rnd(m.weight, 0.5, 1.5))
                    m.bias.copy_(rnd(m.bias, -scale, scale))
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "gamma" and p.dim() == 1:  # layer scale
                p.copy_(rnd(p, 0.5, 1.0))
            elif leaf in ("gamma", "beta") and p.dim() == 4:  # GRN
                p.copy_(rnd(p, -scale, scale))
    return model
