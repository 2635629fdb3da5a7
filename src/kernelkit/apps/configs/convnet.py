"""Configs of the ConvNet systems (unireplknet, mixconv): the ``kernelkit convnet ...`` commands and the
``unireplknet`` and ``mixconv_ablation`` recipes.

Commands: one ``@dataclass(kw_only=True)`` per command extending :class:`RunSettings`; the command's
options take their defaults from these classes and ``config.json`` is ``asdict`` of the instance.
Recipes: a dataclass whose defaults are the full run and whose ``quick()`` gives the smoke-sized preset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from kernelkit.apps.configs.base import RunSettings


def _positive(option: str, value: float, *, zero_ok: bool = False) -> None:
    """``ValueError("--option: ...")`` unless ``value`` is finite and > 0 (>= 0 with ``zero_ok``)."""
    if not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
        raise ValueError(f"--{option}: must be a finite number {'>= 0' if zero_ok else '> 0'}, got {value}")

# ---- recipes --------------------------------------------------------------------------------------

KERNEL_SETS: tuple[tuple[int, ...], ...] = ((3,), (5,), (7,), (9,), (3, 5), (3, 5, 7), (3, 5, 7, 9))
ABLATION_DATASETS = ("cifar10_jpg", "mnist", "digits")


@dataclass
class AblationConfig:
    """The kernel-mix ablation (recipe ``mixconv_ablation`` and ``kernelkit convnet mixconv-ablation``).

    Everything that defines it; only ``kernel_sets`` varies between the trained networks. ``seeds`` are
    offsets added to the run's ``--seed``.
    """

    dataset: str = "cifar10_jpg"  # cifar10_jpg | mnist | digits (embedded fallback)
    image_size: int = 32
    train_per_class: int | None = None  # None: the whole train part (8,000 CIFAR images); val: 1/3 per class
    val_fraction: float = 0.2
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"  # SGD at lr 0.05-0.1 diverged on these small, short runs; AdamW is stable
    lr: float = 3e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    width: float = 0.25
    depth: float = 0.34  # 1 block per MobileNetV2 row, 2 for the 3- and 4-repeat rows
    small_input: bool = True  # stride-1 stem and first stride-2 row: 32x32 → 4x4 final maps (/8)
    seeds: tuple[int, ...] = (0, 1, 2)
    kernel_sets: tuple[tuple[int, ...], ...] = KERNEL_SETS
    data_seed: int = 0
    # memory layout and MixConv path: speed only, the arithmetic is exact on every path
    channels_last: bool = True
    impl: str = "split"
    # a finished run keeps its final weights (model.safetensors) or only its result row; resume checkpoints go
    keep_weights: bool = True

    def __post_init__(self) -> None:
        for option, value in (("width", self.width), ("depth", self.depth), ("lr", self.lr)):
            _positive(option, value)
        _positive("weight-decay", self.weight_decay, zero_ok=True)

    @classmethod
    def quick(cls) -> AblationConfig:
        """Smoke size: 100 training images per class at 16x16 for 3 epochs (same code path), no weights kept."""
        return replace(cls(), image_size=16, train_per_class=100, epochs=3, batch_size=50, keep_weights=False)


@dataclass
class LongRangeConfig:
    """The two-dots-on-a-torus task of the unireplknet recipe (:mod:`kernelkit.data.longrange`).

    A K=13 :class:`~kernelkit.models.torusnet.TorusNet` of ``width`` against a K=3 one widened to the
    same parameter count; ``seeds`` are offsets added to the run's ``--seed`` (data seeds ``1000 + s``
    and ``2000 + s``).
    """

    size: int = 24
    near: tuple[int, int] = (5, 8)
    far: tuple[int, int] = (9, 12)
    depth: int = 2
    width: int = 16
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 3000
    n_val: int = 1000
    epochs: int = 8
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1  # of all steps: linear warmup, then cosine decay


@dataclass
class UniRepLKNetReportConfig:
    """The ``unireplknet`` recipe: sizes, re-parameterization check, deploy speed, ERF, long-range task,
    CIFAR-10 training."""

    reparam_variants: tuple[str, ...] = ("a", "f", "p", "t")
    speed_res: int = 224
    speed_batch: int = 8
    speed_reps: int = 5
    erf_images: int = 24
    erf_size: int = 224
    long_range: LongRangeConfig = field(default_factory=LongRangeConfig)
    cifar_images: int = 10000
    cifar_epochs: int = 6
    cifar_max_steps: int | None = None
    cifar_warmup_steps: int = 100

    @classmethod
    def quick(cls) -> UniRepLKNetReportConfig:
        """Smoke size: one variant, small inputs, a 16-px torus with one block and one seed, 12 CIFAR steps."""
        return replace(cls(), reparam_variants=("a",), speed_res=96, speed_batch=1, speed_reps=3, erf_images=3,
                       long_range=LongRangeConfig(size=16, near=(3, 5), far=(6, 8), depth=1, width=12, seeds=(0,),
                                                  n_train=400, n_val=200, epochs=3),
                       cifar_images=600, cifar_epochs=1, cifar_max_steps=12, cifar_warmup_steps=3)


# ---- commands -------------------------------------------------------------------------------------

TRAIN_DATA = ("cifar10_jpg", "torus")
MODALITIES = ("audio", "timeseries", "pointcloud", "video")  # kernelkit.models.modalities.MODALITY_CHANNELS


@dataclass(kw_only=True)
class ErfConfig(RunSettings):
    """``kernelkit convnet erf``."""

    device: str = "cpu"
    model: str = "unireplknet_a"
    images: int = 16
    size: int = 224
    compare_kernel: int | None = 3  # also measure every large kernel set to this size; 0/None: no comparison


@dataclass(kw_only=True)
class ConvnetTrainConfig(RunSettings):
    """``kernelkit convnet train``: AdamW, cosine schedule, label smoothing 0.1 on ``train.Trainer``."""

    model: str = "unireplknet_a"
    data: str = "cifar10_jpg"  # one of TRAIN_DATA
    epochs: int = 10
    max_steps: int | None = None
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    drop_path: float = 0.0
    image_size: int = 32
    limit: int | None = None  # use only this many images (torus: generate this many; default 4000)
    val_fraction: float = 0.2
    pretrained: str | None = None  # a pretrained tag to fine-tune from (its head re-initialised for the classes)
    layer_decay: float | None = None  # layer-wise LR decay factor (kernelkit.models.layer_decay); None: one LR

    def __post_init__(self) -> None:
        _positive("lr", self.lr)
        _positive("weight-decay", self.weight_decay, zero_ok=True)
        if self.layer_decay is not None and not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"--layer-decay: must be in (0, 1], got {self.layer_decay}")


@dataclass(kw_only=True)
class MixconvAblationCommandConfig(RunSettings):
    """``kernelkit convnet mixconv-ablation``: the resolved ablation plus how the command ran it."""

    device: str = "cpu"
    quick: bool = False
    report_only: bool = False
    ablation: AblationConfig = field(default_factory=AblationConfig)


@dataclass(kw_only=True)
class MixnetInfoConfig(RunSettings):
    """``kernelkit convnet mixnet-info``."""

    device: str = "cpu"
    model: str = "mixnet_s"
    size: int = 224
    num_classes: int = 1000


@dataclass(kw_only=True)
class ModalityConfig(RunSettings):
    """``kernelkit convnet modality``: turn one modality into C'xHxW maps and run a UniRepLKNet on them.

    The input is generated (seeded) unless ``input`` names a ``.npy`` file holding the raw array:
    audio ``(B, samples)``, timeseries ``(B, length, variables)``, pointcloud ``(B, points, 3)``,
    video ``(B, 3, frames, H, W)``.
    """

    device: str = "cpu"
    modality: str = "audio"  # one of MODALITIES
    model: str = "unireplknet_a"
    num_classes: int = 10
    input: str | None = None
    batch: int = 2
    sample_rate: int = 16000  # audio
    seconds: float = 1.0  # audio
    n_mels: int = 128  # audio
    frames: int = 128  # audio: fbank frames kept
    length: int = 48  # timeseries
    variables: int = 7  # timeseries
    d_model: int = 768  # timeseries embedding width (48 x 768 -> 1x192x192)
    points: int = 2048  # pointcloud
    views: int = 4  # pointcloud
    view_size: int = 224  # pointcloud
    video_frames: int = 16  # video (a perfect square)
    frame_size: int = 56  # video


@dataclass(kw_only=True)
class ExportConfig(RunSettings):
    """``kernelkit convnet export``: write a model (random init) to a deployment format and check it reloads
    to the eager outputs. ``format`` is one of ``kernelkit.models.export.FORMATS``; ``out`` None writes
    ``<model>[-deploy].<suffix>`` in the working directory."""

    device: str = "cpu"
    model: str = "unireplknet_a"
    format: str = "onnx"
    deploy: bool = False
    out: str | None = None
    input_size: int = 224
    batch: int = 1
    tolerance: float = 1e-4  # largest accepted max|reloaded − eager| / max|eager|

    def __post_init__(self) -> None:
        from kernelkit.models.export import FORMATS

        if self.format not in FORMATS:
            raise ValueError(f"--format: unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        if self.batch < 1:
            raise ValueError(f"--batch: must be >= 1, got {self.batch}")
        if self.input_size < 1:
            raise ValueError(f"--input-size: must be >= 1, got {self.input_size}")


@dataclass(kw_only=True)
class PredictConfig(RunSettings):
    """``kernelkit convnet predict``: classify image files with a pretrained model (its ``pretrained_cfg``
    preprocessing), the deploy form unless ``deploy`` is off; ``checkpoint`` loads a local file instead."""

    device: str = "cpu"
    model: str = "unireplknet_a.in1k"
    images: tuple[str, ...] = ()
    checkpoint: str | None = None
    top: int = 5
    deploy: bool = True

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ValueError(f"--top: must be >= 1, got {self.top}")


@dataclass(kw_only=True)
class ValidateConfig(RunSettings):
    """``kernelkit convnet validate``: top-1/top-5 of a pretrained model on an image folder (one folder per
    class: ImageNet synsets, or as many folders as the model has classes, taken in sorted order)."""

    device: str = "cpu"
    model: str = "unireplknet_a.in1k"
    data: str = ""
    checkpoint: str | None = None
    batch_size: int = 32
    limit: int | None = None  # evaluate a random subset of this many images (drawn with the run's seed)
    deploy: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"--batch-size: must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit: must be >= 1, got {self.limit}")


@dataclass(kw_only=True)
class DeployConfig(RunSettings):
    """``kernelkit convnet deploy``: an official training checkpoint → the re-parameterized (deploy) weights in a
    safetensors file, written only when the two forms agree on a random input within ``tolerance``."""

    device: str = "cpu"
    checkpoint: str = ""
    model: str = "unireplknet_a"
    out: str = ""
    batch: int = 2
    tolerance: float = 1e-4  # largest accepted max|deploy − training| / max|training|
