"""Turn audio, time series, point clouds and video into C′×H×W maps for a UniRepLKNet ([P] §3.3, eqs. 2–5).

Only the first convolution of the network changes (``in_chans``): audio and time series give 1 channel,
point-cloud views and video 3. Pure tensor functions plus one small learnable module
(:class:`TimeSeriesToMap`); none of them read files.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

# ----------------------------------------------------------------------------------------------- audio


def hz_to_mel(f: torch.Tensor | float) -> torch.Tensor:
    """HTK/Kaldi mel scale: ``1127·ln(1 + f/700)``."""
    return 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_filterbank(n_fft: int, n_mels: int = 128, sample_rate: int = 16000, f_min: float = 20.0,
                   f_max: float | None = None) -> torch.Tensor:
    """``(n_mels, n_fft//2 + 1)`` triangular filters, equally spaced and triangular on the mel scale (Kaldi style).

    Filter ``m`` rises linearly in mel from ``mel[m]`` to ``mel[m+1]`` and falls to ``mel[m+2]``, where
    ``mel`` are ``n_mels + 2`` equally spaced points between ``f_min`` and ``f_max`` (default Nyquist).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={f_min}, f_max={f_max}")
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    mel = hz_to_mel(freqs)
    edges = torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (mel[None, :] - left) / (centre - left)
    down = (right - mel[None, :]) / (right - centre)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


def log_mel_fbank(waveform: torch.Tensor, sample_rate: int = 16000, n_mels: int = 128, frame_length_ms: float = 25.0,
                  frame_shift_ms: float = 10.0, eps: float = 1e-10) -> torch.Tensor:
    """Log mel filterbank energies ``(..., frames, n_mels)`` of a waveform ``(..., samples)``.

    Kaldi-style framing (25 ms windows every 10 ms, DC removal, pre-emphasis 0.97, Hann window, FFT
    size the next power of two) then power spectrum → mel filters → ``log(max(e, eps))``.
    """
    if waveform.dim() < 1:
        raise ValueError("waveform must have a time dimension")
    win = int(round(sample_rate * frame_length_ms / 1000))
    hop = int(round(sample_rate * frame_shift_ms / 1000))
    if waveform.shape[-1] < win:
        raise ValueError(f"waveform of {waveform.shape[-1]} samples is shorter than one {frame_length_ms} ms frame "
                         f"({win} samples at {sample_rate} Hz)")
    n_fft = 1 << (win - 1).bit_length()
    frames = waveform.float().unfold(-1, win, hop)  # (..., T, win)
    frames = frames - frames.mean(-1, keepdim=True)
    frames = torch.cat([frames[..., :1] * (1 - 0.97), frames[..., 1:] - 0.97 * frames[..., :-1]], dim=-1)
    frames = frames * torch.hann_window(win, periodic=False, dtype=frames.dtype, device=frames.device)
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)  # (..., T, n_fft//2+1)
    fb = mel_filterbank(n_fft, n_mels, sample_rate).to(power)
    return torch.log(torch.clamp(power @ fb.T, min=eps))


def audio_to_map(waveform: torch.Tensor, sample_rate: int = 16000, n_mels: int = 128, frames: int = 128,
                 layout: Literal["code", "paper"] = "code") -> torch.Tensor:
    """Waveform ``(B, samples)`` → ``(B, 1, n_mels, frames)`` (official code) or ``(B, 1, frames, n_mels)`` (paper).

    The fbank is cut or zero-padded to ``frames`` frames (128 for Speech Commands V2). The paper writes
    the map as T×F; the official audio code feeds F×T (``unsqueeze(1).transpose(2, 3)``), the default here.
    """
    if waveform.dim() != 2:
        raise ValueError(f"expected a (batch, samples) waveform, got shape {tuple(waveform.shape)}")
    fb = log_mel_fbank(waveform, sample_rate, n_mels)  # (B, T, F)
    t = fb.shape[1]
    fb = F.pad(fb, (0, 0, 0, frames - t)) if t < frames else fb[:, :frames]
    fb = fb.unsqueeze(1)  # (B, 1, T, F)
    if layout == "paper":
        return fb
    if layout == "code":
        return fb.transpose(2, 3)
    raise ValueError(f"layout must be 'code' or 'paper', got {layout!r}")


# ----------------------------------------------------------------------------------------- time series


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Transformer sine/cosine position table ``(length, dim)``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return table


def embedding_to_map(tokens: torch.Tensor, height: int | None = None) -> torch.Tensor:
    """Reshape embedded tokens ``(B, L, D′)`` to ``(B, 1, H, W)`` with ``H·W = L·D′`` (square when possible).

    The paper's time-series setting has L = 48 and D′ = 768, giving 1×192×192.
    """
    b, length, dim = tokens.shape
    n = length * dim
    if height is None:
        height = math.isqrt(n)
        if height * height != n:
            raise ValueError(f"L·D′ = {length}·{dim} = {n} is not a perfect square; pass height=")
    if n % height:
        raise ValueError(f"height {height} does not divide L·D′ = {n}")
    return tokens.reshape(b, 1, height, n // height)


class TimeSeriesToMap(nn.Module):
    """(B, L, D) series → token embedding (circular conv, k=3, as in Informer/Corrformer) + positions → 1×H×W map."""

    def __init__(self, n_vars: int, d_model: int = 768, height: int | None = None):
        super().__init__()
        self.value = nn.Conv1d(n_vars, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
        self.d_model, self.height = d_model, height

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected a (batch, length, variables) series, got shape {tuple(x.shape)}")
        if x.shape[-1] != self.value.in_channels:
            raise ValueError(f"series has {x.shape[-1]} variables, the embedding expects {self.value.in_channels}")
        tokens = self.value(x.transpose(1, 2)).transpose(1, 2)  # (B, L, d_model)
        tokens = tokens + sinusoidal_positions(x.shape[1], self.d_model).to(tokens)
        return embedding_to_map(tokens, self.height)


# ----------------------------------------------------------------------------------------- point cloud


def _rotation_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def point_cloud_to_views(points: torch.Tensor, views: int = 4, size: int = 224, elevation: float = 0.0) -> torch.Tensor:
    """Points ``(B, N, 3)`` → ``(B, views, 3, size, size)`` orthographic renderings from ``views`` azimuths.

    A fixed (not learned) stand-in for the P2P projection encoder of the paper: the cloud is centred and
    scaled into the unit ball, rotated about the vertical axis by ``2πv/views`` (and tilted by
    ``elevation``), and splatted onto a ``size²`` grid. Channels: nearness of the closest point
    (z-buffer, 1 = nearest), point density (normalised count), height of the closest point.
    """
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"expected points of shape (batch, N, 3), got {tuple(points.shape)}")
    b, n, _ = points.shape
    p = points - points.mean(1, keepdim=True)
    p = p / p.norm(dim=-1).amax(1).clamp_min(1e-8)[:, None, None]
    tilt = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(elevation), -math.sin(elevation)],
                         [0.0, math.sin(elevation), math.cos(elevation)]])
    out = points.new_zeros(b, views, 3, size, size)
    for v in range(views):
        q = p @ (tilt @ _rotation_y(2 * math.pi * v / views)).T.to(p)
        ix = ((q[..., 0] + 1) / 2 * (size - 1)).round().long().clamp(0, size - 1)
        iy = ((1 - (q[..., 1] + 1) / 2) * (size - 1)).round().long().clamp(0, size - 1)
        flat = iy * size + ix  # (B, N)
        near = (1 - q[..., 2]) / 2  # in [0, 1], larger = closer to the viewer
        depth = points.new_zeros(b, size * size).scatter_reduce(1, flat, near, reduce="amax", include_self=True)
        count = points.new_zeros(b, size * size).scatter_add(1, flat, torch.ones_like(near))
        # height of the nearest point per pixel: keep points whose nearness equals the pixel maximum
        is_front = near >= depth.gather(1, flat) - 1e-7
        height = points.new_zeros(b, size * size).scatter_reduce(
            1, flat, torch.where(is_front, (q[..., 1] + 1) / 2, torch.zeros_like(near)), reduce="amax",
            include_self=True)
        out[:, v, 0] = depth.view(b, size, size)
        out[:, v, 1] = (count / count.amax(1, keepdim=True).clamp_min(1)).view(b, size, size)
        out[:, v, 2] = height.view(b, size, size)
    return out


# --------------------------------------------------------------------------------------------- video


def video_to_map(video: torch.Tensor, arrangement: Literal["grid", "reshape"] = "grid") -> torch.Tensor:
    """Video ``(B, C, T, H, W)`` (T a square, e.g. 16) → one ``(B, C, √T·H, √T·W)`` map (HW/hw = T).

    ``"grid"`` is the paper's arrangement: frames tiled row by row in a √T×√T grid (tile (i, j) is
    frame i·√T + j). ``"reshape"`` is what the official video code does (``reshape(B, C, 4H, 4W)``
    for T=16): frames are stacked vertically, each folded into H/√T rows of √T source rows side by side;
    it is not a grid of frames.
    """
    if video.dim() != 5:
        raise ValueError(f"expected a (batch, channels, frames, height, width) video, got {tuple(video.shape)}")
    b, c, t, h, w = video.shape
    g = math.isqrt(t)
    if g * g != t:
        raise ValueError(f"the number of frames must be a perfect square (16 in the paper), got {t}")
    if arrangement == "reshape":
        if h % g:
            raise ValueError(f"the official reshape needs height divisible by √T = {g}, got {h}")
        return video.reshape(b, c, g * h, g * w)
    if arrangement == "grid":
        return video.reshape(b, c, g, g, h, w).permute(0, 1, 2, 4, 3, 5).reshape(b, c, g * h, g * w)
    raise ValueError(f"arrangement must be 'grid' or 'reshape', got {arrangement!r}")


# ------------------------------------------------------------------------------------------ dispatch

MODALITY_CHANNELS = {"audio": 1, "timeseries": 1, "pointcloud": 3, "video": 3}


def modality_maps(modality: str, raw: torch.Tensor, *, sample_rate: int = 16000, n_mels: int = 128,
                  frames: int = 128, d_model: int = 768, embedding: nn.Module | None = None, views: int = 4,
                  size: int = 224, arrangement: Literal["grid", "reshape"] = "grid") -> tuple[torch.Tensor, int]:
    """A batch of raw inputs of ``modality`` → ``(maps (N, C', H, W), maps per sample)`` for a UniRepLKNet.

    ``audio`` ``(B, samples)`` → :func:`audio_to_map`; ``timeseries`` ``(B, length, variables)`` →
    ``embedding`` (default: a new :class:`TimeSeriesToMap` of width ``d_model``); ``pointcloud``
    ``(B, points, 3)`` → :func:`point_cloud_to_views`, the ``views`` renderings of a sample as
    consecutive maps (``maps per sample = views``); ``video`` ``(B, C, T, H, W)`` → :func:`video_to_map`.
    The network's ``in_chans`` is ``maps.shape[1]`` (:data:`MODALITY_CHANNELS`).
    """
    if modality == "audio":
        return audio_to_map(raw, sample_rate, n_mels, frames), 1
    if modality == "timeseries":
        if raw.dim() != 3:
            raise ValueError(f"expected a (batch, length, variables) series, got shape {tuple(raw.shape)}")
        embed = embedding if embedding is not None else TimeSeriesToMap(raw.shape[-1], d_model)
        return embed(raw.float()), 1
    if modality == "pointcloud":
        v = point_cloud_to_views(raw, views, size)
        return v.reshape(-1, *v.shape[2:]), views
    if modality == "video":
        return video_to_map(raw, arrangement), 1
    raise ValueError(f"unknown modality {modality!r}; expected one of {', '.join(MODALITY_CHANNELS)}")
