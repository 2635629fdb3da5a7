"""kernelkit: kernels in deep learning, in PyTorch.

Five systems share one core (registry, run directories and reports, trainer, data loaders):

- ``kernelkit.ntk``: neural tangent kernels (empirical and infinite-width), gradient-flow prediction.
- ``kernelkit.conv`` / ``kernelkit.models``: large-kernel ConvNets (UniRepLKNet), MixConv / MixNet.
- ``kernelkit.fscil``: few-shot class-incremental learning with TEEN prototype calibration.
- ``kernelkit.longctx``: M4LE long-context evaluation and RoPE context scaling.
"""

__version__ = "0.1.0"
