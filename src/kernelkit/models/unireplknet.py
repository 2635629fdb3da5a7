"""UniRepLKNet: a universal perception large-kernel ConvNet.

Ding et al., "UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video, Point Cloud,
Time-Series and Image Recognition" (CVPR 2024) and "Scaling Up Your Kernels: Large Kernel Design in
ConvNets towards Universal Representations" (TPAMI, arXiv 2410.08049).

Parameter and buffer names equal the official implementation's in both the training and the deploy
form, so official checkpoints load with ``strict=True``. ``kernelkit.models.reparameterize(model)``
converts a training-form model to the deploy form in place: each Dilated Reparam Block becomes one
depthwise conv, the block BN is folded into it, and GRN β, the post-FFN BN and the layer scale are
folded into the second linear layer.

Deploy-form blocks run fp32 CPU inference (no autograd) through a fused path: the FFN works on the
position-major tokens of channels-last maps with oneDNN linear primitives (GELU and the residual add
fused in), a few samples at a time so the 4C-wide hidden activations stay in cache, with the SE and
GRN scales applied to the activations so that the two FFN weights stay fixed and oneDNN uses packed
copies of them. The stem and downsampling convs (:class:`DownsampleConv2d`) likewise use channels-last
copies of their kernels, and the 13×13 depthwise convs one zero column wider ones. These copies are made
once and made again whenever a parameter changes (:mod:`kernelkit.utils.derived_weights`); they hold as
much memory again as the weights they copy (16 MB for ``unireplknet_a``, 115 MB for ``unireplknet_t``).
It computes the same function as the official deploy model (the tests check it to fp32 rounding); its speed against the
official deploy model is measured by ``kernelkit bench unireplknet_inference``. The fused path is
chosen per model: ``UniRepLKNet(..., fused_inference=False)`` (or ``create_model(name,
fused_inference=False)``) builds a model whose deploy blocks always run the plain torch ops, and
``with use_fused_inference(False): model(x)`` does the same for one block of code. The plain ops also
run with gradients, on other devices and dtypes, under CPU autocast, and when oneDNN is unavailable; and
under ``torch.compile``, ``torch.export`` and ``torch.jit.trace``, so the compiler and the exporters (ONNX,
``kernelkit convnet export``) see a standard graph. The oneDNN linears are the registered op
``kernelkit::linear_pointwise`` (:mod:`kernelkit.utils.onednn`), so FLOP counters see the fused path too.

The model methods follow timm: ``forward_features`` (the last stage's map, before the final norm),
``forward_head(x, pre_logits=False)`` (pool → LayerNorm → dropout → head), ``get_classifier``,
``reset_classifier``, ``set_grad_checkpointing`` (the official ``with_cp``: each block recomputed in the
backward pass while training), ``features_only``/``out_indices`` with a
:class:`~kernelkit.models.features.FeatureInfo` and the official per-stage norms ``norm<i>``, and
``use_sync_bn`` (every BatchNorm a ``nn.SyncBatchNorm``, the official dense-task option).

Variants are data: :data:`UNIREPLKNET_VARIANTS` holds each variant's ``model_args`` (blocks per stage
and stage widths), and one loop registers a builder per row.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from kernelkit.layers.fusion import fold_input_bias, fold_output_scale
from kernelkit.layers.reparam import DepthwiseConv2d, DilatedReparamBlock, bn_fold
from kernelkit.models._registry import register_model
from kernelkit.models.features import FeatureInfo
from kernelkit.utils import onednn
from kernelkit.utils.derived_weights import derived, plain_eager_call
from kernelkit.utils.switch import Switch

LARGE, SMALL = 13, 3
TOTAL_STRIDE = 32


# Rows (positions) per chunk of the fused deploy FFN: whole samples are grouped until about this many
# rows, so that a chunk's 4C-wide hidden activations (1024 × 4C floats) stay in cache.
FUSED_CHUNK_ROWS = 1024
_FUSED = Switch(True)  # changed only inside ``with use_fused_inference(...)``


def use_fused_inference(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """``with use_fused_inference(False): model(x)`` runs deploy blocks in plain torch ops inside the block.

    Scoped to the ``with`` block: the previous setting is restored after it. A model built with
    ``fused_inference=False`` never takes the fused path.
    """
    return _FUSED.use(enabled)


def _fused_inference_ok(x: torch.Tensor, block: UniRepLKNetBlock) -> bool:
    """Whether a deploy block may take the fused path: fp32 CPU outside autocast, no autograd, no active drop
    path, and not under ``torch.compile``, ``torch.export`` or ``torch.jit.trace``: the compiler, the exporters
    and the tracer get the plain ops (a standard graph that Inductor fuses on its own and ONNX, TorchScript and
    other formats hold without kernelkit)."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting() or torch.jit.is_tracing():
        return False
    if not (block.fused_inference and _FUSED.enabled) or x.device.type != "cpu" or x.dtype != torch.float32 \
            or x.dim() != 4 or torch.is_autocast_enabled("cpu"):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in block.parameters())):
        return False
    if block.training and isinstance(block.drop_path, DropPath):
        return False
    return onednn.available()


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of an NCHW tensor (the "channels_first" LayerNorm of ConvNeXt)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # one fused kernel over the last dim of an NHWC view (a free view for channels-last tensors)
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global Response Normalization (ConvNeXt V2) on NHWC input; ``use_bias=False`` is the deploy form."""

    def __init__(self, dim: int, use_bias: bool = True):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)  # (B, 1, 1, C)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        return out if self.beta is None else out + self.beta


class ToNHWC(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class ToNCHW(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


class SEBlock(nn.Module):
    """Squeeze-and-excitation: avgpool → 1×1 conv C→C/4 → ReLU → 1×1 conv → sigmoid → rescale."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 1, bias=True)
        self.up = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        s = torch.sigmoid(self.up(F.relu(self.down(s))))
        return x * s


class DownsampleConv2d(nn.Conv2d):
    """The dense stride-2 convs of the stem and the downsampling layers (``nn.Conv2d``'s parameters and names).

    oneDNN runs a conv on a channels-last input with a channels-last kernel, and copies an NCHW kernel to
    that layout on every call. In plain eager float32 CPU inference (no compiler, exporter, dispatch mode or
    autograd) this conv uses a channels-last copy of its kernel made once by
    :func:`kernelkit.utils.derived_weights.derived` (made again when the kernel changes); same numbers.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == torch.float32 and self.weight.dtype == torch.float32 \
                and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and not torch.is_autocast_enabled("cpu") and plain_eager_call(x, self.weight, self.bias):
            w = derived(self.weight, "channels_last", lambda w: w.contiguous(memory_format=torch.channels_last))
            if w is not None:
                return self._conv_forward(x, w, self.bias)
        return super().forward(x)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p`` (training only)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class UniRepLKNetBlock(nn.Module):
    """Depthwise conv (DRB for K ≥ 7, plain DW for K ∈ {3, 5}, none for 0) → BN → SE → FFN with GRN → BN → layer scale.

    Training form: ``x + DropPath(γ · BN(Linear₂(GRN(GELU(Linear₁(SE(BN(dw(x)))))))))``.
    Deploy form (after :meth:`reparameterize`): ``x + Linear₂'(GRN_γ(GELU(Linear₁(SE(dw'(x))))))``.
    ``fused_inference=False``: the deploy form always runs in plain torch ops (no oneDNN fused path).
    """

    def __init__(self, dim: int, kernel_size: int, drop_path: float = 0.0, layer_scale_init_value: float = 1e-6,
                 deploy: bool = False, ffn_factor: int = 4, fused_inference: bool = True):
        super().__init__()
        self.kernel_size = kernel_size
        self.fused_inference = fused_inference
        self.dwconv: nn.Module
        if kernel_size == 0:
            self.dwconv = nn.Identity()
        elif kernel_size >= 7:
            self.dwconv = DilatedReparamBlock(dim, kernel_size, deploy=deploy)
        elif kernel_size in (3, 5):
            self.dwconv = DepthwiseConv2d(dim, kernel_size, bias=deploy)
        else:
            raise ValueError(f"block kernel size must be 0, 3, 5 or >= 7 (odd), got {kernel_size}")
        self.norm: nn.Module = nn.Identity() if deploy or kernel_size == 0 else nn.BatchNorm2d(dim)
        self.se = SEBlock(dim, dim // 4)
        ffn_dim = int(ffn_factor * dim)
        self.pwconv1 = nn.Sequential(ToNHWC(), nn.Linear(dim, ffn_dim))
        self.act = nn.Sequential(nn.GELU(), GRN(ffn_dim, use_bias=not deploy))
        if deploy:
            self.pwconv2 = nn.Sequential(nn.Linear(ffn_dim, dim), ToNCHW())
        else:
            self.pwconv2 = nn.Sequential(nn.Linear(ffn_dim, dim, bias=False), ToNCHW(), nn.BatchNorm2d(dim))
        use_ls = (not deploy) and layer_scale_init_value is not None and layer_scale_init_value > 0
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if use_ls else None
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    # typed views of the FFN's parts (the Sequential containers keep the official parameter names)
    @property
    def lin1(self) -> nn.Linear:
        return cast(nn.Linear, self.pwconv1[1])

    @property
    def grn(self) -> GRN:
        return cast(GRN, self.act[1])

    @property
    def lin2(self) -> nn.Linear:
        return cast(nn.Linear, self.pwconv2[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deployed:
            if _fused_inference_ok(x, self):
                return self._deploy_fused(x)
            return x + self.drop_path(self._deploy_residual(x))
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma.view(1, -1, 1, 1) * y
        return x + self.drop_path(y)

    def _deploy_residual(self, x: torch.Tensor) -> torch.Tensor:
        """The deploy-form residual branch in plain torch ops (differentiable; any device and dtype).

        SE multiplies channels by ``s[b, c]`` right before ``Linear₁`` and GRN by ``(γ·N[b, c] + 1)``
        right before ``Linear₂``; scaling the (small) weight matrices per sample instead of the (large)
        activations gives the same values with two fewer passes over the feature map.
        """
        y = self.dwconv(x)
        b, c, h, w = y.shape
        se = self.se
        s = torch.sigmoid(se.up(F.relu(se.down(F.adaptive_avg_pool2d(y, 1))))).view(b, 1, c)
        tokens = y.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a view for channels-last input
        lin1, grn, lin2 = self.lin1, self.grn, self.lin2
        fold = b == 1 or h * w >= c  # scaling the weights is cheaper than scaling the activations
        if fold:
            t = torch.baddbmm(lin1.bias.view(1, 1, -1), tokens, (lin1.weight * s).transpose(1, 2))  # (B, HW, 4C)
        else:
            t = F.linear(tokens * s, lin1.weight, lin1.bias)
        t = self.act[0](t)
        gx = torch.linalg.vector_norm(t, dim=1, keepdim=True)  # (B, 1, 4C): L2 over positions
        scale = grn.gamma.view(1, 1, -1) * (gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)) + 1
        if fold:
            out = torch.baddbmm(lin2.bias.view(1, 1, -1), t, (lin2.weight.unsqueeze(0) * scale).transpose(1, 2))
        else:
            out = F.linear(t * scale, lin2.weight, lin2.bias)
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)

    def _deploy_fused(self, x: torch.Tensor) -> torch.Tensor:
        """The whole deploy block (residual included) for fp32 CPU inference, a few samples at a time.

        The FFN runs on position-major tokens (free views of channels-last maps) through oneDNN linear
        primitives with GELU and the residual add fused in, one chunk of about :data:`FUSED_CHUNK_ROWS`
        positions at a time so that the 4C-wide hidden activations stay in cache between ``Linear₁``,
        the GRN statistics and ``Linear₂``. GRN needs the whole map of a sample, so chunks hold whole
        samples. The SE and GRN scales multiply the activations, so the two weights stay fixed and oneDNN
        uses its packed copies of them (:func:`kernelkit.utils.onednn.linear` with ``pack=True``).
        """
        y = self.dwconv(x)
        b, c, h, w = y.shape
        hw = h * w
        tokens = y.permute(0, 2, 3, 1).reshape(b, hw, c)  # views for channels-last maps
        residual = x.permute(0, 2, 3, 1).reshape(b * hw, c).contiguous()
        se, lin1, lin2 = self.se, self.lin1, self.lin2
        pooled = tokens.mean(1)  # (B, C)
        s = torch.sigmoid(F.linear(F.relu(F.linear(pooled, se.down.weight.flatten(1), se.down.bias)),
                                   se.up.weight.flatten(1), se.up.bias))  # (B, C)
        gamma = self.grn.gamma.view(1, -1)
        per_chunk = max(1, FUSED_CHUNK_ROWS // hw)
        outs = []
        for i in range(0, b, per_chunk):
            j = min(b, i + per_chunk)
            scaled = (tokens[i:j] * s[i:j, None]).reshape(-1, c)
            hid = onednn.linear(scaled, lin1.weight, lin1.bias, "gelu", pack=True)
            hid3 = hid.view(j - i, hw, -1)
            gx = hid3.square().sum(1).sqrt()  # (n, 4C): L2 over positions
            hid3.mul_((gamma * (gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)) + 1)[:, None])
            outs.append(onednn.linear(hid, lin2.weight, lin2.bias, "add", residual[i * hw:j * hw], pack=True))
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return out.view(b, h, w, c).permute(0, 3, 1, 2)

    @property
    def deployed(self) -> bool:
        return len(self.pwconv2) == 2

    def reparameterize(self) -> None:
        """Fold the block BN, GRN β, the post-FFN BN and the layer scale away; idempotent."""
        if self.deployed:
            return
        if isinstance(self.dwconv, DilatedReparamBlock):
            self.dwconv.reparameterize()
        if isinstance(self.norm, _BatchNorm):
            conv = self.dwconv.lk_origin if isinstance(self.dwconv, DilatedReparamBlock) else self.dwconv
            assert isinstance(conv, nn.Conv2d)
            w, b = bn_fold(conv.weight, conv.bias, cast(nn.BatchNorm2d, self.norm))  # or a SyncBatchNorm
            fused = DepthwiseConv2d(conv.in_channels, conv.kernel_size[0], bias=True).to(conv.weight)
            with torch.no_grad():
                fused.weight.copy_(w)
                fused.bias.copy_(b)  # type: ignore[union-attr]
            if isinstance(self.dwconv, DilatedReparamBlock):
                self.dwconv.lk_origin = fused
            else:
                self.dwconv = fused
            self.norm = nn.Identity()
        linear, bn, grn = self.lin2, self.pwconv2[2], self.grn
        assert isinstance(bn, _BatchNorm)
        w = linear.weight.detach().double()
        b = None if linear.bias is None else linear.bias.detach().double()
        if grn.beta is not None:
            b = fold_input_bias(w, b, grn.beta.detach().double())
            grn.beta = None
        w, b = bn_fold(w, b, cast(nn.BatchNorm2d, bn))  # or a SyncBatchNorm
        if self.gamma is not None:
            w, b = fold_output_scale(w, b, self.gamma.detach().double())
            self.gamma = None
        fused_linear = nn.Linear(linear.in_features, linear.out_features, bias=True).to(linear.weight)
        with torch.no_grad():
            fused_linear.weight.copy_(w)
            fused_linear.bias.copy_(b)
        self.pwconv2 = nn.Sequential(fused_linear, ToNCHW())


class UniRepLKNet(nn.Module):
    """UniRepLKNet: stem → 4 stages of :class:`UniRepLKNetBlock` with stride-2 downsampling → pool → LN → head.

    Args:
        in_chans: input channels (1 for audio / time-series maps, 3 for images, ...).
        num_classes: classifier outputs; ``0`` returns the pooled, normalised ``num_features``-d features.
        depths, dims: blocks and widths per stage.
        kernel_sizes: per-stage tuples of block kernel sizes (13 = DRB, 3 = plain DW conv, 0 = none).
        drop_path_rate: stochastic-depth rate at the last block (linear from 0).
        layer_scale_init_value: initial layer scale γ (≤ 0 disables it).
        head_init_scale: multiplier of the initial head weight and bias.
        deploy: build the inference form directly.
        features_only: return the stage outputs (strides 4, 8, 16, 32) selected by ``out_indices``, each
            through its own channels-first LayerNorm ``norm<i>`` (the official dense-task backbone); no head.
        fused_inference: let deploy-form blocks take the fused fp32 CPU inference path (same function).
        drop_rate: dropout before the head.
        out_indices: stages returned by ``features_only`` (default all 4); out of range raises ``ValueError``.
        use_sync_bn: build every BatchNorm as ``nn.SyncBatchNorm`` (same state-dict keys).
    """

    def __init__(self, in_chans: int = 3, num_classes: int = 1000, depths: Sequence[int] = (3, 3, 27, 3),
                 dims: Sequence[int] = (96, 192, 384, 768), kernel_sizes: Sequence[Sequence[int]] | None = None,
                 drop_path_rate: float = 0.0, layer_scale_init_value: float = 1e-6, head_init_scale: float = 1.0,
                 deploy: bool = False, features_only: bool = False, fused_inference: bool = True,
                 drop_rate: float = 0.0, out_indices: Sequence[int] | None = None, use_sync_bn: bool = False):
        super().__init__()
        depths, dims = tuple(depths), tuple(dims)
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"UniRepLKNet needs 4 depths and 4 dims, got depths={depths}, dims={dims}")
        if in_chans < 1:
            raise ValueError(f"in_chans must be >= 1, got {in_chans}")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        if out_indices is not None and not features_only:
            raise ValueError("out_indices selects feature maps; pass it with features_only=True")
        kernel_sizes = tuple(tuple(k) for k in (kernel_sizes or kernel_layout(depths)))
        for i in range(4):
            if len(kernel_sizes[i]) != depths[i]:
                raise ValueError(f"stage {i}: {len(kernel_sizes[i])} kernel sizes for {depths[i]} blocks")
        self.in_chans, self.num_classes, self.depths, self.dims = in_chans, num_classes, depths, dims
        # Run CPU inference in channels-last memory: the NHWC permutes around the MLP become free views,
        # linear layers run as single GEMMs, and oneDNN depthwise convs are faster. Same values.
        self.channels_last = True
        self.kernel_sizes = kernel_sizes
        self.features_only = features_only
        self.num_features = dims[-1]
        self.drop_rate = float(drop_rate)
        self.head_init_scale = head_init_scale
        self.grad_checkpointing = False
        self.feature_info = FeatureInfo([{"num_chs": d, "reduction": 4 * 2**i, "module": f"stages.{i}"}
                                         for i, d in enumerate(dims)], out_indices)

        n_blocks = sum(depths)  # drop-path rate rises linearly from 0 to drop_path_rate over all blocks
        dp_rates = [drop_path_rate * i / (n_blocks - 1) if n_blocks > 1 else 0.0 for i in range(n_blocks)]
        self.downsample_layers = nn.ModuleList([nn.Sequential(
            DownsampleConv2d(in_chans, dims[0] // 2, kernel_size=3, stride=2, padding=1),
            LayerNorm2d(dims[0] // 2),
            nn.GELU(),
            DownsampleConv2d(dims[0] // 2, dims[0], kernel_size=3, stride=2, padding=1),
            LayerNorm2d(dims[0]))])
        for i in range(3):
            self.downsample_layers.append(nn.Sequential(
                DownsampleConv2d(dims[i], dims[i + 1], kernel_size=3, stride=2, padding=1), LayerNorm2d(dims[i + 1])))
        self.stages = nn.ModuleList()
        cur = 0
        for i in range(4):
            self.stages.append(nn.Sequential(*[
                UniRepLKNetBlock(dims[i], kernel_sizes[i][j], drop_path=dp_rates[cur + j],
                                 layer_scale_init_value=layer_scale_init_value, deploy=deploy,
                                 fused_inference=fused_inference)
                for j in range(depths[i])]))
            cur += depths[i]

        if features_only:
            for i in self.feature_info.out_indices:  # the official backbone builds norms for its out_indices only
                self.add_module(f"norm{i}", LayerNorm2d(dims[i]))
        else:
            self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
            self.head: nn.Module = self._new_head(num_classes)
        self.apply(_init_weights)
        head = getattr(self, "head", None)
        if isinstance(head, nn.Linear):
            self._scale_head(head)
        if use_sync_bn:
            nn.SyncBatchNorm.convert_sync_batchnorm(self)  # replaces the children in place

    def _new_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _scale_head(self, head: nn.Linear) -> None:
        with torch.no_grad():
            head.weight.mul_(self.head_init_scale)
            head.bias.mul_(self.head_init_scale)

    def _need_head(self, what: str) -> None:
        if self.features_only:
            raise RuntimeError(f"UniRepLKNet.{what}: a features_only model has no head")

    def get_classifier(self) -> nn.Module:
        self._need_head("get_classifier")
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """A new head for ``num_classes`` outputs, initialised as the model's own (``0``: no head)."""
        if num_classes < 0:
            raise ValueError(f"reset_classifier: num_classes must be >= 0, got {num_classes}")
        self._need_head("reset_classifier")
        ref = self.norm.weight
        self.num_classes = num_classes
        head = self._new_head(num_classes)
        head.apply(_init_weights)
        if isinstance(head, nn.Linear):
            self._scale_head(head)
        self.head = head.to(device=ref.device, dtype=ref.dtype)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass while training (the official ``with_cp``)."""
        self.grad_checkpointing = enable

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the problem if ``x`` is not a (B, in_chans, H ≥ 32, W ≥ 32) tensor."""
        if x.dim() != 4:
            raise ValueError(f"UniRepLKNet expects a 4-D (batch, channels, height, width) tensor, got shape "
                             f"{tuple(x.shape)}")
        if x.shape[1] != self.in_chans:
            raise ValueError(f"UniRepLKNet was built with in_chans={self.in_chans} but the input has "
                             f"{x.shape[1]} channels (shape {tuple(x.shape)})")
        if min(x.shape[-2:]) < TOTAL_STRIDE:
            raise ValueError(f"input {x.shape[-2]}×{x.shape[-1]} is too small: the stem and the three "
                             f"downsampling layers reduce it {TOTAL_STRIDE}×, so height and width must be "
                             f">= {TOTAL_STRIDE}")

    def _stage_maps(self, x: torch.Tensor, last: int = 3) -> list[torch.Tensor]:
        """The outputs of stages ``0..last`` (strides 4, 8, 16, 32), before any norm."""
        self.check_input(x)
        if self.channels_last and x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        checkpointing = self.grad_checkpointing and self.training and torch.is_grad_enabled() \
            and not torch.jit.is_scripting()
        outs = []
        for down, stage in list(zip(self.downsample_layers, self.stages, strict=True))[:last + 1]:
            x = down(x)
            for block in cast(nn.Sequential, stage):
                x = checkpoint(block, x, use_reentrant=False) if checkpointing else block(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map ``(B, num_features, H/32, W/32)``, before the final norm."""
        return self._stage_maps(x)[-1]

    def forward_feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stage maps selected by ``feature_info.out_indices``, each through its norm ``norm<i>``."""
        indices = self.feature_info.out_indices
        maps = self._stage_maps(x, max(indices))
        return [getattr(self, f"norm{i}")(maps[i]) for i in indices]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool → LayerNorm → dropout → head; ``pre_logits=True`` stops before the head."""
        self._need_head("forward_head")
        x = self.norm(x.mean((-2, -1)))
        x = F.dropout(x, self.drop_rate, self.training) if self.drop_rate > 0.0 else x
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            return self.forward_feature_maps(x)
        return self.forward_head(self.forward_features(x))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def kernel_layout(depths: Sequence[int], stage3_pattern: Sequence[int] | None = None, large: int = LARGE,
                  small: int = SMALL) -> tuple[tuple[int, ...], ...]:
    """Per-block kernel sizes: stage 1 small, stages 2 and 4 large, stage 3 ``stage3_pattern`` repeated.

    The default pattern follows the official layouts: all large for stage-3 depth ≤ 8 (A/F/P/N),
    (large, small) for 18 blocks (T), (large, small, small) for 27 (S/B/L/XL).
    """
    d1, d2, d3, d4 = depths
    if stage3_pattern is None:
        stage3_pattern = {18: (large, small), 27: (large, small, small)}.get(d3, (large,))
    s3 = tuple(stage3_pattern[j % len(stage3_pattern)] for j in range(d3))
    return (small,) * d1, (large,) * d2, s3, (large,) * d4


def unireplknet(depths: Sequence[int], dims: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
                deploy: bool = False, drop_path_rate: float = 0.0, features_only: bool = False,
                kernel_sizes: Sequence[Sequence[int]] | None = None, large_kernel: int | None = None,
                **kwargs) -> UniRepLKNet:
    """Build a UniRepLKNet; ``large_kernel`` replaces every large kernel (e.g. 3 for a small-kernel twin)."""
    if kernel_sizes is None:
        kernel_sizes = kernel_layout(depths)
        if large_kernel is not None:
            kernel_sizes = tuple(tuple(large_kernel if k == LARGE else k for k in s) for s in kernel_sizes)
    return UniRepLKNet(in_chans=in_chans, num_classes=num_classes, depths=depths, dims=dims,
                       kernel_sizes=kernel_sizes, drop_path_rate=drop_path_rate, deploy=deploy,
                       features_only=features_only, **kwargs)


# timm-style ``model_args`` of every registered variant: blocks per stage and stage widths (the official
# layouts; kernel sizes follow :func:`kernel_layout`). Sizes as published ([P] Tables 4/5): params, FLOPs.
UNIREPLKNET_VARIANTS: dict[str, dict[str, tuple[int, int, int, int]]] = {
    "unireplknet_a": {"depths": (2, 2, 6, 2), "dims": (40, 80, 160, 320)},  # 4.4M, 0.6G at 224
    "unireplknet_f": {"depths": (2, 2, 6, 2), "dims": (48, 96, 192, 384)},  # 6.2M, 0.9G at 224
    "unireplknet_p": {"depths": (2, 2, 6, 2), "dims": (64, 128, 256, 512)},  # 10.7M, 1.6G at 224
    "unireplknet_n": {"depths": (2, 2, 8, 2), "dims": (80, 160, 320, 640)},  # 18.3M, 2.8G at 224
    "unireplknet_t": {"depths": (3, 3, 18, 3), "dims": (80, 160, 320, 640)},  # 31M, 4.9G at 224
    "unireplknet_s": {"depths": (3, 3, 27, 3), "dims": (96, 192, 384, 768)},  # 56M, 9.1G at 224
    "unireplknet_b": {"depths": (3, 3, 27, 3), "dims": (128, 256, 512, 1024)},  # 98M, 47.2G at 384
    "unireplknet_l": {"depths": (3, 3, 27, 3), "dims": (192, 384, 768, 1536)},  # 218M, 105.4G at 384
    "unireplknet_xl": {"depths": (3, 3, 27, 3), "dims": (256, 512, 1024, 2048)},  # 386M, 187G at 384
}


def _variant_builder(name: str, model_args: dict[str, tuple[int, int, int, int]]) -> Callable[..., UniRepLKNet]:
    """The registered builder of one row of :data:`UNIREPLKNET_VARIANTS`."""

    def builder(num_classes: int = 1000, in_chans: int = 3, deploy: bool = False, drop_path_rate: float = 0.0,
                features_only: bool = False, **kwargs: Any) -> UniRepLKNet:
        return unireplknet(model_args["depths"], model_args["dims"], num_classes, in_chans, deploy, drop_path_rate,
                           features_only, **kwargs)

    builder.__name__ = builder.__qualname__ = name
    builder.__doc__ = (f"UniRepLKNet-{name.split('_', 1)[1].upper()}: depths {model_args['depths']}, dims "
                       f"{model_args['dims']}; other arguments as :func:`unireplknet`.")
    return builder


for _name, _args in UNIREPLKNET_VARIANTS.items():
    globals()[_name] = register_model(_variant_builder(_name, _args))
