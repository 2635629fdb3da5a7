"""Device and thread selection."""

from __future__ import annotations

import os
import re

import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N, mps"  # the device names kernelkit accepts


def resolve_device(device: str | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an explicit name (one of :data:`DEVICE_CHOICES`) is
    validated and must be available here."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:[0-9]+)?", device):
        raise ValueError(f"invalid device {device!r}; expected one of {DEVICE_CHOICES}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} requested but this machine has {torch.cuda.device_count()} CUDA "
                         f"device(s) (cuda:0 .. cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"device {device!r} requested but MPS is not available on this machine")
    return dev


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (``None``/0 keeps the default); return the count in use."""
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()
