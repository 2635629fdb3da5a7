"""Thin helpers over ``torch.distributed`` for runs launched with ``torchrun``.

``torchrun --nproc_per_node N script.py`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`init_from_env` turns them into an initialised process
group (gloo on CPU, nccl on CUDA). Everything here also works, trivially, in a single process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the default process group from torchrun's environment; return whether distributed.

    Does nothing (returns ``False``) when ``WORLD_SIZE`` is unset or 1; returns ``True`` if a group is
    already initialised. ``backend`` defaults to nccl when CUDA is available, gloo otherwise.
    """
    if is_distributed():
        return True
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return False
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; launch with torchrun")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and logs."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def device_for_rank(device: str | torch.device) -> torch.device:
    """Map a bare ``cuda`` to ``cuda:LOCAL_RANK`` under DDP; other devices are returned unchanged."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", local_rank() if is_distributed() else torch.cuda.current_device())
    return dev


def comm_device() -> torch.device:
    """Where collective tensors must live for the current backend (CUDA for nccl, else CPU)."""
    if is_distributed() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over ranks (a new tensor on ``t``'s device; ``t`` itself in a single process)."""
    if not is_distributed():
        return t
    buf = t.detach().to(comm_device()).clone()
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf.to(t.device)


def all_gather_tensor(t: torch.Tensor) -> list[torch.Tensor]:
    """``t`` from every rank, in rank order, as CPU tensors (shapes must agree across ranks)."""
    if not is_distributed():
        return [t.detach().cpu()]
    buf = t.detach().to(comm_device()).contiguous()
    out = [torch.empty_like(buf) for _ in range(world_size())]
    dist.all_gather(out, buf)
    return [o.cpu() for o in out]


def cleanup() -> None:
    """Destroy the process group if one is initialised."""
    if is_distributed():
        dist.destroy_process_group()
