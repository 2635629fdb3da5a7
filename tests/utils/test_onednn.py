"""The shared oneDNN linear wrapper against plain torch ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kernelkit.utils import onednn

pytestmark = pytest.mark.skipif(not onednn.available(), reason="oneDNN linear primitive unavailable in this build")


@pytest.mark.parametrize("bias", [False, True])
def test_linear_post_ops_equal_plain_torch(bias: bool) -> None:
    g = torch.Generator().manual_seed(1)
    x, w, other = torch.randn(64, 48, generator=g), torch.randn(80, 48, generator=g), torch.randn(64, 80, generator=g)
    b = torch.randn(80, generator=g) if bias else None
    torch.testing.assert_close(onednn.linear(x, w, b), F.linear(x, w, b), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(onednn.linear(x, w, b, "gelu"), F.gelu(F.linear(x, w, b)), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(onednn.linear(x, w, b, "add", other), F.linear(x, w, b) + other, rtol=1e-5, atol=1e-4)
