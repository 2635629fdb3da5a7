"""Pure training math: learning-rate schedule, smoothed cross entropy, EMA update, batch plans. No I/O."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def lr_at(step: int, total_steps: int, base_lr: float, schedule: str = "cosine", warmup_steps: int = 0,
          min_lr: float = 0.0, milestones: Sequence[int] = (), gamma: float = 0.1) -> float:
    """Learning rate used by optimizer step ``step`` (0-based).

    Warmup: ``base_lr * (step + 1) / warmup_steps`` for ``step < warmup_steps`` (the first step is not 0).
    Then ``constant`` keeps ``base_lr``; ``multistep`` multiplies ``base_lr`` by ``gamma`` once for every
    milestone ``<= step``; ``cosine`` decays from ``base_lr`` at ``step == warmup_steps`` towards
    ``min_lr``: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * t)) / 2`` with
    ``t = (step - warmup_steps) / (total_steps - warmup_steps)``.
    """
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    if schedule == "multistep":
        return base_lr * gamma ** sum(step >= m for m in milestones)
    if schedule != "cosine":
        raise ValueError(f"schedule: expected 'cosine', 'constant' or 'multistep', got {schedule!r}")
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def smoothed_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross entropy with label smoothing.

    ``targets`` are class indices ``(B,)`` or class probabilities ``(B, C)`` (e.g. from mixup). With
    indices this is ``(1 - eps) * nll + eps * mean_c(-log p_c)``, the definition used by
    ``F.cross_entropy(label_smoothing=eps)``; probabilities are smoothed as ``(1 - eps) * q + eps / C``.
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (B, C)
    if targets.dtype.is_floating_point:
        if targets.shape != logits.shape:
            raise ValueError(f"soft targets of shape {tuple(targets.shape)} do not match logits {tuple(logits.shape)}")
        q = targets.float() * (1.0 - smoothing) + smoothing / logits.shape[-1]
        return -(q * logp).sum(-1).mean()
    nll = -logp.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)  # (B,)
    if smoothing == 0.0:
        return nll.mean()
    return ((1.0 - smoothing) * nll + smoothing * (-logp.mean(-1))).mean()


def count_correct(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Number of rows whose arg-max matches the target class (or the arg-max of soft targets)."""
    if targets.dtype.is_floating_point:
        targets = targets.argmax(-1)
    return (logits.argmax(-1) == targets).sum()


@torch.no_grad()
def ema_update_(ema: Iterable[torch.Tensor], current: Iterable[torch.Tensor], decay: float) -> None:
    """In place: ``ema = decay * ema + (1 - decay) * current`` for floating tensors; others are copied."""
    for e, c in zip(ema, current, strict=True):
        if e.dtype.is_floating_point:
            e.mul_(decay).add_(c.detach().to(e.dtype), alpha=1.0 - decay)
        else:
            e.copy_(c)


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed derived from ``(seed, epoch)`` (independent streams per epoch)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32).astype(np.uint64)
               .dot(np.array([1, 2**32], dtype=np.uint64)) >> np.uint64(1))


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int, drop_last: bool = False,
                  min_size: int = 1) -> list[list[int]]:
    """Global batches of dataset indices for one epoch: a permutation seeded by ``(seed, epoch)``.

    Batches smaller than ``min_size`` (e.g. fewer samples than DDP ranks) are dropped, as is a final
    partial batch when ``drop_last``.
    """
    g = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    perm = torch.randperm(n, generator=g).tolist()
    batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
    if batches and drop_last and len(batches[-1]) < batch_size:
        batches.pop()
    return [b for b in batches if len(b) >= min_size]


def shard(indices: list[int], rank: int, world_size: int) -> list[int]:
    """Contiguous part ``rank`` of ``world_size`` near-equal parts of ``indices`` (sizes differ by <= 1)."""
    n = len(indices)
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return indices[start:start + base + (1 if rank < extra else 0)]
