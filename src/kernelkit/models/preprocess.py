"""Evaluation preprocessing of a pretrained model, from its ``pretrained_cfg`` (timm's eval transform).

``eval_transform(model.pretrained_cfg)`` gives the function that turns a decoded image into the network input:

- crop_mode ``"center"``: resize the shorter side to ``floor(size / crop_pct)``, centre-crop ``size``;
- crop_mode ``"squash"``: resize to ``size x size`` (no crop, the aspect ratio is not kept);

then scale to [0, 1] and normalise by the cfg's mean/std. Resizing uses the cfg's interpolation with
antialiasing (as PIL does), and a uint8 image is rounded back to uint8 after resizing, so the result follows
PIL's resize-then-``ToTensor`` path. :func:`read_image` decodes a file to the uint8 ``C x H x W`` tensor it takes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from kernelkit.data.dataset import DataFormatError
from kernelkit.data.imagefolder import decode_image
from kernelkit.data.transforms import CenterCrop, Compose, Normalize, Resize, ToFloat

CROP_MODES = ("center", "squash")
INTERPOLATIONS = ("bicubic", "bilinear")


def eval_transform(cfg: Mapping[str, Any]) -> Callable[[Tensor], Tensor]:
    """The evaluation transform of a ``pretrained_cfg`` dict (``input_size``, ``mean``, ``std``, ``crop_pct``,
    ``crop_mode``, ``interpolation``).

    The returned callable takes one image ``C x H x W`` or a batch ``N x C x H x W``: uint8 in [0, 255], or
    float already scaled to [0, 1] (kernelkit's :class:`~kernelkit.data.transforms.ToFloat` convention), and
    returns float32 of ``input_size``.
    """
    _, height, width = (int(v) for v in cfg["input_size"])
    crop_pct = float(cfg.get("crop_pct", 1.0))
    crop_mode = str(cfg.get("crop_mode", "center"))
    mode = str(cfg.get("interpolation", "bicubic"))
    if crop_mode not in CROP_MODES:
        raise ValueError(f"crop_mode must be one of {CROP_MODES}, got {crop_mode!r}")
    if mode not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {mode!r}")
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    steps: list[Callable[[Tensor], Tensor]]
    if crop_mode == "squash":
        steps = [Resize((height, width), mode=mode)]
    else:
        scaled: int | tuple[int, int] = (math.floor(height / crop_pct) if height == width
                                         else (math.floor(height / crop_pct), math.floor(width / crop_pct)))
        steps = [Resize(scaled, mode=mode), CenterCrop((height, width))]
    return Compose([*steps, ToFloat(), Normalize(cfg["mean"], cfg["std"])])


def read_image(path: str | Path, mode: str = "RGB") -> Tensor:
    """A file's image as a uint8 ``C x H x W`` tensor; a missing, unreadable or undecodable file raises
    :class:`~kernelkit.data.dataset.DataFormatError` naming it."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return torch.from_numpy(decode_image(data, str(path), mode=mode)).permute(2, 0, 1).contiguous()
