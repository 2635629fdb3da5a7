"""TensorFlow / JAX "SAME" padding arithmetic, shared by the finite layers and the infinite-width kernels."""

from __future__ import annotations


def tf_same_padding(size: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "SAME" padding ``(before, after)`` of one spatial dimension of length ``size``: the output has
    ``ceil(size / stride)`` positions and an odd extra row/column is padded after (bottom/right)."""
    total = max((-(-size // stride) - 1) * stride + (kernel_size - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2
