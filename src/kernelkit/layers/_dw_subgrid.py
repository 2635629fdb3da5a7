"""Dilated depthwise convolution as a dense one on interleaved sub-images.

With dilation ``d`` (stride 1), output ``n = d·q + r`` reads only inputs ``d·(q + k) + r``: the padded
image splits into ``d_h × d_w`` interleaved sub-images (phase ``r``), each convolved "valid" with the
dense ``k×k`` kernel. The phases become extra batch entries of one ``F.conv2d(groups=C)``, so a
dilated 3×3 runs on torch's fast dense 3×3 path. Strides subsample the stride-1 result. Autograd is
torch's (pad, permute, conv, slicing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernelkit.layers._dw_geometry import AxisGeometry, Geometry


def _phase_layout(axis: AxisGeometry) -> tuple[int, int, int]:
    """(outputs per phase, input rows per phase, rows to add (or crop if < 0) after the padding)."""
    per_phase_out = -(-axis.out_dense // axis.dilation)
    per_phase_in = per_phase_out + axis.kernel - 1
    extra = axis.dilation * per_phase_in - (axis.size + axis.pad_before + axis.pad_after)
    return per_phase_out, per_phase_in, extra


def subgrid_depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      geo: Geometry) -> torch.Tensor:
    """Depthwise conv (any dilation, stride, padding) through the sub-image decomposition."""
    n, c = x.shape[:2]
    dh, dw = geo.h.dilation, geo.w.dilation
    qh, sh, eh = _phase_layout(geo.h)
    qw, sw, ew = _phase_layout(geo.w)
    xp = F.pad(x, (geo.w.pad_before, geo.w.pad_after + ew, geo.h.pad_before, geo.h.pad_after + eh))
    phases = xp.view(n, c, sh, dh, sw, dw).permute(0, 3, 5, 1, 2, 4).reshape(n * dh * dw, c, sh, sw)
    out = F.conv2d(phases, weight, bias, groups=c)  # (N·dh·dw, C, qh, qw)
    out = out.view(n, dh, dw, c, qh, qw).permute(0, 3, 4, 1, 5, 2).reshape(n, c, qh * dh, qw * dw)
    return out[:, :, :geo.h.out_dense:geo.h.stride, :geo.w.out_dense:geo.w.stride]
