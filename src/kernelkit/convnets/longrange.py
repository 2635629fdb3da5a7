"""A long-range spatial task generated in code: are the two marked points joined by one path? (Pathfinder-style)

Each sample is a 2-channel image: channel 0 holds several random smooth curves, channel 1 two small
markers. In a positive sample the markers sit on the two ends of the same curve; in a negative one on
ends of two different curves. Deciding this needs evidence from along the whole curve, i.e. a receptive
field that spans it — the setting where large kernels should beat small ones at equal depth.

Everything is seeded; no files are read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kernelkit.models.unireplknet import LayerNorm2d, UniRepLKNetBlock


@dataclass(frozen=True)
class PathfinderConfig:
    size: int = 32            # image side
    paths: int = 2            # curves per image (1 target + distractors)
    length: int = 24          # steps per curve (1 px each)
    turn: float = 0.1         # std of the heading change per step (radians)
    min_end_distance: float = 16.0  # the two ends of every curve are at least this far apart


def _curve(cfg: PathfinderConfig, g: torch.Generator) -> list[tuple[int, int]]:
    """A smooth random walk inside the image, as integer pixel coordinates (retries until it fits)."""
    s = cfg.size
    lo, hi = 1.0, s - 2.0
    for _ in range(100):
        y, x = (torch.rand(2, generator=g) * (s - 8) + 4).tolist()
        heading = float(torch.rand(1, generator=g)) * 2 * math.pi
        pts = [(int(round(y)), int(round(x)))]
        for _ in range(cfg.length):
            heading += float(torch.randn(1, generator=g)) * cfg.turn
            dy, dx = math.sin(heading), math.cos(heading)
            if not lo <= y + dy <= hi:  # bounce off the border
                dy = -dy
            if not lo <= x + dx <= hi:
                dx = -dx
            heading = math.atan2(dy, dx)
            y, x = y + dy, x + dx
            p = (int(round(y)), int(round(x)))
            if p != pts[-1]:
                pts.append(p)
        if math.dist(pts[0], pts[-1]) >= cfg.min_end_distance:
            return pts
    raise RuntimeError("could not place a curve; make the image larger or the curves shorter")


def pathfinder_sample(cfg: PathfinderConfig, label: int, g: torch.Generator) -> torch.Tensor:
    """One ``(2, size, size)`` image: curves in channel 0, the two markers (2×2 squares) in channel 1."""
    img = torch.zeros(2, cfg.size, cfg.size)
    curves = [_curve(cfg, g) for _ in range(cfg.paths)]
    for c in curves:
        for y, x in c:
            img[0, y, x] = 1.0
    a = curves[0][0]
    b = curves[0][-1] if label == 1 else curves[1][-1]
    for y, x in (a, b):
        img[1, max(y - 1, 0):y + 1, max(x - 1, 0):x + 1] = 1.0
    return img


def pathfinder_dataset(n: int, cfg: PathfinderConfig = PathfinderConfig(), seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` balanced samples ``(images (n, 2, S, S), labels (n,))``; the same seed gives the same data."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    labels = labels[torch.randperm(n, generator=g)]
    images = torch.stack([pathfinder_sample(cfg, int(y), g) for y in labels])
    return images, labels


def marker_pair_dataset(n: int, size: int = 64, min_distance: int = 24, margin: int = 12, seed: int = 0
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """A plain long-range relation: is marker B (channel 1) to the right of marker A (channel 0)?

    The 2×2 markers are at least ``min_distance`` pixels apart horizontally and at least ``margin``
    pixels from every border, so a network whose receptive field is smaller than both cannot see the
    two markers together nor use zero-padding cues of absolute position. Balanced labels; seeded.
    """
    lo, hi = margin, size - margin - 2
    if hi - lo < min_distance:
        raise ValueError(f"markers {min_distance} px apart do not fit in {size} px with margin {margin}")
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 2)[torch.randperm(n, generator=g)]
    images = torch.zeros(n, 2, size, size)
    for i in range(n):
        while True:
            xa, xb = torch.randint(lo, hi + 1, (2,), generator=g).tolist()
            if abs(xa - xb) >= min_distance and (xb > xa) == bool(labels[i]):
                break
        ya, yb = torch.randint(lo, hi + 1, (2,), generator=g).tolist()
        images[i, 0, ya:ya + 2, xa:xa + 2] = 1.0
        images[i, 1, yb:yb + 2, xb:xb + 2] = 1.0
    return images, labels


class LongRangeNet(nn.Module):
    """UniRepLKNet stem (two 3×3 s2 convs, output stride 4) → ``depth`` UniRepLKNet blocks → pool → LN → linear.

    ``kernel_size`` ≥ 7 uses Dilated Reparam Blocks; 3 plain depthwise 3×3 convs. Depth and resolution
    are the same for every kernel size, so only the kernel (and thus the receptive field) differs:
    7 + 8·depth input pixels for K=3, 7 + 48·depth for K=13.
    """

    def __init__(self, kernel_size: int, width: int = 32, depth: int = 2, in_chans: int = 2, num_classes: int = 2):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, width // 2, 3, stride=2, padding=1), LayerNorm2d(width // 2), nn.GELU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1), LayerNorm2d(width))
        self.blocks = nn.Sequential(*[UniRepLKNetBlock(width, kernel_size, layer_scale_init_value=0.0)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.stem(x)).mean((-2, -1))))


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_width(kernel_size: int, target_params: int, depth: int = 2, step: int = 2) -> int:
    """The width (multiple of ``step``) whose :class:`LongRangeNet` parameter count is closest to ``target_params``."""
    best, best_gap = step, float("inf")
    for w in range(max(step, 8), 513, step):
        count = param_count(LongRangeNet(kernel_size, w, depth))
        gap = abs(count - target_params)
        if gap < best_gap:
            best, best_gap = w, gap
        if count > target_params:  # counts grow with the width
            break
    return best


def train_classifier(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                     val: tuple[torch.Tensor, torch.Tensor], epochs: int = 10, batch_size: int = 64, lr: float = 2e-3,
                     seed: int = 0, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                     flip: bool = False) -> list[dict[str, float]]:
    """AdamW + one-cycle schedule on in-memory tensors; returns per-epoch ``{loss, train_acc, val_acc}``.

    ``flip``: random horizontal flips (only for tasks whose label does not depend on left/right).
    """
    g = torch.Generator().manual_seed(seed)
    x, y = train
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1), pct_start=0.1)
    history = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=g)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            if flip:
                mirror = torch.rand(len(idx), generator=g) < 0.5
                xb = torch.where(mirror[:, None, None, None], xb.flip(-1), xb)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            total += len(idx)
        rec = {"epoch": epoch + 1, "loss": loss_sum / total, "train_acc": correct / total,
               "val_acc": accuracy(model, *val, batch_size=256)}
        history.append(rec)
        if on_epoch:
            on_epoch(epoch + 1, rec)
    return history


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    model.eval()
    correct = sum(int((model(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    return correct / max(len(x), 1)
