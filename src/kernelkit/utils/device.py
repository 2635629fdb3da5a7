"""Device and thread selection."""

from __future__ import annotations

import os

import torch


def resolve_device(device: str | None = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then MPS, then CPU; an explicit name is validated."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    return dev


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count (``None``/0 keeps the default); return the count in use."""
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    return torch.get_num_threads()
