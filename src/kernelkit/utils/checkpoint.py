"""Checkpoint files that never unpickle arbitrary code.

``.safetensors`` files are read with safetensors; legacy ``.pt``/``.pth``/``.bin`` files with
``torch.load(weights_only=True)``. Any failure names the file and says what is wrong with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from kernelkit.utils.io import atomic_path


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or of an unsupported kind."""


def save_tensors(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Atomically write ``tensors`` as safetensors (contiguous CPU copies; shared storage is cloned)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)


def load_tensors(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or (weights only) ``.pt``/``.pth``/``.bin``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint is empty (0 bytes); the write was probably interrupted")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device=str(device))
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{path}: not a readable safetensors file ({exc}); is it truncated or corrupt?"
            ) from None
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError, ...)
        raise CheckpointError(
            f"{path}: cannot load as a weights-only torch checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
            "it may be truncated, corrupt, or contain pickled code (not allowed)"
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a mapping of parameter names to tensors")
    return obj


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata stored in a safetensors header."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_json_state(path: str | os.PathLike[str]) -> dict:
    """Read a JSON sidecar state file with a clear error when it is damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: state file not found") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: state file is not valid JSON ({exc.msg}); truncated?") from None
