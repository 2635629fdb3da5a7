"""Shape bookkeeping for depthwise convolution: argument validation and the resolved geometry.

``resolve_geometry`` turns the user-facing ``stride`` / ``padding`` / ``dilation`` arguments into
explicit per-side paddings and output sizes, following ``torch.nn.functional.conv2d`` exactly
(``padding="same"`` with an even effective kernel pads ``total // 2`` before and the rest after).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

IntPair = int | tuple[int, int]
Padding = str | int | tuple[int, int]


@dataclass(frozen=True)
class AxisGeometry:
    """One spatial axis: input length, kernel taps, dilation, stride, paddings before/after."""

    size: int
    kernel: int
    dilation: int
    stride: int
    pad_before: int
    pad_after: int

    @property
    def extent(self) -> int:
        """Span of the (dilated) kernel: ``(k - 1) * d + 1``."""
        return (self.kernel - 1) * self.dilation + 1

    @property
    def out_dense(self) -> int:
        """Output length at stride 1."""
        return self.size + self.pad_before + self.pad_after - self.extent + 1

    @property
    def out(self) -> int:
        """Output length at the requested stride."""
        return (self.out_dense - 1) // self.stride + 1

    @property
    def min_period(self) -> int:
        """Smallest circular period for which a circular convolution equals the linear one.

        Output ``n`` reads input ``m`` through tap offset ``n - m`` in ``[-(size-1), out_dense-1]``;
        shifting that range by the period must never land on a kernel tap, which holds iff
        ``period >= size + max(pad_before, pad_after)``.
        """
        return self.size + max(self.pad_before, self.pad_after)

    def tap_offsets(self) -> list[int]:
        """Circular offset ``pad_before - k * dilation`` of each tap (output minus input index)."""
        return [self.pad_before - k * self.dilation for k in range(self.kernel)]


@dataclass(frozen=True)
class Geometry:
    """Both spatial axes of one depthwise convolution."""

    h: AxisGeometry
    w: AxisGeometry

    @property
    def symmetric(self) -> bool:
        return self.h.pad_before == self.h.pad_after and self.w.pad_before == self.w.pad_after

    @property
    def dilated(self) -> bool:
        return self.h.dilation > 1 or self.w.dilation > 1

    @property
    def strided(self) -> bool:
        return self.h.stride > 1 or self.w.stride > 1


def _pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def validate_inputs(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, same_dtype: bool = True) -> None:
    """Raise a clear error when ``x``, ``weight`` or ``bias`` do not form a depthwise convolution.

    ``same_dtype=False`` accepts parameters in another floating dtype than ``x`` (under autocast, which casts).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise TypeError("depthwise_conv2d expects tensors for x and weight")
    if x.dim() != 4:
        raise ValueError(f"depthwise_conv2d expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    channels = x.shape[1]
    if weight.dim() != 4 or weight.shape[1] != 1:
        raise ValueError(f"depthwise weight must have shape (C, 1, kh, kw), got {tuple(weight.shape)}")
    if weight.shape[0] != channels:
        raise ValueError(f"depthwise weight has {weight.shape[0]} filters but the input has {channels} channels; "
                         f"expected weight of shape ({channels}, 1, kh, kw)")
    if min(weight.shape[2:]) < 1:
        raise ValueError(f"kernel size must be positive, got {tuple(weight.shape[2:])}")
    if bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (channels,)):
        shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise ValueError(f"bias must have shape ({channels},), got {shape}")
    if not x.is_floating_point():
        raise TypeError(f"depthwise_conv2d needs a floating-point input, got {x.dtype}")
    tensors = [weight] + ([bias] if bias is not None else [])
    for t in tensors:
        if same_dtype and t.dtype != x.dtype:
            raise TypeError(f"dtype mismatch: input is {x.dtype} but a parameter is {t.dtype}")
        if t.device != x.device:
            raise ValueError(f"device mismatch: input is on {x.device} but a parameter is on {t.device}")


def resolve_geometry(x: torch.Tensor, weight: torch.Tensor, stride: IntPair, padding: Padding,
                     dilation: IntPair) -> Geometry:
    """Explicit per-side paddings and output sizes, as ``F.conv2d`` would use them."""
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    height, width = int(x.shape[2]), int(x.shape[3])
    if isinstance(padding, str):
        if padding == "valid":
            pads = ((0, 0), (0, 0))
        elif padding == "same":
            if sh != 1 or sw != 1:
                raise ValueError("padding='same' is only defined for stride 1 (as in torch); "
                                 "pass an explicit int or (ph, pw) padding for strided convolutions")
            totals = ((kh - 1) * dh, (kw - 1) * dw)
            pads = tuple((t // 2, t - t // 2) for t in totals)  # type: ignore[assignment]
        else:
            raise ValueError(f"padding must be 'same', 'valid', an int or a pair of ints, got {padding!r}")
    else:
        ph, pw = _pair(padding, "padding", 0)
        pads = ((ph, ph), (pw, pw))
    geo = Geometry(AxisGeometry(height, kh, dh, sh, *pads[0]), AxisGeometry(width, kw, dw, sw, *pads[1]))
    for name, axis in (("height", geo.h), ("width", geo.w)):
        if axis.out_dense < 1:
            raise ValueError(f"input {name} {axis.size} with padding ({axis.pad_before}, {axis.pad_after}) is "
                             f"smaller than the dilated kernel extent {axis.extent}: the output would be empty")
    return geo
