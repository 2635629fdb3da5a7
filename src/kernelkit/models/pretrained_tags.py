"""The pretrained-weights table: one :class:`PretrainedCfg` per tag (``arch.pretrained_tag``, timm style).

UniRepLKNet: the official files of Hub repo ``DingXiaoH/UniRepLKNet`` (the published ImageNet-1K top-1 is part
of each file name). Official evaluation preprocessing: ImageNet mean/std, bicubic; below 384 the shorter side is
resized to ``size / 0.875`` and centre-cropped, at 384 the image is resized to the square without cropping.

MixNet: timm's weights (Hub repo ``timm/<tag>``, file ``model.safetensors``), top-1 from timm's
``results/results-imagenet.csv``; all at 224, crop 0.875, bicubic, ImageNet mean/std.

The first tag listed for an architecture is the one ``create_model(arch, pretrained=True)`` takes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

UNIREPLKNET_REPO = "DingXiaoH/UniRepLKNet"
UNIREPLKNET_SOURCE = "published (official file name, DingXiaoH/UniRepLKNet)"
TIMM_SOURCE = "timm results/results-imagenet.csv"


@dataclass(frozen=True)
class PretrainedCfg:
    """Where a model's weights live and how its inputs were prepared when they were evaluated.

    ``classifier`` and ``first_conv`` name the modules whose weights are replaced when ``num_classes`` differs
    from the checkpoint's or adapted when ``in_chans`` is not 3. An untagged configuration (see
    :func:`kernelkit.models.pretrained.default_cfg`) has empty ``tag``, ``hf_hub_id`` and ``hf_hub_filename``.
    """

    tag: str
    architecture: str
    hf_hub_id: str
    hf_hub_filename: str
    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    crop_mode: str
    interpolation: str
    num_classes: int
    label_names: str | None
    top1: float | None
    top1_source: str
    classifier: str
    first_conv: str

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (tuples kept), as ``model.pretrained_cfg`` holds them."""
        return asdict(self)


def _unireplknet(variant: str, tag: str, filename: str, size: int, num_classes: int,
                 top1: float | None) -> PretrainedCfg:
    squash = size >= 384  # the official evaluation resizes to the square without cropping at 384
    return PretrainedCfg(
        tag=f"unireplknet_{variant}.{tag}", architecture=f"unireplknet_{variant}", hf_hub_id=UNIREPLKNET_REPO,
        hf_hub_filename=filename, input_size=(3, size, size), mean=IMAGENET_MEAN, std=IMAGENET_STD,
        crop_pct=1.0 if squash else 0.875, crop_mode="squash" if squash else "center", interpolation="bicubic",
        num_classes=num_classes, label_names="imagenet-1k" if num_classes == 1000 else None, top1=top1,
        top1_source=UNIREPLKNET_SOURCE if top1 is not None else "", classifier="head",
        first_conv="downsample_layers.0.0")


def _timm_mixnet(tag: str, top1: float) -> PretrainedCfg:
    return PretrainedCfg(
        tag=tag, architecture=tag.split(".", 1)[0], hf_hub_id=f"timm/{tag}", hf_hub_filename="model.safetensors",
        input_size=(3, 224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875, crop_mode="center",
        interpolation="bicubic", num_classes=1000, label_names="imagenet-1k", top1=top1, top1_source=TIMM_SOURCE,
        classifier="classifier", first_conv="conv_stem")


_IN1K_224 = {"a": 77.03, "f": 78.58, "p": 80.23, "n": 81.64, "t": 83.21, "s": 83.91}
_IN22K_SIZE = {"s": 224, "b": 224, "l": 192, "xl": 192}
_IN22K_TO_IN1K_384 = {"s": 86.44, "b": 87.40, "l": 87.88, "xl": 87.96}


def _unireplknet_rows() -> list[PretrainedCfg]:
    rows = []
    for v in ("a", "f", "p", "n", "t", "s", "b", "l", "xl"):  # per variant: 1K first, then 22K→1K, then 22K
        if v in _IN1K_224:
            rows.append(_unireplknet(v, "in1k", f"unireplknet_{v}_in1k_224_acc{_IN1K_224[v]:.2f}.pth", 224, 1000,
                                     _IN1K_224[v]))
        if v in _IN22K_TO_IN1K_384:
            acc = _IN22K_TO_IN1K_384[v]
            rows.append(_unireplknet(v, "in22k_ft_in1k_384", f"unireplknet_{v}_in22k_to_in1k_384_acc{acc:.2f}.pth",
                                     384, 1000, acc))
        if v in _IN22K_SIZE:
            rows.append(_unireplknet(v, "in22k", f"unireplknet_{v}_in22k_pretrain.pth", _IN22K_SIZE[v], 21841,
                                     None))
    return rows


_MIXNET_TOP1 = {
    "mixnet_s.ft_in1k": 76.000, "mixnet_m.ft_in1k": 77.268, "mixnet_l.ft_in1k": 78.970, "mixnet_xl.ra_in1k": 80.494,
    "tf_mixnet_s.in1k": 75.656, "tf_mixnet_m.in1k": 76.952, "tf_mixnet_l.in1k": 78.774,
}

#: Every tag, in table order (the first row of an architecture is its default tag).
PRETRAINED_CFGS: tuple[PretrainedCfg, ...] = (
    *_unireplknet_rows(),
    *(_timm_mixnet(tag, top1) for tag, top1 in _MIXNET_TOP1.items()),
)
