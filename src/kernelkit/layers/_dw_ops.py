"""The depthwise conv's fast strategies as registered ops, for the PyTorch toolchain.

``kernelkit::depthwise_conv2d(x, weight, bias?, stride[2], pads[4], dilation[2], strategy) -> Tensor`` runs one
strategy's forward (CPU only); ``kernelkit::depthwise_conv2d_backward(grad_y, x, weight, stride, pads,
dilation, strategy, output_mask[2]) -> (grad_x, grad_w)`` runs the same strategy's hand-written backward
(the functions :class:`~kernelkit.layers._dw_spectral.DirectDepthwise` and
:class:`~kernelkit.layers._dw_spectral.SpectralDepthwise` call in eager mode). ``pads`` is
``(top, bottom, left, right)``. Each op has

* a fake (meta) implementation giving the output shapes, so ``torch.compile`` and other tracers see
  through it without running it;
* an autograd formula (the forward op's backward calls the backward op; the bias gradient is a plain
  sum), so training graphs hold both ops;
* a FLOP formula equal to ``F.conv2d``'s: ``2·N·C·H_out·W_out·kh·kw`` for the forward, that once per
  requested gradient (input, weight) for the backward, as ``torch.utils.flop_counter`` counts torch's
  own conv backward. ``FlopCounterMode`` therefore reports a depthwise conv's FLOPs whatever strategy ran.

Unrequested backward outputs are empty tensors (the autograd formula turns them into ``None``).
``subgrid``'s backward in the op is the direct strategies' (its eager backward is torch's autograd
through the sub-image reshuffle; both are exact). Export does not see these ops:
:func:`kernelkit.layers.depthwise.depthwise_conv2d` takes the plain ``F.conv2d`` under
``torch.compiler.is_exporting()``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import register_flop_formula

from kernelkit.layers._dw_geometry import AxisGeometry, Geometry
from kernelkit.layers._dw_spectral import direct_backward, direct_conv, spectral_backward, spectral_forward
from kernelkit.layers._dw_subgrid import subgrid_depthwise
from kernelkit.layers._dw_widened import widened_conv

OP_STRATEGIES = ("direct_grouped", "dft", "fft", "direct_dft", "subgrid", "direct_widened")

__all__ = ["OP_STRATEGIES", "op_arguments", "depthwise_conv2d_op", "depthwise_conv2d_backward_op", "forward",
           "backward"]


def op_arguments(geo: Geometry) -> tuple[list[int], list[int], list[int]]:
    """``(stride, pads, dilation)`` of the op's schema for a resolved geometry."""
    h, w = geo.h, geo.w
    return [h.stride, w.stride], [h.pad_before, h.pad_after, w.pad_before, w.pad_after], [h.dilation, w.dilation]


def _geometry(x_shape: Any, w_shape: Any, stride: list[int], pads: list[int], dilation: list[int]) -> Geometry:
    return Geometry(AxisGeometry(int(x_shape[2]), int(w_shape[2]), dilation[0], stride[0], pads[0], pads[1]),
                    AxisGeometry(int(x_shape[3]), int(w_shape[3]), dilation[1], stride[1], pads[2], pads[3]))


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, geo: Geometry,
            strategy: str) -> torch.Tensor:
    """One strategy's forward, without autograd bookkeeping."""
    if strategy in ("direct", "direct_grouped", "direct_dft"):
        return direct_conv(x, weight, bias, geo)
    if strategy == "direct_widened":
        return widened_conv(x, weight, bias, geo)
    if strategy == "subgrid":
        return subgrid_depthwise(x, weight, bias, geo)
    if strategy in ("dft", "fft"):
        return spectral_forward(x.contiguous(), weight, bias, geo, strategy)[0]
    raise ValueError(f"unknown depthwise strategy {strategy!r}")


def backward(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, geo: Geometry, strategy: str,
             need_x: bool, need_w: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """One strategy's ``(grad_x, grad_w)`` (``None`` where not requested)."""
    if strategy in ("dft", "fft", "direct_dft"):
        transform = "dft" if strategy == "direct_dft" else strategy
        return spectral_backward(grad_y, geo, transform, strategy == "direct_dft", need_x, need_w, x=x,
                                 weight=weight)
    if strategy in ("direct", "direct_grouped", "subgrid", "direct_widened"):
        return direct_backward(grad_y, x, weight, geo, need_x, need_w)
    raise ValueError(f"unknown depthwise strategy {strategy!r}")


def _output_shape(x: torch.Tensor, geo: Geometry) -> tuple[int, int, int, int]:
    return int(x.shape[0]), int(x.shape[1]), geo.h.out, geo.w.out


@torch.library.custom_op("kernelkit::depthwise_conv2d", mutates_args=(), device_types="cpu")
def depthwise_conv2d_op(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
                        pads: list[int], dilation: list[int], strategy: str) -> torch.Tensor:
    """Depthwise conv by ``strategy`` (one of :data:`OP_STRATEGIES`); equal to ``F.conv2d(groups=C)``."""
    geo = _geometry(x.shape, weight.shape, stride, pads, dilation)
    return forward(x, weight, bias, geo, strategy).contiguous()


@depthwise_conv2d_op.register_fake
def _depthwise_conv2d_fake(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int],
                           pads: list[int], dilation: list[int], strategy: str) -> torch.Tensor:
    geo = _geometry(x.shape, weight.shape, stride, pads, dilation)
    return x.new_empty(_output_shape(x, geo))


@torch.library.custom_op("kernelkit::depthwise_conv2d_backward", mutates_args=(), device_types="cpu")
def depthwise_conv2d_backward_op(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: list[int],
                                 pads: list[int], dilation: list[int], strategy: str, output_mask: list[bool],
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(grad_x, grad_w)`` of :func:`depthwise_conv2d_op`; an output not asked for in ``output_mask`` is empty."""
    geo = _geometry(x.shape, weight.shape, stride, pads, dilation)
    grad_x, grad_w = backward(grad_y, x, weight, geo, strategy, output_mask[0], output_mask[1])
    return (x.new_empty(0) if grad_x is None else grad_x.contiguous(),
            weight.new_empty(0) if grad_w is None else grad_w.contiguous())


@depthwise_conv2d_backward_op.register_fake
def _depthwise_conv2d_backward_fake(grad_y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride: list[int],
                                    pads: list[int], dilation: list[int], strategy: str, output_mask: list[bool],
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
    return (x.new_empty(x.shape if output_mask[0] else (0,)),
            weight.new_empty(weight.shape if output_mask[1] else (0,)))


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    x, weight, bias, stride, pads, dilation, strategy = inputs
    ctx.arguments = (stride, pads, dilation, strategy)
    ctx.has_bias = bias is not None
    ctx.save_for_backward(x, weight)


def _backward_formula(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    x, weight = ctx.saved_tensors
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    grad_x = grad_w = grad_b = None
    if need_x or need_w:
        grad_x, grad_w = depthwise_conv2d_backward_op(grad_y, x, weight, *ctx.arguments, [need_x, need_w])
    if need_b and ctx.has_bias:
        grad_b = grad_y.sum((0, 2, 3))
    return grad_x if need_x else None, grad_w if need_w else None, grad_b, None, None, None, None


depthwise_conv2d_op.register_autograd(_backward_formula, setup_context=_setup_context)


def _conv_flops(out_shape: Any, w_shape: Any) -> int:
    n, c, ho, wo = (int(v) for v in out_shape)
    return 2 * n * c * ho * wo * int(w_shape[2]) * int(w_shape[3])


@register_flop_formula(torch.ops.kernelkit.depthwise_conv2d)
def _forward_flops(x_shape: Any, w_shape: Any, bias_shape: Any, stride: Any, pads: Any, dilation: Any,
                   strategy: Any, *, out_shape: Any = None, **kwargs: Any) -> int:
    return _conv_flops(out_shape, w_shape)


@register_flop_formula(torch.ops.kernelkit.depthwise_conv2d_backward)
def _backward_flops(grad_y_shape: Any, x_shape: Any, w_shape: Any, stride: Any, pads: Any, dilation: Any,
                    strategy: Any, output_mask: Any, *, out_shape: Any = None, **kwargs: Any) -> int:
    return _conv_flops(grad_y_shape, w_shape) * (int(bool(output_mask[0])) + int(bool(output_mask[1])))
