"""MixNet-S/M/L/XL (Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", arXiv 1907.09595).

Architectures are written as readable :class:`BlockSpec` tables (one row per row of the paper's /
reference code's block list). L is M at width multiplier 1.3; XL (not in the paper, defined by timm)
is M at width 1.6 and depth 1.2. Widths follow the reference rounding rule (:func:`round_width`),
depths the per-stage rule (:func:`scale_depths`).

Parameter names are identical to timm's ``mixnet_*`` models (``conv_stem``, ``bn1``,
``blocks.<stage>.<block>.{conv_pw, bn1, conv_dw, bn2, se.conv_reduce, se.conv_expand, conv_pwl, bn3}``,
``conv_head``, ``bn2``, ``classifier``; a multi-group conv stores its groups as ``.0``, ``.1``, ...),
so a timm checkpoint loads with ``model.load_state_dict(sd)``; :func:`timm_key_to_kernelkit` is the
(identity, prefix-stripping) mapping and :func:`load_timm_state_dict` does it strictly.

``tf_mixnet_s/m/l`` are timm's ports of the TensorFlow weights: the same networks with BN eps 1e-3 and
TensorFlow "SAME" padding on every conv (asymmetric for stride 2 on even sizes; see
:mod:`kernelkit.layers.mixconv`).

The model methods follow timm: ``forward_features`` (the final map after the 1x1 head conv),
``forward_head(x, pre_logits=False)``, ``get_classifier``, ``reset_classifier``, ``set_grad_checkpointing``,
``features_only``/``out_indices`` with a :class:`~kernelkit.models.features.FeatureInfo`, ``drop_rate``,
``drop_path_rate`` (stochastic depth on residual blocks, ``rate · block_idx / num_blocks`` as timm's
efficientnet builder) and ``use_sync_bn``.

MACs: ``count_macs`` (conv + linear, SE convs included) gives 239.2M (S), 339.2M (M), 555.3M (L) at
224², equal to the closed-form sum of the block table and to the same counter on timm's models. The
paper reports 256M / 360M / 565M MAdds; the paper's counter (TF profiler of the TPU code) also counts
work this convention leaves out — the SE gating multiply, BN/activation and residual additions are
elementwise, about 5% of the total for these nets — so the paper's numbers are higher.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal, cast

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from kernelkit.layers.mixconv import MixConv2d, TfSameConv2d
from kernelkit.models._registry import register_model
from kernelkit.models.features import FeatureInfo
from kernelkit.models.unireplknet import DropPath

Activation = Literal["relu", "swish"]
NormLayer = Callable[[int], nn.Module]
BN_EPS_TF = 1e-3  # BatchNorm epsilon of the TensorFlow-trained weights

__all__ = ["BlockSpec", "MixNetSpec", "MixNet", "MIXNET_S", "MIXNET_M", "MIXNET_VARIANTS", "BN_EPS_TF", "round_width",
           "scale_depths", "scale_spec", "timm_key_to_kernelkit", "load_timm_state_dict"]


@dataclass(frozen=True)
class BlockSpec:
    """One row of a MixNet block table (the reference block string ``ir_r3_k3.5_a1.1_p1.1_s1_e6_c40_se0.5_nsw``
    is ``BlockSpec("ir", repeats=3, kernels=(3, 5), expand_groups=2, project_groups=2, stride=1, expansion=6,
    out=40, se=0.5, act="swish")``)."""

    kind: Literal["ds", "ir"]  # depthwise-separable (no expansion) or inverted residual
    repeats: int
    kernels: tuple[int, ...]  # one depthwise kernel per channel group
    out: int  # output channels (before width scaling)
    stride: int = 1  # stride of the first repeat; later repeats use 1
    expansion: int = 1
    expand_groups: int = 1  # groups of the 1x1 expand conv ("a")
    project_groups: int = 1  # groups of the 1x1 project conv ("p")
    se: float | None = None  # SE ratio, relative to the block INPUT width
    act: Activation = "relu"


def _ir(repeats: int, kernels: tuple[int, ...], groups: tuple[int, int], stride: int, expansion: int, out: int,
        se: float | None = None, act: Activation = "swish") -> BlockSpec:
    return BlockSpec("ir", repeats, kernels, out, stride, expansion, groups[0], groups[1], se, act)


@dataclass(frozen=True)
class MixNetSpec:
    """A whole MixNet: stem width, stages of block rows, head width and classifier dropout."""

    stem: int
    stages: tuple[tuple[BlockSpec, ...], ...]
    head: int = 1536
    dropout: float = 0.2


# Rows follow the reference block lists; columns: repeats, kernels, (expand, project) groups, stride,
# expansion, out channels, SE ratio, activation.
MIXNET_S = MixNetSpec(stem=16, dropout=0.2, stages=(
    (BlockSpec("ds", 1, (3,), 16),),
    (_ir(1, (3,), (2, 2), 2, 6, 24, act="relu"), _ir(1, (3,), (2, 2), 1, 3, 24, act="relu")),
    (_ir(1, (3, 5, 7), (1, 1), 2, 6, 40, 0.5), _ir(3, (3, 5), (2, 2), 1, 6, 40, 0.5)),
    (_ir(1, (3, 5, 7), (1, 2), 2, 6, 80, 0.25), _ir(2, (3, 5), (1, 2), 1, 6, 80, 0.25)),
    (_ir(1, (3, 5, 7), (2, 2), 1, 6, 120, 0.5), _ir(2, (3, 5, 7, 9), (2, 2), 1, 3, 120, 0.5)),
    (_ir(1, (3, 5, 7, 9, 11), (1, 1), 2, 6, 200, 0.5), _ir(2, (3, 5, 7, 9), (1, 2), 1, 6, 200, 0.5)),
))

MIXNET_M = MixNetSpec(stem=24, dropout=0.25, stages=(
    (BlockSpec("ds", 1, (3,), 24),),
    (_ir(1, (3, 5, 7), (2, 2), 2, 6, 32, act="relu"), _ir(1, (3,), (2, 2), 1, 3, 32, act="relu")),
    (_ir(1, (3, 5, 7, 9), (1, 1), 2, 6, 40, 0.5), _ir(3, (3, 5), (2, 2), 1, 6, 40, 0.5)),
    (_ir(1, (3, 5, 7), (1, 1), 2, 6, 80, 0.25), _ir(3, (3, 5, 7, 9), (2, 2), 1, 6, 80, 0.25)),
    (_ir(1, (3,), (1, 1), 1, 6, 120, 0.5), _ir(3, (3, 5, 7, 9), (2, 2), 1, 3, 120, 0.5)),
    (_ir(1, (3, 5, 7, 9), (1, 1), 2, 6, 200, 0.5), _ir(3, (3, 5, 7, 9), (1, 2), 1, 6, 200, 0.5)),
))


def round_width(channels: int, multiplier: float = 1.0, divisor: int = 8) -> int:
    """Reference width rule: nearest multiple of ``divisor`` (at least ``divisor``), bumped up by one
    ``divisor`` if rounding lost more than 10%."""
    if multiplier == 1.0:
        return channels
    v = channels * multiplier
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def scale_depths(repeats: Sequence[int], multiplier: float) -> list[int]:
    """Per-stage depth rule (round truncation): scale the stage total, then hand the new total back to
    the rows proportionally, last row first, each row keeping at least one block."""
    total = sum(repeats)
    target = max(1, round(total * multiplier))
    out: list[int] = []
    for r in reversed(repeats):
        share = max(1, round(r / total * target))
        out.append(share)
        total -= r
        target -= share
    return out[::-1]


def scale_spec(spec: MixNetSpec, width: float = 1.0, depth: float = 1.0) -> MixNetSpec:
    """Apply width and depth multipliers (the head width 1536 is not scaled)."""
    stages = []
    for stage in spec.stages:
        reps = scale_depths([b.repeats for b in stage], depth) if depth != 1.0 else [b.repeats for b in stage]
        stages.append(tuple(replace(b, repeats=r, out=round_width(b.out, width))
                            for b, r in zip(stage, reps, strict=True)))
    return replace(spec, stem=round_width(spec.stem, width), stages=tuple(stages))


# ---- blocks -------------------------------------------------------------------------------------


def _act(name: Activation) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}; expected 'relu' or 'swish'")


def mixed_conv(in_ch: int, out_ch: int, kernels: Sequence[int], stride: int = 1, depthwise: bool = True,
               impl: str = "auto", tf_same: bool = False) -> nn.Module:
    """A plain conv for one group (timm's key ``conv.weight``), else a :class:`MixConv2d` (keys ``conv.<i>.weight``).

    ``tf_same``: TensorFlow "SAME" padding (only differs from the symmetric padding at stride > 1).
    """
    if len(kernels) == 1:
        k = kernels[0]
        groups = in_ch if depthwise else 1
        if tf_same and stride > 1:
            return TfSameConv2d(in_ch, out_ch, k, stride, groups=groups, bias=False)
        return nn.Conv2d(in_ch, out_ch, k, stride, (k - 1) // 2, groups=groups, bias=False)
    return MixConv2d(in_ch, out_ch, tuple(kernels), stride, depthwise=depthwise, impl=impl,  # type: ignore[arg-type]
                     tf_same=tf_same)


class SqueezeExcite(nn.Module):
    """Global pool → 1x1 reduce (bias) → activation → 1x1 expand (bias) → sigmoid gate."""

    def __init__(self, channels: int, reduced: int, act: Activation):
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, reduced, 1)
        self.act1 = _act(act)
        self.conv_expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.conv_expand(self.act1(self.conv_reduce(s))))


class DepthwiseSeparable(nn.Module):
    """Depthwise (mixed) conv → BN → act → 1x1 → BN, with a skip when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, kernels: Sequence[int], stride: int, act: Activation,
                 se_ratio: float | None = None, impl: str = "auto", drop_path: float = 0.0,
                 norm: NormLayer = nn.BatchNorm2d, tf_same: bool = False):
        super().__init__()
        self.has_skip = stride == 1 and in_ch == out_ch
        self.conv_dw = mixed_conv(in_ch, in_ch, kernels, stride, impl=impl, tf_same=tf_same)
        self.bn1 = norm(in_ch)
        self.act1 = _act(act)
        self.se = SqueezeExcite(in_ch, max(1, int(in_ch * se_ratio)), act) if se_ratio else nn.Identity()
        self.conv_pw = nn.Conv2d(in_ch, out_ch, 1, bias=False)
        self.bn2 = norm(out_ch)
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0.0 and self.has_skip else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv_pw(self.se(self.act1(self.bn1(self.conv_dw(x))))))
        return x + self.drop_path(y) if self.has_skip else y


class InvertedResidual(nn.Module):
    """Grouped 1x1 expand → BN → act → mixed depthwise → BN → act → SE → grouped 1x1 project → BN (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, kernels: Sequence[int], stride: int, expansion: int,
                 expand_groups: int, project_groups: int, se_ratio: float | None, act: Activation,
                 impl: str = "auto", drop_path: float = 0.0, norm: NormLayer = nn.BatchNorm2d, tf_same: bool = False):
        super().__init__()
        mid = in_ch * expansion
        self.has_skip = stride == 1 and in_ch == out_ch
        self.conv_pw = mixed_conv(in_ch, mid, (1,) * expand_groups, depthwise=False, impl=impl)
        self.bn1 = norm(mid)
        self.act1 = _act(act)
        self.conv_dw = mixed_conv(mid, mid, kernels, stride, impl=impl, tf_same=tf_same)
        self.bn2 = norm(mid)
        self.act2 = _act(act)
        self.se = SqueezeExcite(mid, max(1, int(in_ch * se_ratio)), act) if se_ratio else nn.Identity()
        self.conv_pwl = mixed_conv(mid, out_ch, (1,) * project_groups, depthwise=False, impl=impl)
        self.bn3 = norm(out_ch)
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0.0 and self.has_skip else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.act1(self.bn1(self.conv_pw(x)))
        y = self.se(self.act2(self.bn2(self.conv_dw(y))))
        y = self.bn3(self.conv_pwl(y))
        return x + self.drop_path(y) if self.has_skip else y


def build_stages(in_ch: int, stages: Sequence[Sequence[BlockSpec]], impl: str = "auto", drop_path_rate: float = 0.0,
                 norm: NormLayer = nn.BatchNorm2d, tf_same: bool = False,
                 ) -> tuple[nn.Sequential, list[dict[str, int | str]]]:
    """Instantiate stage tables; returns the stages and per-stage ``feature_info`` (channels, reduction).

    Block ``i`` of ``n`` (counted over all stages) gets stochastic depth ``drop_path_rate * i / n`` on its
    residual branch (timm's efficientnet builder; blocks without a skip have none).
    """
    seqs: list[nn.Module] = []
    info: list[dict[str, int | str]] = []
    reduction = 2  # the stem has stride 2
    n_blocks = sum(spec.repeats for stage in stages for spec in stage)
    idx = 0
    for si, stage in enumerate(stages):
        blocks: list[nn.Module] = []
        for spec in stage:
            for r in range(spec.repeats):
                stride = spec.stride if r == 0 else 1
                dp = drop_path_rate * idx / n_blocks
                if spec.kind == "ds":
                    blocks.append(DepthwiseSeparable(in_ch, spec.out, spec.kernels, stride, spec.act, spec.se, impl,
                                                     dp, norm, tf_same))
                else:
                    blocks.append(InvertedResidual(in_ch, spec.out, spec.kernels, stride, spec.expansion,
                                                   spec.expand_groups, spec.project_groups, spec.se, spec.act, impl,
                                                   dp, norm, tf_same))
                idx += 1
                reduction *= stride
                in_ch = spec.out
        seqs.append(nn.Sequential(*blocks))
        info.append({"stage": si, "num_chs": in_ch, "reduction": reduction, "module": f"blocks.{si}"})
    return nn.Sequential(*seqs), info


def init_weights(model: nn.Module) -> None:
    """Reference init: conv N(0, sqrt(2 / fan_out)), fan_out = k²·out/groups; linear U(±1/sqrt(out)); BN 1, 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


# ---- the network --------------------------------------------------------------------------------


class MixNet(nn.Module):
    """Stem → stages of MixConv blocks → 1x1 head → pool → dropout → classifier.

    Args:
        spec: the block table.
        num_classes: classifier outputs; ``0`` makes the head return the pooled ``num_features``-dim features.
        in_chans: input channels.
        features_only: build no head; ``forward`` returns the stage outputs selected by ``out_indices`` from
            ``feature_info`` (one entry per resolution, strides 2, 4, 8, 16, 32).
        out_indices: indices into the 5 feature maps (default all); out-of-range indices raise ``ValueError``.
        drop_rate: dropout before the classifier (``None``: the block table's ``dropout``).
        drop_path_rate: stochastic depth, ``rate · block_idx / num_blocks`` on residual blocks.
        use_sync_bn: build every BatchNorm as ``nn.SyncBatchNorm`` (same state-dict keys).
        bn_eps: BatchNorm epsilon (1e-3 for TensorFlow-trained weights).
        tf_same: TensorFlow "SAME" padding on every conv (timm's ``tf_mixnet_*``).
        impl: MixConv path (see :class:`~kernelkit.layers.mixconv.MixConv2d`).
    """

    def __init__(self, spec: MixNetSpec, num_classes: int = 1000, in_chans: int = 3, features_only: bool = False,
                 drop_rate: float | None = None, impl: str = "auto", out_indices: Sequence[int] | None = None,
                 drop_path_rate: float = 0.0, use_sync_bn: bool = False, bn_eps: float = 1e-5,
                 tf_same: bool = False):
        super().__init__()
        if num_classes < 0 or in_chans < 1:
            raise ValueError(f"MixNet: need num_classes >= 0 and in_chans >= 1, got {num_classes}, {in_chans}")
        if out_indices is not None and not features_only:
            raise ValueError("MixNet: out_indices selects feature maps; pass it with features_only=True")
        self.spec, self.num_classes, self.features_only = spec, num_classes, features_only
        self.drop_rate = spec.dropout if drop_rate is None else float(drop_rate)
        self.grad_checkpointing = False
        norm = partial(nn.BatchNorm2d, eps=bn_eps)
        self.conv_stem = (TfSameConv2d(in_chans, spec.stem, 3, 2, bias=False) if tf_same
                          else nn.Conv2d(in_chans, spec.stem, 3, 2, 1, bias=False))
        self.bn1 = norm(spec.stem)
        self.act1 = nn.ReLU(inplace=True)
        self.blocks, stage_info = build_stages(spec.stem, spec.stages, impl, drop_path_rate, norm, tf_same)
        # one feature map per resolution: the last stage at each reduction
        per_resolution = [s for i, s in enumerate(stage_info)
                          if i == len(stage_info) - 1 or stage_info[i + 1]["reduction"] != s["reduction"]]
        self.feature_info = FeatureInfo(per_resolution, out_indices)
        self.num_features = spec.head
        if not features_only:
            self.conv_head = nn.Conv2d(int(stage_info[-1]["num_chs"]), spec.head, 1, bias=False)
            self.bn2 = norm(spec.head)
            self.act2 = nn.ReLU(inplace=True)
            self.dropout = nn.Dropout(self.drop_rate)
            self.classifier: nn.Module = nn.Linear(spec.head, num_classes) if num_classes else nn.Identity()
        init_weights(self)
        if use_sync_bn:
            nn.SyncBatchNorm.convert_sync_batchnorm(self)  # replaces the children in place

    # -- timm-style methods --
    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        """A new classifier for ``num_classes`` outputs, initialised as the model's own (``0``: no classifier)."""
        if num_classes < 0:
            raise ValueError(f"reset_classifier: num_classes must be >= 0, got {num_classes}")
        self._need_head("reset_classifier")
        ref = next(self.conv_head.parameters())
        self.num_classes = num_classes
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        init_weights(self.classifier)
        self.classifier.to(device=ref.device, dtype=ref.dtype)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in the backward pass while training (less memory, same values)."""
        self.grad_checkpointing = enable

    def _need_head(self, what: str) -> None:
        if self.features_only:
            raise RuntimeError(f"MixNet.{what}: a features_only model has no head")

    def _run_block(self, block: nn.Module, x: Tensor) -> Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(block, x, use_reentrant=False)  # type: ignore[no-any-return]
        return block(x)

    def forward_stem(self, x: Tensor) -> Tensor:
        return self.act1(self.bn1(self.conv_stem(x)))

    def forward_features(self, x: Tensor) -> Tensor:
        """The final feature map ``(N, num_features, h, w)``: stem, blocks, 1x1 head conv, BN, ReLU."""
        self._need_head("forward_features")
        x = self.forward_stem(x)
        for stage in self.blocks:
            for block in cast(nn.Sequential, stage):
                x = self._run_block(block, x)
        return self.act2(self.bn2(self.conv_head(x)))

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Pool → dropout → classifier; ``pre_logits=True`` stops before the classifier."""
        self._need_head("forward_head")
        x = self.dropout(x.mean((2, 3)))
        return x if pre_logits else self.classifier(x)

    def forward_feature_maps(self, x: Tensor) -> list[Tensor]:
        """The stage outputs selected by ``feature_info.out_indices``, in that order."""
        modules = self.feature_info.module_name()
        wanted = {int(name.split(".")[1]): name for name in modules}
        maps: dict[str, Tensor] = {}
        x = self.forward_stem(x)
        for i, stage in enumerate(self.blocks):
            if i > max(wanted):
                break
            for block in cast(nn.Sequential, stage):
                x = self._run_block(block, x)
            if i in wanted:
                maps[wanted[i]] = x
        return [maps[name] for name in modules]

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        if self.features_only:
            return self.forward_feature_maps(x)
        return self.forward_head(self.forward_features(x))


# ---- timm checkpoints ---------------------------------------------------------------------------


def timm_key_to_kernelkit(key: str) -> str:
    """Map a timm ``mixnet_*`` state-dict key to ours. The names are identical; only wrappers'
    prefixes (``module.`` from DataParallel, ``model.``) are stripped."""
    for prefix in ("module.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


def load_timm_state_dict(model: MixNet, state_dict: Mapping[str, Tensor], strict: bool = True) -> None:
    """Load a timm ``mixnet_*`` state dict (a timm ``tf_mixnet_*`` one into our ``tf_mixnet_*``: same names)."""
    model.load_state_dict({timm_key_to_kernelkit(k): v for k, v in state_dict.items()}, strict=strict)


# ---- variants -----------------------------------------------------------------------------------

# Every registered variant as data: (block table, width multiplier, depth multiplier, TF port). A TF port
# (timm's ``tf_mixnet_*``) has BN eps 1e-3 and TensorFlow "SAME" padding.
MIXNET_VARIANTS: dict[str, tuple[MixNetSpec, float, float, bool]] = {
    "mixnet_s": (MIXNET_S, 1.0, 1.0, False),  # 4,134,606 params with 1000 classes
    "mixnet_m": (MIXNET_M, 1.0, 1.0, False),  # 5,014,382 params with 1000 classes
    "mixnet_l": (MIXNET_M, 1.3, 1.0, False),  # MixNet-M at width 1.3
    "mixnet_xl": (MIXNET_M, 1.6, 1.2, False),  # timm's, not the paper's: width 1.6, depth 1.2 (round truncation)
    "tf_mixnet_s": (MIXNET_S, 1.0, 1.0, True),
    "tf_mixnet_m": (MIXNET_M, 1.0, 1.0, True),
    "tf_mixnet_l": (MIXNET_M, 1.3, 1.0, True),
}


def _variant_builder(name: str, spec: MixNetSpec, width: float, depth: float, tf_port: bool) -> Callable[..., MixNet]:
    """The registered builder of one row of :data:`MIXNET_VARIANTS`."""
    scaled = scale_spec(spec, width=width, depth=depth) if (width, depth) != (1.0, 1.0) else spec

    def builder(num_classes: int = 1000, in_chans: int = 3, features_only: bool = False,
                drop_rate: float | None = None, impl: str = "auto", drop_path_rate: float = 0.0,
                out_indices: Sequence[int] | None = None, use_sync_bn: bool = False) -> MixNet:
        return MixNet(scaled, num_classes=num_classes, in_chans=in_chans, features_only=features_only,
                      drop_rate=drop_rate, impl=impl, out_indices=out_indices, drop_path_rate=drop_path_rate,
                      use_sync_bn=use_sync_bn, bn_eps=BN_EPS_TF if tf_port else 1e-5, tf_same=tf_port)

    builder.__name__ = builder.__qualname__ = name
    port = "; TensorFlow port (BN eps 1e-3, TF 'SAME' padding)" if tf_port else ""
    builder.__doc__ = f"{name}: MixNet block table at width x{width}, depth x{depth}{port}."
    return builder


for _name, (_spec, _width, _depth, _tf) in MIXNET_VARIANTS.items():
    globals()[_name] = register_model(_variant_builder(_name, _spec, _width, _depth, _tf))
