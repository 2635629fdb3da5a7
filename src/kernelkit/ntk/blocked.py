"""Kernel matrices at dataset scale: computed block by block, kept on the device, on the host or on disk.

:func:`kernel_blocks` calls a kernel function on ``block × block`` pieces of ``(x1, x2)`` and writes each
piece into the result. With ``out=<path>.npy`` the result is a file-backed numpy array, so an ``(N1, N2)``
kernel never has to fit in memory, and the run can be killed at any moment and restarted: once a block's
data is written to the file and synced, its index is recorded in ``<path>.npy.done.<rank>.json`` (written
atomically), and a rerun with the same inputs skips the recorded blocks. Under ``torchrun`` (an initialized
``torch.distributed`` process group) the blocks are split statically over the ranks (block ``b`` of the
fixed block list goes to rank ``b mod world``); each rank writes its blocks, and rank 0 checks after a
barrier that every block is recorded. Every block is computed by the same call whatever the world size, so
the matrix is bitwise the single-process one::

    from kernelkit import ntk
    fn = ntk.blocked.kernel_fn(ntk.analytic, net, get="ntk")
    k = ntk.blocked.kernel_blocks(fn, x, block=1024, out="kernels/ntk.npy")   # resumes if interrupted
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from kernelkit.console import ProgressBar
from kernelkit.ntk.analytic_kernel import check_inputs
from kernelkit.train import distributed
from kernelkit.utils.io import read_json, write_json

__all__ = ["KernelFn", "block_tasks", "done_blocks", "kernel_blocks", "kernel_fn"]

KernelFn = Callable[[Tensor, Tensor | None], Tensor]
"""``fn(xa, xb) -> (len(xa), len(xb))`` kernel; ``xb is None`` asks for the symmetric ``fn(xa, xa)``."""

OUTS = ("device", "host")


def kernel_fn(kernel: Callable[..., Any], model: Any, get: str | Sequence[str] | None = None,
              **kwargs: Any) -> KernelFn:
    """Wrap :func:`~kernelkit.ntk.analytic`, :func:`~kernelkit.ntk.empirical` or
    :func:`~kernelkit.ntk.monte_carlo` as a block function ``fn(xa, xb)``.

    ``get`` picks the field of a result with several kernels (``"nngp"`` or ``"ntk"`` of
    :class:`~kernelkit.ntk.Kernels` / :class:`~kernelkit.ntk.MonteCarloKernels`); a sequence such as
    ``("nngp", "ntk")`` stacks them into ``(len(get), len(xa), len(xb))`` blocks, computed in one call.
    ``kwargs`` go to ``kernel`` (``get`` is passed on too, so only the wanted kernels are computed).
    """
    names = None if get is None else ((get,) if isinstance(get, str) else tuple(get))
    extra = dict(kwargs) if names is None else {**kwargs, "get": names}

    def fn(xa: Tensor, xb: Tensor | None) -> Tensor:
        result = kernel(model, xa, xb, **extra)
        if isinstance(result, Tensor):
            return result
        if names is None:
            raise ValueError(f"{type(result).__name__} holds several kernels; pass get='nngp' or get='ntk'")
        values = [getattr(result, g) for g in names]
        missing = [g for g, v in zip(names, values, strict=True) if v is None]
        if missing:
            raise ValueError(f"the kernel function returned no {missing[0]!r} kernel")
        return values[0] if isinstance(get, str) else torch.stack(values)

    return fn


def _slices(n: int, block: int) -> list[slice]:
    return [slice(i, min(i + block, n)) for i in range(0, n, block)]


def block_tasks(n1: int, n2: int, block: int, symmetric: bool) -> list[tuple[int, int]]:
    """The fixed, ordered list of ``(row block, column block)`` indices to compute (upper triangle if
    ``symmetric``: the lower one is its mirror)."""
    rows, cols = -(-n1 // block), -(-n2 // block)
    return [(i, j) for i in range(rows) for j in range(i if symmetric else 0, cols)]


def _checked_inputs(x1: Tensor, x2: Tensor | None, block: int) -> tuple[Tensor, Tensor | None]:
    """:func:`check_inputs` with the finiteness check done ``block`` rows at a time (memory of one block)."""
    xs = [None if x is None else torch.as_tensor(x) for x in (x1, x2)]
    a, b = xs
    assert a is not None
    # batch axis, non-empty, matching feature shapes (on the first rows only)
    check_inputs(a if a.dim() < 2 else a[:1], b if b is None or b.dim() < 2 else b[:1])
    for name, x in (("x1", a), ("x2", b)):
        if x is not None and x.is_floating_point():
            bad = sum(int((~torch.isfinite(part)).sum()) for part in x.split(block))
            if bad:
                raise ValueError(f"{name} contains {bad} NaN/inf value(s)")
    return a, b


def _fingerprint(x1: Tensor, x2: Tensor | None, block: int, dtype: np.dtype[Any],
                 shape: tuple[int, ...]) -> dict[str, Any]:
    h = hashlib.sha256()
    for x in (x1, x2):
        if x is not None:
            h.update(str((x.dtype, tuple(x.shape))).encode())
            h.update(x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data)  # no copy
    return {"shape": list(shape), "block": block, "symmetric": x2 is None,
            "dtype": dtype.str, "inputs_sha256": h.hexdigest()}


def _done_path(path: Path, rank: int) -> Path:
    return path.with_name(f"{path.name}.done.{rank}.json")


def done_blocks(path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> set[tuple[int, int]]:
    """Blocks recorded as finished for the memmap at ``path`` (by any rank); with ``meta``, records made for
    other inputs, block size or dtype raise ``ValueError``."""
    path = Path(path)
    done: set[tuple[int, int]] = set()
    for f in sorted(path.parent.glob(f"{glob.escape(path.name)}.done.*.json")):
        rec = read_json(f)
        if meta is not None and rec.get("meta") != meta:
            raise ValueError(f"{f} records blocks of another kernel (inputs, block size or dtype differ); "
                             f"delete {path} and its .done files or pass resume=False")
        done.update((int(i), int(j)) for i, j in rec["blocks"])
    return done


class _NpyBlockWriter:
    """Writes blocks into the data of an ``.npy`` file with positioned writes (``os.pwrite``), so the process
    holds one block, not the pages of a mapping of the whole matrix; :meth:`sync` makes them durable."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        mm = np.lib.format.open_memmap(path, mode="r")
        if mm.shape != shape or mm.dtype != dtype:
            raise ValueError(f"{path} holds a {mm.dtype} array of shape {mm.shape}, expected {dtype} {shape}")
        self.offset, self.n1, self.n2, self.itemsize = int(mm.offset), shape[-2], shape[-1], dtype.itemsize
        del mm
        self.fd = os.open(path, os.O_RDWR)

    def write(self, r0: int, c0: int, block: np.ndarray[Any, Any]) -> None:
        """``block`` of shape ``(..., rows, cols)`` at rows ``r0:`` and columns ``c0:`` of every matrix."""
        mats = np.ascontiguousarray(block).reshape(-1, *block.shape[-2:])
        for s, mat in enumerate(mats):
            for a, row in enumerate(mat):
                pos = (s * self.n1 + r0 + a) * self.n2 + c0
                os.pwrite(self.fd, row.tobytes(), self.offset + pos * self.itemsize)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


def _from_main(message: str) -> str:
    """Rank 0's ``message`` on every rank (a collective, so it also synchronizes the ranks)."""
    if not distributed.is_distributed():
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return str(box[0])


def _open_npy(path: Path, shape: tuple[int, ...], dtype: np.dtype[Any], meta: dict[str, Any],
              resume: bool) -> tuple[_NpyBlockWriter, set[tuple[int, int]]]:
    """Rank 0 creates (or reopens) the file; the other ranks open it after hearing that it is ready (an error
    found by rank 0 is raised on every rank)."""
    error = ""
    if distributed.is_main():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            done = done_blocks(path, meta) if resume and path.exists() else set()
            if not done:
                for f in path.parent.glob(f"{glob.escape(path.name)}.done.*.json"):
                    f.unlink()
                np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape).flush()
        except (OSError, ValueError) as exc:
            error = str(exc)
    error = _from_main(error)
    if error:
        raise ValueError(error)
    return _NpyBlockWriter(path, shape, dtype), done_blocks(path, meta)


def _check_block(k: Tensor, lead: tuple[int, ...], rows: int, cols: int) -> Tensor:
    want = (*lead, rows, cols)
    if not isinstance(k, Tensor) or tuple(k.shape) != want:
        shape = tuple(k.shape) if isinstance(k, Tensor) else type(k).__name__
        raise ValueError(f"the kernel function must return a {want} tensor for a block, got {shape}")
    return k


def _leading_shape(fn: KernelFn, x1: Tensor, xb: Tensor, symmetric: bool) -> tuple[int, ...]:
    """The stacking axes of ``fn``'s blocks (``()`` for one kernel), from a ``1 × 1`` block."""
    k = fn(x1[:1], None if symmetric else xb[:1])
    if not isinstance(k, Tensor) or k.dim() < 2 or tuple(k.shape[-2:]) != (1, 1):
        shape = tuple(k.shape) if isinstance(k, Tensor) else type(k).__name__
        raise ValueError(f"the kernel function must return a (..., 1, 1) tensor for a 1 x 1 block, got {shape}")
    return tuple(k.shape[:-2])


def kernel_blocks(fn: KernelFn, x1: Tensor, x2: Tensor | None = None, block: int = 1024,
                  out: str | os.PathLike[str] = "device", dtype: torch.dtype = torch.float64,
                  resume: bool = True, progress: bool = True, release_memory: bool = True) -> Tensor:
    """The ``(N1, N2)`` kernel ``fn(x1, x2)`` computed in ``block × block`` pieces.

    Args:
        fn: ``fn(xa, xb) -> (len(xa), len(xb))`` tensor, or ``(S, len(xa), len(xb))`` for ``S`` stacked
            kernels, e.g. from :func:`kernel_fn`; it is called with ``xb=None`` for diagonal blocks of a
            symmetric kernel, and first once on a ``1 × 1`` block to learn the shape.
        x1, x2: inputs with a batch axis; ``x2=None`` means ``x2 = x1`` and then only blocks on and above the
            diagonal are computed, the lower triangle being their transpose (diagonal blocks are symmetrized
            as ``(K + Kᵀ)/2``, so the result is exactly symmetric).
        block: rows and columns per block.
        out: ``"device"`` (the result on the device of the blocks), ``"host"`` (CPU memory) or the path of a
            ``.npy`` file: each block is written to it with positioned writes and made durable (fsync) before
            it is recorded as finished, so memory holds one block at a time whatever ``N1 × N2`` is.
        dtype: dtype of the result (float64 by default).
        resume: with a file ``out``, skip the blocks recorded by an earlier run on the same inputs (the
            records name the inputs' SHA-256, the block size and the dtype); ``False`` starts over.
        progress: show a progress bar (on rank 0).
        release_memory: after each block on a CUDA device, return cached memory to the driver.

    Returns:
        The ``(N1, N2)`` kernel (``(S, N1, N2)`` for stacked kernels); for a file ``out`` a tensor over a
        writable memmap of the file (pages are read lazily).

    Under an initialized ``torch.distributed`` process group the blocks are split over the ranks; every rank
    returns the whole matrix (blocks are broadcast from their rank for in-memory results; a file is shared, so
    the ranks must see one file system coherently, e.g. one machine).
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    x1, x2 = _checked_inputs(x1, x2, block)
    symmetric = x2 is None
    xb = x1 if x2 is None else x2
    n1, n2 = x1.shape[0], xb.shape[0]
    rows, cols = _slices(n1, block), _slices(n2, block)
    tasks = block_tasks(n1, n2, block, symmetric)
    rank, world = distributed.rank(), distributed.world_size()
    mine = tasks[rank::world]
    on_disk = str(out) not in OUTS
    np_dtype = np.dtype(torch.empty((), dtype=dtype).numpy().dtype)
    with torch.no_grad():
        lead = _leading_shape(fn, x1, xb, symmetric)
    shape = (*lead, n1, n2)
    result: Tensor | None = None
    done: set[tuple[int, int]] = set()
    path = Path(out)
    meta = _fingerprint(x1, x2, block, np_dtype, shape)
    writer: _NpyBlockWriter | None = None
    recorded: list[tuple[int, int]] = []
    if on_disk:
        writer, done = _open_npy(path, shape, np_dtype, meta, resume)
        recorded = sorted(b for b in done if b in set(mine))
    todo = [b for b in mine if b not in done]
    try:
        with ProgressBar("kernel blocks", total=len(mine), disable=not progress or rank != 0) as bar:
            bar.advance(len(mine) - len(todo))
            for i, j in todo:
                r, c = rows[i], cols[j]
                with torch.no_grad():
                    k = _check_block(fn(x1[r], None if symmetric and i == j else xb[c]), lead, r.stop - r.start,
                                     c.stop - c.start)
                if symmetric and i == j:
                    k = (k + k.transpose(-1, -2)) / 2  # exactly symmetric, like the mirrored off-diagonal blocks
                if writer is not None:
                    host = k.detach().to("cpu", dtype).numpy()
                    writer.write(r.start, c.start, host)
                    if symmetric and i != j:
                        writer.write(c.start, r.start, host.swapaxes(-1, -2))
                    writer.sync()
                    recorded.append((i, j))
                    write_json(_done_path(path, rank), {"meta": meta, "blocks": recorded})
                else:
                    if result is None:
                        device = k.device if out == "device" else torch.device("cpu")
                        result = torch.zeros(shape, dtype=dtype, device=device)
                    k = k.to(device=result.device, dtype=dtype)
                    result[..., r, c] = k
                    if symmetric and i != j:
                        result[..., c, r] = k.transpose(-1, -2)
                del k
                if release_memory and torch.cuda.is_available():
                    torch.cuda.empty_cache()
                bar.advance(1, info=f"block {i},{j}")
    finally:
        if writer is not None:
            writer.close()
    if on_disk:
        _validate(path, meta, tasks)
        return torch.from_numpy(np.lib.format.open_memmap(path, mode="r+"))
    if result is None:  # nothing was computed on this rank
        result = torch.zeros(shape, dtype=dtype, device=x1.device if out == "device" else "cpu")
    if world > 1:
        _share(result, tasks, rows, cols, symmetric, world)
    return result


def _share(result: Tensor, tasks: Sequence[tuple[int, int]], rows: list[slice], cols: list[slice],
           symmetric: bool, world: int) -> None:
    """Broadcast every block from the rank that computed it."""
    dev = distributed.comm_device()
    for b, (i, j) in enumerate(tasks):
        r, c = rows[i], cols[j]
        buf = result[..., r, c].to(dev).contiguous()
        dist.broadcast(buf, src=b % world)
        result[..., r, c] = buf.to(result.device)
        if symmetric and i != j:
            result[..., c, r] = result[..., r, c].transpose(-1, -2)


def _validate(path: Path, meta: dict[str, Any], tasks: Sequence[tuple[int, int]]) -> None:
    """Rank 0 checks that every block is recorded (after all ranks finished); every rank raises if not."""
    distributed.barrier()
    error = ""
    if distributed.is_main():
        missing = sorted(set(tasks) - done_blocks(path, meta))
        if missing:
            error = f"{path}: {len(missing)} block(s) were not recorded as finished, e.g. {missing[:3]}"
    error = _from_main(error)
    if error:
        raise RuntimeError(error)
