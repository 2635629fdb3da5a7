"""Image transforms on tensors only (no torchvision).

Every transform accepts one image ``C×H×W`` or a batch ``N×C×H×W``. Random transforms draw
independently for each sample of a batch, from ``generator`` when given, else from torch's global RNG.
A batch of one and a single image draw the same numbers, so results agree for a seeded generator.
Geometric transforms (crop, flip, pad) work on any dtype; photometric ones (``Normalize``,
``ColorJitter``) expect float images in [0, 1] (``ToFloat`` converts uint8). ``Resize`` on uint8 input
rounds back to uint8.

Example::

    train_tf = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    x = train_tf(batch)  # N×3×32×32 float
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Size = int | tuple[int, int]
PADDING_MODES = ("constant", "reflect", "replicate", "circular")


# -- helpers -----------------------------------------------------------------------------------
def _as_batch(x: Tensor) -> tuple[Tensor, bool]:
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a tensor image, got {type(x).__name__}")
    if x.dim() == 3:
        return x.unsqueeze(0), True
    if x.dim() == 4:
        return x, False
    raise ValueError(f"expected an image C×H×W or a batch N×C×H×W, got shape {tuple(x.shape)}")


def _unbatch(x: Tensor, single: bool) -> Tensor:
    return x[0] if single else x


def _pair(size: Size, what: str = "size") -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h <= 0 or w <= 0:
        raise ValueError(f"{what} must be positive, got {size}")
    return int(h), int(w)


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _randint(n: int, high: Tensor | int, generator: torch.Generator | None) -> Tensor:
    """Integers uniform in ``[0, high)`` (``high`` may differ per sample)."""
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.floor(u * torch.as_tensor(high, dtype=torch.float64)).long()


def _to_float(x: Tensor) -> tuple[Tensor, torch.dtype]:
    return (x.float(), x.dtype) if not x.is_floating_point() else (x, x.dtype)


def _restore(x: Tensor, dtype: torch.dtype) -> Tensor:
    if dtype.is_floating_point:
        return x.to(dtype)
    info = torch.iinfo(dtype)
    return x.round_().clamp_(info.min, info.max).to(dtype)


def pad(x: Tensor, padding: Sequence[int], mode: str = "constant", fill: float = 0.0) -> Tensor:
    """Pad the last two dims by ``(left, top, right, bottom)`` with ``mode`` (any dtype)."""
    if mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {mode!r}")
    left, top, right, bottom = (int(p) for p in padding)
    if min(left, top, right, bottom) < 0:
        raise ValueError(f"padding must be non-negative, got {tuple(padding)}")
    if mode == "constant":
        return F.pad(x, (left, right, top, bottom), mode="constant", value=fill)
    xb, single = _as_batch(x)
    xf, dtype = _to_float(xb)
    out = F.pad(xf, (left, right, top, bottom), mode=mode)
    return _unbatch(_restore(out, dtype), single)


def _padding4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """torchvision's convention: int, (left/right, top/bottom) or (left, top, right, bottom)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = tuple(int(v) for v in padding)
    if len(p) == 2:
        return p[0], p[1], p[0], p[1]
    if len(p) == 4:
        return p  # type: ignore[return-value]
    raise ValueError(f"padding must be an int or a sequence of 2 or 4 ints, got {padding}")


def crop(x: Tensor, top: int, left: int, height: int, width: int) -> Tensor:
    """The window ``[top:top+height, left:left+width]`` of the last two dims."""
    return x[..., top:top + height, left:left + width]


def resize(x: Tensor, size: Size, mode: str = "bilinear", antialias: bool = True) -> Tensor:
    """Resize the last two dims with ``F.interpolate``.

    ``size`` as ``(h, w)`` is exact; an int sets the shorter side, keeping the aspect ratio
    (torchvision's convention). Antialiasing applies to bilinear/bicubic downsampling.
    """
    xb, single = _as_batch(x)
    h, w = xb.shape[-2:]
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        oh, ow = (size, max(1, int(size * w / h))) if h <= w else (max(1, int(size * h / w)), size)
    else:
        oh, ow = _pair(size)
    if (oh, ow) == (h, w):
        return x
    xf, dtype = _to_float(xb)
    kwargs = {"antialias": antialias} if mode in ("bilinear", "bicubic") else {}
    align = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    out = F.interpolate(xf, size=(oh, ow), mode=mode, **kwargs, **align)
    return _unbatch(_restore(out, dtype), single)


def center_crop(x: Tensor, size: Size) -> Tensor:
    """Central ``size`` window; pads with zeros first when the image is smaller."""
    th, tw = _pair(size)
    h, w = x.shape[-2:]
    if th > h or tw > w:
        ph, pw = max(th - h, 0), max(tw - w, 0)
        x = pad(x, (pw // 2, ph // 2, pw - pw // 2, ph - ph // 2))
        h, w = x.shape[-2:]
    return crop(x, int(round((h - th) / 2.0)), int(round((w - tw) / 2.0)), th, tw)


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B`` (keeps a channel dim of 1); grey input unchanged."""
    if x.shape[-3] == 1:
        return x
    if x.shape[-3] != 3:
        raise ValueError(f"expected 1 or 3 channels, got {x.shape[-3]}")
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


# -- transforms --------------------------------------------------------------------------------
class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Tensor], Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: Tensor) -> Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class ToFloat:
    """uint8 in [0, 255] → float in [0, 1]; float input is only cast to ``dtype``."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype

    def __call__(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            return x.to(self.dtype).div_(255.0)
        if not x.is_floating_point():
            raise TypeError(f"ToFloat expects uint8 or float images, got {x.dtype}")
        return x.to(self.dtype)

    def __repr__(self) -> str:
        return f"ToFloat({self.dtype})"


class Normalize:
    """``(x - mean) / std`` per channel; :meth:`inverse` undoes it."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} channels but std has {len(self.std)}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    def __call__(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            raise TypeError(f"Normalize expects a float image (use ToFloat first), got {x.dtype}")
        c = x.shape[-3]
        if c != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channel statistics, image has {c} channels")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std

    def inverse(self) -> Normalize:
        """The Normalize that maps normalized images back: mean' = -mean/std, std' = 1/std."""
        return Normalize([-m / s for m, s in zip(self.mean, self.std, strict=True)], [1.0 / s for s in self.std])

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class Resize:
    """Resize to ``size`` (``(h, w)``, or an int for the shorter side); see :func:`resize`."""

    def __init__(self, size: Size, mode: str = "bilinear", antialias: bool = True) -> None:
        self.size, self.mode, self.antialias = size, mode, antialias

    def __call__(self, x: Tensor) -> Tensor:
        return resize(x, self.size, self.mode, self.antialias)

    def __repr__(self) -> str:
        return f"Resize({self.size}, mode={self.mode!r}, antialias={self.antialias})"


class CenterCrop:
    """Central crop of ``size`` (zero-padded first if the image is smaller)."""

    def __init__(self, size: Size) -> None:
        self.size = _pair(size)

    def __call__(self, x: Tensor) -> Tensor:
        return center_crop(x, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class RandomCrop:
    """Random ``size`` window after optional padding (torchvision's padding conventions).

    Args:
        size: output ``(h, w)`` or an int for a square.
        padding: int, ``(left/right, top/bottom)`` or ``(left, top, right, bottom)``.
        pad_if_needed: pad further when the (padded) image is smaller than ``size``.
        padding_mode: ``constant`` (with ``fill``), ``reflect``, ``replicate`` or ``circular``.
        generator: source of randomness (default: torch's global RNG).
    """

    def __init__(self, size: Size, padding: int | Sequence[int] | None = None, pad_if_needed: bool = False,
                 padding_mode: str = "constant", fill: float = 0.0, generator: torch.Generator | None = None) -> None:
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.size = _pair(size)
        self.padding = _padding4(padding) if padding is not None else (0, 0, 0, 0)
        self.pad_if_needed, self.padding_mode, self.fill, self.generator = pad_if_needed, padding_mode, fill, generator

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _as_batch(x)
        if any(self.padding):
            xb = pad(xb, self.padding, self.padding_mode, self.fill)
        th, tw = self.size
        h, w = xb.shape[-2:]
        if self.pad_if_needed and (h < th or w < tw):
            ph, pw = max(th - h, 0), max(tw - w, 0)
            xb = pad(xb, (pw, ph, pw, ph), self.padding_mode, self.fill)
            h, w = xb.shape[-2:]
        if h < th or w < tw:
            raise ValueError(f"crop size {(th, tw)} is larger than the (padded) image {(h, w)}")
        n = xb.shape[0]
        top = _randint(n, h - th + 1, self.generator)
        left = _randint(n, w - tw + 1, self.generator)
        windows = xb.unfold(2, th, 1).unfold(3, tw, 1)  # N×C×(h-th+1)×(w-tw+1)×th×tw, a view
        batch = torch.arange(n, device=xb.device)
        out = windows[batch, :, top.to(xb.device), left.to(xb.device)]  # N×C×th×tw
        return _unbatch(out, single)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, padding={self.padding}, padding_mode={self.padding_mode!r})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p`` (per sample)."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p, self.generator = p, generator

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _as_batch(x)
        flip = (torch.rand(xb.shape[0], generator=self.generator, dtype=torch.float64) < self.p).to(xb.device)
        out = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
        return _unbatch(out, single)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomResizedCrop:
    """Crop a random area fraction ``scale`` with aspect ratio in ``ratio``, then resize to ``size``.

    The crop box is drawn as in torchvision (10 tries of log-uniform ratio, then a central fallback).
    """

    def __init__(self, size: Size, scale: tuple[float, float] = (0.08, 1.0),
                 ratio: tuple[float, float] = (3 / 4, 4 / 3), antialias: bool = True,
                 generator: torch.Generator | None = None) -> None:
        if scale[0] > scale[1] or ratio[0] > ratio[1] or scale[0] <= 0 or ratio[0] <= 0:
            raise ValueError(f"scale and ratio must be positive (min, max) pairs, got {scale}, {ratio}")
        self.size, self.scale, self.ratio = _pair(size), scale, ratio
        self.antialias, self.generator = antialias, generator

    def box(self, h: int, w: int) -> tuple[int, int, int, int]:
        """One random ``(top, left, height, width)`` for an ``h×w`` image."""
        area = h * w
        log_r = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * float(_uniform(1, *self.scale, self.generator))
            aspect = math.exp(float(_uniform(1, *log_r, self.generator)))
            cw = int(round(math.sqrt(target * aspect)))
            ch = int(round(math.sqrt(target / aspect)))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(_randint(1, h - ch + 1, self.generator))
                left = int(_randint(1, w - cw + 1, self.generator))
                return top, left, ch, cw
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            cw, ch = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            ch, cw = h, int(round(h * self.ratio[1]))
        else:
            cw, ch = w, h
        return (h - ch) // 2, (w - cw) // 2, ch, cw

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _as_batch(x)
        h, w = xb.shape[-2:]
        outs = [resize(crop(img, *self.box(h, w)), self.size, antialias=self.antialias) for img in xb]
        return _unbatch(torch.stack(outs), single)

    def __repr__(self) -> str:
        return f"RandomResizedCrop({self.size}, scale={self.scale}, ratio={self.ratio})"


class ColorJitter:
    """Random brightness, contrast and saturation factors per sample, applied in that order.

    Each factor is uniform in ``[max(0, 1 - v), 1 + v]``. Brightness scales the image, contrast blends
    with the image's mean grey level, saturation blends with its greyscale version; results clamp to
    [0, 1]. Float input in [0, 1]; uint8 input is converted and rounded back.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        for name, v in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if v < 0:
                raise ValueError(f"{name} must be non-negative, got {v}")
        self.brightness, self.contrast, self.saturation, self.generator = brightness, contrast, saturation, generator

    def _factors(self, n: int, v: float) -> Tensor | None:
        return _uniform(n, max(0.0, 1.0 - v), 1.0 + v, self.generator) if v > 0 else None

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _as_batch(x)
        uint8 = xb.dtype == torch.uint8
        xf = xb.float().div(255.0) if uint8 else xb
        n = xf.shape[0]
        b, c, s = (self._factors(n, v) for v in (self.brightness, self.contrast, self.saturation))

        def view(f: Tensor) -> Tensor:
            return f.to(xf.dtype).to(xf.device).view(-1, 1, 1, 1)

        if b is not None:
            xf = (xf * view(b)).clamp(0.0, 1.0)
        if c is not None:
            mean = rgb_to_grayscale(xf).mean(dim=(-3, -2, -1), keepdim=True)
            xf = (view(c) * xf + (1 - view(c)) * mean).clamp(0.0, 1.0)
        if s is not None and xf.shape[-3] == 3:
            gray = rgb_to_grayscale(xf)
            xf = (view(s) * xf + (1 - view(s)) * gray).clamp(0.0, 1.0)
        out = (xf * 255.0).round().to(torch.uint8) if uint8 else xf
        return _unbatch(out, single)

    def __repr__(self) -> str:
        return f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, saturation={self.saturation})"


class Cutout:
    """Zero ``n_holes`` squares of side ``size`` centred uniformly in the image (clipped at borders)."""

    def __init__(self, size: int, n_holes: int = 1, fill: float = 0.0,
                 generator: torch.Generator | None = None) -> None:
        if size <= 0 or n_holes <= 0:
            raise ValueError(f"size and n_holes must be positive, got {size}, {n_holes}")
        self.size, self.n_holes, self.fill, self.generator = size, n_holes, fill, generator

    def __call__(self, x: Tensor) -> Tensor:
        xb, single = _as_batch(x)
        n, _, h, w = xb.shape
        rows = torch.arange(h)[None, :, None]
        cols = torch.arange(w)[None, None, :]
        mask = torch.zeros(n, h, w, dtype=torch.bool)
        for _ in range(self.n_holes):
            cy = _randint(n, h, self.generator)[:, None, None]
            cx = _randint(n, w, self.generator)[:, None, None]
            half = self.size // 2
            mask |= ((rows >= cy - half) & (rows < cy - half + self.size)
                     & (cols >= cx - half) & (cols < cx - half + self.size))
        out = xb.masked_fill(mask[:, None].to(xb.device), self.fill)
        return _unbatch(out, single)

    def __repr__(self) -> str:
        return f"Cutout(size={self.size}, n_holes={self.n_holes})"


class BatchTransform:
    """Adapt an image transform to the trainer's ``batch_transform(x, y) -> (x, y)`` hook (labels unchanged)."""

    def __init__(self, transform: Callable[[Tensor], Tensor]) -> None:
        self.transform = transform

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(x), y

    def __repr__(self) -> str:
        return f"BatchTransform({self.transform!r})"
