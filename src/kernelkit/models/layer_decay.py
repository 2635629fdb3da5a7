"""Layer-wise learning-rate decay for fine-tuning (BEiT/ConvNeXt style, as the official UniRepLKNet recipe).

Every parameter gets a layer id; its group's learning rate is ``lr * layer_decay ** (num_layers + 1 - id)``,
so the head (id ``num_layers + 1``) trains at ``lr`` and each layer below at one more factor of ``layer_decay``.

- UniRepLKNet: the official ``get_num_layer_for_convnext`` (12 layers): stem (``downsample_layers.0``) 0;
  ``downsample_layers.1/2`` stage + 1; ``downsample_layers.3`` 12; ``stages.0/1`` stage + 1; ``stages.2``
  ``3 + block // 3``; ``stages.3`` 12; everything else (final norm, head) 13.
- MixNet (timm's EfficientNet grouping): stem (``conv_stem``, ``bn1``) 0; ``blocks.i`` i + 1; the head
  (``conv_head``, ``bn2``, classifier) ``len(blocks) + 1``.

:func:`layer_decay_param_groups` returns optimizer groups whose ``lr`` already holds the scaled rate (and
``lr_scale`` the factor), which :class:`~kernelkit.train.Trainer` keeps as each group's base LR under its schedule.
"""

from __future__ import annotations

from typing import Any

from torch import nn

UNIREPLKNET_NUM_LAYERS = 12


def unireplknet_layer_id(name: str) -> int:
    """The official UniRepLKNet/ConvNeXt layer id of a parameter name (0 .. 13)."""
    parts = name.split(".")
    if parts[0] == "downsample_layers":
        stage = int(parts[1])
        return 0 if stage == 0 else UNIREPLKNET_NUM_LAYERS if stage == 3 else stage + 1
    if parts[0] == "stages":
        stage, block = int(parts[1]), int(parts[2])
        if stage in (0, 1):
            return stage + 1
        return 3 + block // 3 if stage == 2 else UNIREPLKNET_NUM_LAYERS
    return UNIREPLKNET_NUM_LAYERS + 1


def mixnet_layer_id(name: str, num_stages: int) -> int:
    """timm's coarse EfficientNet/MixNet layer id: stem 0, ``blocks.i`` i + 1, head ``num_stages + 1``."""
    parts = name.split(".")
    if parts[0] in ("conv_stem", "bn1"):
        return 0
    if parts[0] == "blocks":
        return int(parts[1]) + 1
    return num_stages + 1


def layer_ids(model: nn.Module) -> tuple[dict[str, int], int]:
    """``({parameter name: layer id}, num_layers)`` of a UniRepLKNet or MixNet (the head's id is
    ``num_layers + 1``); another architecture raises ``ValueError``."""
    names = [n for n, _ in model.named_parameters()]
    if hasattr(model, "downsample_layers") and hasattr(model, "stages"):
        return {n: unireplknet_layer_id(n) for n in names}, UNIREPLKNET_NUM_LAYERS
    blocks = getattr(model, "blocks", None)
    if hasattr(model, "conv_stem") and isinstance(blocks, nn.Sequential):
        return {n: mixnet_layer_id(n, len(blocks)) for n in names}, len(blocks)
    raise ValueError(f"layer-wise LR decay is defined for UniRepLKNet and MixNet models, not "
                     f"{type(model).__name__}")


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Biases and 1-d parameters (norm scales, layer-scale gammas) get no weight decay."""
    return param.ndim <= 1 or name.endswith(".bias")


def layer_decay_param_groups(model: nn.Module, lr: float, weight_decay: float, layer_decay: float,
                             skip_no_decay: bool = True) -> list[dict[str, Any]]:
    """Optimizer parameter groups: one per (layer id, decay or not), each with ``params``, ``lr`` (=
    ``lr * lr_scale``), ``lr_scale = layer_decay ** (num_layers + 1 - layer_id)``, ``weight_decay`` (0 for
    biases and 1-d parameters when ``skip_no_decay``), ``layer_id`` and ``group`` (a name such as
    ``layer_3_decay``). Frozen parameters are left out."""
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    ids, num_layers = layer_ids(model)
    groups: dict[str, dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = skip_no_decay and no_weight_decay(name, param)
        layer = ids[name]
        key = f"layer_{layer}_{'no_decay' if skip else 'decay'}"
        if key not in groups:
            scale = layer_decay ** (num_layers + 1 - layer)
            groups[key] = {"params": [], "lr": lr * scale, "lr_scale": scale,
                           "weight_decay": 0.0 if skip else weight_decay, "layer_id": layer, "group": key}
        groups[key]["params"].append(param)
    return sorted(groups.values(), key=lambda g: (g["layer_id"], g["group"]))
