"""oneDNN's fused float32 CPU linear as the registered op ``kernelkit::linear_pointwise``.

On some CPUs ``F.linear`` / ``torch.mm`` go to a slower GEMM than oneDNN's (``kernelkit bench`` measures it
where it matters, e.g. the M4LE inference benchmark). oneDNN's primitive (``torch.ops.mkldnn._linear_pointwise``)
is private to torch and unknown to the toolchain, so kernelkit wraps it in a ``torch.library.custom_op`` with

- an explicit device dispatch: oneDNN only for float32 CPU tensors outside autocast (when :func:`available`),
  the same function in plain torch ops on every other device, dtype or build;
- a fake (meta) implementation, so ``torch.compile(fullgraph=True)`` and meta-device runs trace it;
- an autograd formula in plain torch ops (post-ops ``"none"``, ``"gelu"``, ``"add"``);
- a FLOP formula (``2·M·N·K``), so ``FlopCounterMode`` and :func:`kernelkit.utils.counting.count_macs` see it;
- an export path: under ``torch.compiler.is_exporting()`` :func:`linear` emits the plain ops, so
  ``torch.export`` and ONNX get a standard graph.

The primitive is probed once per process (present, runs, and computes ``x @ w.T + b`` with each post-op);
:func:`available` is false when it is missing and every call takes the plain ops.

``linear(..., pack=True)`` is for weights that stay fixed over many calls (inference). oneDNN otherwise
reorders the weight into its blocked GEMM layout on every call, a pass over the weight that at a few hundred
rows is a tenth to a quarter of the product's time. With ``pack=True`` the plain eager call (no compiler,
exporter, dispatch mode or autograd) uses a packed copy made once per weight by
:func:`kernelkit.utils.derived_weights.derived` and made again when the weight changes; the copy holds as
much memory again as the weight. Every other call, and a build without the reorder op, uses the weight as it is.
"""

from __future__ import annotations

import functools
import math
import types

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import register_flop_formula

from kernelkit.utils.derived_weights import derived, plain_eager_call

__all__ = ["MIN_MACS", "PACK_ROWS_HINT", "POST_OPS", "accelerate_linears", "available", "linear", "packing_available",
           "plain_linear"]

#: Products smaller than this many multiply-adds stay on ``F.linear``, where oneDNN's per-call overhead outweighs
#: its faster GEMM.
MIN_MACS = 1 << 19
#: What may follow the product: nothing, exact (erf) GELU, or the addition of a tensor ``other``.
POST_OPS = ("none", "gelu", "add")
#: Rows that oneDNN is told to expect when a weight is packed. Any hint of a few dozen rows or more gives the same
#: layout speed for every row count; a hint of 1 picks a layout made for single rows.
PACK_ROWS_HINT = 1024


def plain_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, post: str = "none",
                 other: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`linear` in plain torch ops (the reference, the export form and the non-oneDNN dispatch)."""
    y = F.linear(x, weight, bias)
    if post == "gelu":
        return F.gelu(y)
    if post == "add":
        assert other is not None
        return y + other
    return y


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, post: str,
                   other: torch.Tensor | None) -> torch.Tensor:
    if post == "add":
        return torch.ops.mkldnn._linear_pointwise.binary(x, other, weight, bias, "add")
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, post, [], "none" if post == "gelu" else "")


def _takes_onednn(*tensors: torch.Tensor | None) -> bool:
    """oneDNN runs only on float32 CPU tensors, outside CPU autocast, in a build where it passed the probe."""
    return (all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors)
            and not torch.is_autocast_enabled("cpu") and available())


@torch.library.custom_op("kernelkit::linear_pointwise", mutates_args=())
def _linear_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, post: str,
                      other: torch.Tensor | None) -> torch.Tensor:
    if x.dim() == 2 and _takes_onednn(x, weight, bias, other):
        return _onednn_linear(x.contiguous(), weight, bias, post, None if other is None else other.contiguous())
    return plain_linear(x, weight, bias, post, other)  # a fresh tensor (custom ops may not alias their inputs)


@_linear_pointwise.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, post: str,
      other: torch.Tensor | None) -> torch.Tensor:
    return x.new_empty(x.shape[0], weight.shape[0])


def _gelu_grad(y: torch.Tensor) -> torch.Tensor:
    """d/dy of the exact GELU ``y·Φ(y)``: ``Φ(y) + y·φ(y)``."""
    return 0.5 * (1.0 + torch.erf(y * math.sqrt(0.5))) + y * torch.exp(-0.5 * y * y) / math.sqrt(2.0 * math.pi)


def _setup_context(ctx, inputs, output) -> None:  # type: ignore[no-untyped-def]
    x, weight, bias, post, other = inputs
    ctx.post = post
    ctx.has_bias = bias is not None
    ctx.has_other = other is not None
    ctx.save_for_backward(x, weight, bias)


def _backward(ctx, grad):  # type: ignore[no-untyped-def]
    x, weight, bias = ctx.saved_tensors
    if ctx.post == "gelu":
        grad = grad * _gelu_grad(F.linear(x, weight, bias))
    grad_x = grad @ weight if ctx.needs_input_grad[0] else None
    grad_w = grad.T @ x if ctx.needs_input_grad[1] else None
    grad_b = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    grad_other = grad if ctx.has_other and ctx.needs_input_grad[4] else None
    return grad_x, grad_w, grad_b, None, grad_other


_linear_pointwise.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.kernelkit.linear_pointwise)
def _linear_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:  # type: ignore[no-untyped-def]
    """``2·M·N·K``: one multiply and one add per term of the product (post-ops are elementwise, not counted)."""
    return 2 * x_shape[0] * w_shape[0] * x_shape[1]


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, post: str = "none",
           other: torch.Tensor | None = None, *, pack: bool = False) -> torch.Tensor:
    """``x @ weight.T + bias`` followed by ``post``: ``"none"``, ``"gelu"`` (exact erf GELU) or ``"add"`` of ``other``.

    ``x`` is 2-D (M, K), ``weight`` (N, K), ``other`` (M, N). Any device and dtype: oneDNN runs for float32
    CPU tensors outside autocast, plain torch ops otherwise; ``torch.export`` and ``torch.jit.trace`` always
    get the plain ops. ``pack=True``: a plain eager oneDNN call uses a cached packed copy of ``weight`` (for
    weights that stay fixed over many calls; see the module docstring).
    """
    if post not in POST_OPS:
        raise ValueError(f"post must be one of {POST_OPS}, got {post!r}")
    if (post == "add") != (other is not None):
        raise ValueError("other is given exactly when post == 'add'")
    if torch.compiler.is_exporting() or torch.jit.is_tracing():
        return plain_linear(x, weight, bias, post, other)
    if x.dim() == 2 and plain_eager_call(x, weight, bias, other) and _takes_onednn(x, weight, bias, other):
        # the registered op's own CPU kernel, without its dispatch overhead: nothing here needs the op
        w = _packed(weight) if pack else None
        return _onednn_linear(x.contiguous(), weight if w is None else w, bias, post,
                              None if other is None else other.contiguous())
    return torch.ops.kernelkit.linear_pointwise(x, weight, bias, post, other)


def _packed(weight: torch.Tensor) -> torch.Tensor | None:
    """The cached oneDNN-packed copy of ``weight``; ``None`` where packing is unavailable or untrackable."""
    if not packing_available() or weight.dim() != 2:
        return None
    return derived(weight, "onednn_linear_packed",
                   lambda w: torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), PACK_ROWS_HINT))


@functools.cache
def available() -> bool:
    """oneDNN's primitive exists, runs and agrees with ``F.linear`` for every post-op above (checked once)."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    try:
        g = torch.Generator().manual_seed(0)
        a, w, b, other = (torch.randn(s, generator=g) for s in ((37, 29), (23, 29), (23,), (37, 23)))
        with torch.autocast("cpu", enabled=False):
            checks = ((_onednn_linear(a, w, None, "none", None), a @ w.T),
                      (_onednn_linear(a, w, b, "gelu", None), F.gelu(F.linear(a, w, b))),
                      (_onednn_linear(a, w, b, "add", other), F.linear(a, w, b) + other))
        return all(bool(torch.allclose(got, want, rtol=1e-5, atol=1e-5)) for got, want in checks)
    except (RuntimeError, NotImplementedError, AttributeError):  # op missing in this build, or unsupported CPU
        return False


@functools.cache
def packing_available() -> bool:
    """oneDNN's weight reorder exists and the linear on a packed weight equals the one on the plain weight."""
    if not available() or not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
        return False
    try:
        g = torch.Generator().manual_seed(1)
        a, w, b = (torch.randn(s, generator=g) for s in ((37, 29), (23, 29), (23,)))
        with torch.autocast("cpu", enabled=False), torch.no_grad():
            packed = torch.ops.mkldnn._reorder_linear_weight(w, PACK_ROWS_HINT)
            got, want = _onednn_linear(a, packed, b, "gelu", None), _onednn_linear(a, w, b, "gelu", None)
        return bool(torch.allclose(got, want, rtol=1e-5, atol=1e-5))
    except (RuntimeError, NotImplementedError, AttributeError):
        return False


def _routed_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    rows = x.numel() // self.in_features
    if (rows * self.in_features * self.out_features < MIN_MACS or x.dtype != torch.float32 or x.device.type != "cpu"
            or torch.is_autocast_enabled("cpu") or torch.compiler.is_exporting() or torch.jit.is_tracing()
            or (torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad))):
        return F.linear(x, self.weight, self.bias)
    bias = None if self.bias is None else self.bias.detach()
    y = linear(x.reshape(rows, self.in_features).contiguous(), self.weight.detach(), bias)
    return y.reshape(*x.shape[:-1], self.out_features)


def accelerate_linears(model: nn.Module) -> int:
    """Route the ``nn.Linear`` layers of a float32 CPU model through oneDNN for inference-size products of at
    least :data:`MIN_MACS` multiply-adds (autograd calls, autocast, export and small products keep
    ``F.linear``). Results equal ``F.linear``'s to float32 rounding. Returns how many layers were routed (0 when
    oneDNN is unavailable)."""
    if not available():
        return 0
    routed = 0
    for m in model.modules():
        if type(m) is nn.Linear and m.weight.dtype == torch.float32 and m.weight.device.type == "cpu":
            m.forward = types.MethodType(_routed_forward, m)  # type: ignore[method-assign]
            routed += 1
    return routed
