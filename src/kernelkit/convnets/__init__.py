"""Large-kernel ConvNets (UniRepLKNet) and mixed depthwise kernels (MixConv/MixNet): experiments, CLI."""
