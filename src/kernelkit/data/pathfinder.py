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


# --- Two dots on a torus: a long-range task with no shortcut -------------------------------------------------


@dataclass(frozen=True)
class TorusPairConfig:
    """Two single-pixel dots on a ``size × size`` torus; label 1 iff their wrap-around Chebyshev distance ≤ ``near[1]``.

    Positive distances are drawn uniformly from ``near``, negative ones from ``far`` (inclusive ranges).
    With circular padding, stride 1 and global average pooling a network is exactly translation-invariant
    on the torus, so the only information in an image is the displacement between the dots, and a network
    whose receptive field (side ``R``) cannot hold both dots (distance ≥ ``R``) computes the same output
    for every such image: when every distance is ≥ ``R`` its accuracy ceiling is chance.
    """

    size: int = 24
    near: tuple[int, int] = (5, 8)
    far: tuple[int, int] = (9, 12)

    def __post_init__(self) -> None:
        lo, hi = self.near
        flo, fhi = self.far
        if not 1 <= lo <= hi < flo <= fhi <= self.size // 2:
            raise ValueError(f"need 1 <= near <= far <= size//2 as increasing ranges, got near={self.near}, "
                             f"far={self.far}, size={self.size}")


def torus_distance(a: tuple[int, int], b: tuple[int, int], size: int) -> int:
    """Chebyshev (L∞) distance between two pixels of a ``size × size`` torus."""
    dy, dx = abs(a[0] - b[0]) % size, abs(a[1] - b[1]) % size
    return max(min(dy, size - dy), min(dx, size - dx))


def torus_pair_sample(cfg: TorusPairConfig, label: int, g: torch.Generator) -> torch.Tensor:
    """One ``(1, size, size)`` image with two dots at wrap-around distance drawn from ``near`` (1) or ``far`` (0)."""
    lo, hi = cfg.near if label == 1 else cfg.far
    r = int(torch.randint(lo, hi + 1, (1,), generator=g))
    other = int(torch.randint(-r, r + 1, (1,), generator=g))
    sign = 1 if float(torch.rand(1, generator=g)) < 0.5 else -1
    dy, dx = (sign * r, other) if float(torch.rand(1, generator=g)) < 0.5 else (other, sign * r)
    ay, ax = torch.randint(0, cfg.size, (2,), generator=g).tolist()
    img = torch.zeros(1, cfg.size, cfg.size)
    img[0, ay, ax] = 1.0
    img[0, (ay + dy) % cfg.size, (ax + dx) % cfg.size] = 1.0
    return img


def torus_pair_dataset(n: int, cfg: TorusPairConfig = TorusPairConfig(), seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` balanced samples ``(images (n, 1, S, S), labels (n,))``; the same seed gives the same data."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 2)[torch.randperm(n, generator=g)]
    return torch.stack([torus_pair_sample(cfg, int(y), g) for y in labels]), labels


def receptive_field(kernel_size: int, depth: int) -> int:
    """Receptive-field side of :class:`TorusNet` (1×1 stem, ``depth`` stride-1 depthwise K×K layers)."""
    return 1 + (kernel_size - 1) * depth


def small_rf_ceiling(cfg: TorusPairConfig, kernel_size: int, depth: int) -> float:
    """Best accuracy any :class:`TorusNet` of this kernel and depth can reach on ``cfg`` (balanced classes).

    Pairs at distance < R (receptive-field side) may be classified perfectly; all pairs at distance ≥ R
    give one and the same output, so the best it can do there is to predict the class more common among
    them. Distances are uniform within each class's range.
    """
    r = receptive_field(kernel_size, depth)

    def unseen(lo: int, hi: int) -> float:  # fraction of a class's distances the net cannot resolve
        return sum(1 for d in range(lo, hi + 1) if d >= r) / (hi - lo + 1)

    u_pos, u_neg = unseen(*cfg.near), unseen(*cfg.far)
    return 0.5 * (1 - u_pos) + 0.5 * (1 - u_neg) + 0.5 * max(u_pos, u_neg)


class CircularDepthwise(nn.Module):
    """Depthwise K×K conv with circular (torus) padding, through :func:`kernelkit.layers.depthwise_conv2d`."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"circular depthwise conv needs an odd kernel size, got {kernel_size}")
        self.weight = nn.Parameter(torch.empty(channels, 1, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.trunc_normal_(self.weight, std=0.02)
        self.pad = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kernelkit.layers.depthwise import depthwise_conv2d

        p = self.pad
        return depthwise_conv2d(F.pad(x, (p, p, p, p), mode="circular"), self.weight, self.bias, padding=0)


class TorusBlock(nn.Module):
    """UniRepLKNet-style block on the torus: circular depthwise K×K → BN → pointwise FFN (×4, GELU) → residual."""

    def __init__(self, width: int, kernel_size: int):
        super().__init__()
        self.dwconv = CircularDepthwise(width, kernel_size)
        self.norm = nn.BatchNorm2d(width)
        self.ffn = nn.Sequential(nn.Conv2d(width, 4 * width, 1), nn.GELU(), nn.Conv2d(4 * width, width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ffn(self.norm(self.dwconv(x)))


class TorusNet(nn.Module):
    """1×1 stem → ``depth`` :class:`TorusBlock` (stride 1) → global average pool → LN → linear.

    Translation-equivariant on the torus up to the pooling, which makes it invariant; receptive field
    :func:`receptive_field` ``(kernel_size, depth)``.
    """

    def __init__(self, kernel_size: int, width: int = 16, depth: int = 2, in_chans: int = 1, num_classes: int = 2):
        super().__init__()
        self.kernel_size, self.depth = kernel_size, depth
        self.stem = nn.Conv2d(in_chans, width, 1)
        self.blocks = nn.Sequential(*[TorusBlock(width, kernel_size) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(self.stem(x)).mean((-2, -1))))


def matched_torus_width(kernel_size: int, target_params: int, depth: int = 2) -> int:
    """The :class:`TorusNet` width whose parameter count is closest to ``target_params``."""
    return min(range(4, 257), key=lambda w: abs(param_count(TorusNet(kernel_size, w, depth)) - target_params))


def torus_run(cfg: TorusPairConfig, kernel_size: int, width: int, depth: int = 2, seed: int = 0,
              n_train: int = 3000, n_val: int = 1000, epochs: int = 8, batch_size: int = 64, lr: float = 2e-3,
              on_epoch: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Train one :class:`TorusNet` on fresh seeded data (train seed ``1000 + seed``, val ``2000 + seed``).

    Returns the kernel, width, parameters, receptive field, the accuracy ceiling implied by it, and the
    final / best validation and final training accuracy.
    """
    train = torus_pair_dataset(n_train, cfg, seed=1000 + seed)
    val = torus_pair_dataset(n_val, cfg, seed=2000 + seed)
    torch.manual_seed(seed)
    net = TorusNet(kernel_size, width, depth)
    hist = train_classifier(net, train, val, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                            on_epoch=on_epoch)
    return {"kernel": kernel_size, "width": width, "depth": depth, "params": param_count(net), "seed": seed,
            "receptive field": receptive_field(kernel_size, depth),
            "ceiling": small_rf_ceiling(cfg, kernel_size, depth), "epochs": epochs,
            "final train acc": hist[-1]["train_acc"], "final val acc": hist[-1]["val_acc"],
            "best val acc": max(h["val_acc"] for h in hist)}
