"""Config of ``kernelkit tune``: what to measure, and the representative shapes of each target.

The shapes are those of ``kernelkit bench`` (``mixconv``, ``depthwise_conv``, ``ntk_empirical``), so a
tuned cache covers what the benchmarks and the recipes run.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelkit.apps.configs.base import INT64_MAX, RunSettings

TARGETS = ("mixconv", "depthwise", "ntk", "model")

# (channels, spatial size) of the MixConv (3, 5, 7, 9) layers measured by ``kernelkit tune mixconv``
MIXCONV_KERNELS = (3, 5, 7, 9)
MIXCONV_SHAPES = ((96, 28), (240, 14))
MIXCONV_BATCHES = (1, 32)
# depthwise convs: dense kernel sizes and dilated (kernel, dilation) branches at (batch, channels, size)
DEPTHWISE_INPUT = (8, 384, 32)
DEPTHWISE_DENSE = (7, 13, 17, 31)
DEPTHWISE_DILATED = ((3, 3), (3, 4), (3, 5), (7, 2))
# empirical NTK of the benchmark CNN: samples, output sizes
NTK_OUTPUTS = (1, 10)


@dataclass(kw_only=True)
class TuneConfig(RunSettings):
    """Inputs of ``kernelkit tune <target>``.

    ``target``: ``mixconv``/``depthwise``/``ntk`` (the representative shapes above) or ``model`` (every
    tunable layer of ``model`` at ``batch`` x 3 x ``size`` x ``size``). ``train``: measure forward +
    backward (training) instead of inference. ``quick``: one small shape per target (smoke runs).
    ``cache``: the cache file written (resolved from ``$KERNELKIT_CACHE``).
    """

    target: str = "mixconv"
    model: str | None = None
    batch: int = 1
    size: int = 224
    samples: int = 16
    train: bool = False
    quick: bool = False
    cache: str | None = None

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.target == "model" and not self.model:
            raise ValueError("target 'model' needs a model name")
        for name in ("batch", "size", "samples"):
            if not 1 <= getattr(self, name) <= INT64_MAX:
                raise ValueError(f"--{name}: must be from 1 to 2**63 - 1, got {getattr(self, name)}")
        if self.target == "model":
            from kernelkit.models import MODELS

            if self.model not in MODELS:
                raise ValueError(f"MODEL: {MODELS.unknown_message(str(self.model))}")
