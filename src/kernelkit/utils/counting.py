"""Parameter and multiply-accumulate counting (MACs from ``torch.utils.flop_counter``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def count_macs(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    inputs: torch.Tensor | tuple[torch.Tensor, ...] | None = None,
    per_module: bool = False,
) -> int | tuple[int, dict[str, int]]:
    """Multiply-accumulates of one forward pass (convolutions, matmuls, linear layers).

    ``FlopCounterMode`` counts 2 FLOPs per multiply-accumulate; this returns MACs = FLOPs / 2.
    Elementwise ops (activations, normalisation, additions) are not counted, matching the usual
    "conv + linear" convention of papers' FLOPs tables.
    """
    if inputs is None:
        if input_shape is None:
            raise ValueError("count_macs needs input_shape or inputs")
        param = next(model.parameters(), None)
        dtype = param.dtype if param is not None else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        inputs = torch.zeros(*input_shape, dtype=dtype, device=device)
    args = inputs if isinstance(inputs, tuple) else (inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*args)
    finally:
        model.train(was_training)
    total = counter.get_total_flops() // 2
    if not per_module:
        return total
    by_module = {
        name: sum(int(v) for v in ops.values()) // 2
        for name, ops in counter.get_flop_counts().items()
    }
    return total, by_module
