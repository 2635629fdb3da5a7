"""Training state as tensors + JSON: optimizer state, RNG states, and the on-disk checkpoint layout.

Layout inside ``<out_dir>/checkpoints/``::

    step-00000120.safetensors   model.*, ema.*, optim.*, rank<r>.* (RNG states, epoch sums)
    step-00000120.json          step, epoch counters, history, config, optimizer hyperparameters,
                                file size and SHA-256 of the tensors file
    latest.json                 pointer {"step", "tensors", "state"}; written last

Every file is written atomically (temporary file + rename) and the pointer only after both files of
its pair are complete, so a kill at any moment leaves the previous pair loadable. Nothing is pickled.
Loading falls back from a damaged latest pair (or pointer) to the newest intact older pair, with a warning;
``keep_checkpoints >= 2`` is what makes that fallback possible.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save

from kernelkit.utils.checkpoint import CheckpointError, load_json_state, load_tensors
from kernelkit.utils.io import file_sha256, to_jsonable, write_bytes, write_json

FORMAT_VERSION = 1
POINTER = "latest.json"


# -- RNG states as tensors ----------------------------------------------------------------------
def capture_rng() -> dict[str, torch.Tensor]:
    """torch CPU, CUDA (if initialised), NumPy and Python ``random`` states, each as a tensor."""
    out = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i in range(torch.cuda.device_count()):
            out[f"cuda{i}"] = torch.cuda.get_rng_state(i)
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    if kind != "MT19937":  # pragma: no cover - numpy's legacy global RNG is always MT19937
        raise RuntimeError(f"unsupported numpy RNG {kind}")
    out["numpy_keys"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    out["numpy_extra"] = torch.tensor([pos, has_gauss, gauss], dtype=torch.float64)
    version, internal, gauss_next = random.getstate()
    out["python_state"] = torch.tensor(internal, dtype=torch.int64)
    out["python_extra"] = torch.tensor(
        [version, gauss_next is not None, gauss_next or 0.0], dtype=torch.float64)
    return out


def restore_rng(state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].to(torch.uint8))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"cuda{i}" in state:
                torch.cuda.set_rng_state(state[f"cuda{i}"].to(torch.uint8), i)
    pos, has_gauss, gauss = state["numpy_extra"].tolist()
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(pos), int(has_gauss), gauss))
    version, has_next, gauss_next = state["python_extra"].tolist()
    random.setstate((int(version), tuple(int(v) for v in state["python_state"].tolist()),
                     gauss_next if has_next else None))


# -- optimizer state as tensors + JSON ----------------------------------------------------------
def optimizer_to_flat(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into tensors (keys ``<param_id>/<name>``) and JSON metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}/{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = to_jsonable(value)
    return tensors, {"scalars": scalars, "param_groups": to_jsonable(sd["param_groups"])}


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                        template: dict[str, Any]) -> dict[str, Any]:
    """Rebuild a ``state_dict`` for ``load_state_dict``; ``template`` (the live optimizer's) restores tuples."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = meta["param_groups"]
    if len(groups) != len(template["param_groups"]):
        raise CheckpointError(f"optimizer has {len(template['param_groups'])} parameter groups, "
                              f"the checkpoint {len(groups)}")
    restored = []
    for saved, live in zip(groups, template["param_groups"], strict=True):
        g = dict(saved)
        for k, v in live.items():
            if isinstance(v, tuple) and isinstance(g.get(k), list):
                g[k] = tuple(g[k])
        restored.append(g)
    return {"state": state, "param_groups": restored}


# -- checkpoint files -----------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A loaded training checkpoint: tensors grouped by prefix plus the JSON state."""

    tensors_path: Path
    state_path: Path
    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    skipped: list[str] = field(default_factory=list)  # damaged newer files passed over, one message each

    def group(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors whose key starts with ``prefix + '.'``, with the prefix removed."""
        p = prefix + "."
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}


def save_checkpoint(directory: Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                    keep: int = 2) -> Path:
    """Write ``step-<step>.safetensors`` + ``.json``, then the ``latest.json`` pointer; prune old pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"step-{step:08d}"
    clean = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    blob = save(clean, metadata={"step": str(step), "format": str(FORMAT_VERSION)})
    tensors_path = directory / f"{stem}.safetensors"
    write_bytes(tensors_path, blob)
    full_state = {"format": FORMAT_VERSION, "step": step, "tensors_file": tensors_path.name,
                  "tensors_bytes": len(blob), "tensors_sha256": hashlib.sha256(blob).hexdigest(), **state}
    write_json(directory / f"{stem}.json", full_state)
    write_json(directory / POINTER, {"step": step, "tensors": tensors_path.name, "state": f"{stem}.json"})
    _prune(directory, keep, current=stem)
    return tensors_path


def _prune(directory: Path, keep: int, current: str) -> None:
    """Keep ``current`` and the ``keep - 1`` newest pairs before it. Pairs after ``current`` (left by an
    interrupted run this one resumed before; possibly damaged) are not counted, so they never push an
    intact older pair out; training overwrites them when it gets there."""
    stems = sorted({p.name.split(".")[0] for p in directory.glob("step-*.safetensors")})
    older = [s for s in stems if s < current]
    for stem in older[:len(older) - (keep - 1)] if len(older) > keep - 1 else []:
        for suffix in (".json", ".safetensors"):
            (directory / f"{stem}{suffix}").unlink(missing_ok=True)


class CheckpointWarning(UserWarning):
    """A damaged checkpoint was skipped in favour of an older intact one."""


def has_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds a pointer or any checkpoint state file (intact or not)."""
    return (directory / POINTER).exists() or any(directory.glob("step-*.json"))


def latest_tensors_path(directory: Path) -> Path | None:
    """The tensors file the pointer names (not verified; ``None`` without a checkpoint)."""
    if not (directory / POINTER).exists():
        return None
    pointer = load_json_state(directory / POINTER)
    return directory / str(pointer["tensors"]) if isinstance(pointer, dict) and "tensors" in pointer else None


def load_checkpoint(directory: Path) -> Checkpoint:
    """Load the newest intact checkpoint: the pair ``latest.json`` names, else the newest intact older pair.

    A damaged pointer, state file or tensors file (missing, truncated, garbled, wrong checksum) is skipped
    with a :class:`CheckpointWarning` naming the file and what is wrong; the skipped messages are kept in
    ``Checkpoint.skipped``. Files are only read, never repaired or deleted. When no intact pair is left,
    :class:`CheckpointError` names every damaged file (resuming would silently start over otherwise).
    """
    import warnings

    problems: list[str] = []
    tried: set[str] = set()
    pointer_path = directory / POINTER
    try:
        pointer = load_json_state(pointer_path)
        if not isinstance(pointer, dict) or not {"step", "tensors", "state"} <= set(pointer):
            raise CheckpointError(f"{pointer_path}: expected keys step, tensors, state; got {_keys(pointer)}")
        tried.add(str(pointer["state"]))
        ckpt = _load_pair(directory, directory / str(pointer["state"]), step=pointer["step"],
                          tensors_name=str(pointer["tensors"]))
        return ckpt
    except CheckpointError as exc:
        problems.append(str(exc))
    for state_path in sorted(directory.glob("step-*.json"), reverse=True):
        if state_path.name in tried:
            continue
        try:
            ckpt = _load_pair(directory, state_path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        for problem in problems:
            warnings.warn(f"skipping a damaged checkpoint: {problem}; resuming from step {ckpt.state['step']} "
                          f"({ckpt.state_path.name})", CheckpointWarning, stacklevel=2)
        ckpt.skipped = problems
        return ckpt
    raise CheckpointError(f"no intact checkpoint in {directory} to resume from ({'; '.join(problems)}); "
                          "delete that folder to start over, or use a new output directory")


def _load_pair(directory: Path, state_path: Path, step: Any = None, tensors_name: str | None = None) -> Checkpoint:
    """Load and verify one ``step-*.json`` + ``.safetensors`` pair (``step``/``tensors_name``: the pointer's)."""
    state = load_json_state(state_path)
    required = {"format", "step", "tensors_file", "tensors_bytes", "tensors_sha256"}
    if not isinstance(state, dict) or not required <= set(state):
        raise CheckpointError(f"{state_path}: not a training state file (missing "
                              f"{', '.join(sorted(required - set(state if isinstance(state, dict) else {})))})")
    if state["format"] != FORMAT_VERSION:
        raise CheckpointError(f"{state_path}: unsupported checkpoint format {state['format']!r}")
    expected_stem = state_path.name[:-len(".json")]
    if not isinstance(state["step"], int) or f"step-{state['step']:08d}" != expected_stem \
            or state["tensors_file"] != f"{expected_stem}.safetensors":
        raise CheckpointError(f"{state_path}: names step {state['step']!r} and {state['tensors_file']!r}, "
                              "not its own file name")
    if step is not None and (state["step"] != step or state["tensors_file"] != tensors_name):
        raise CheckpointError(f"{state_path}: does not match {directory / POINTER} (step {state['step']} vs "
                              f"{step})")
    tensors_path = directory / str(state["tensors_file"])
    if not tensors_path.is_file():
        raise CheckpointError(f"{tensors_path}: checkpoint tensors file not found")
    size = tensors_path.stat().st_size
    if size != state["tensors_bytes"]:
        raise CheckpointError(f"{tensors_path}: {size} bytes, expected {state['tensors_bytes']}; "
                              "the file is truncated or was replaced")
    if file_sha256(tensors_path) != state["tensors_sha256"]:
        raise CheckpointError(f"{tensors_path}: SHA-256 does not match {state_path.name}; the file is corrupt")
    tensors = load_tensors(tensors_path)
    return Checkpoint(tensors_path, state_path, state, tensors)


def _keys(obj: Any) -> str:
    return ", ".join(sorted(map(str, obj))) if isinstance(obj, dict) else type(obj).__name__


def dumps_config_diff(saved: dict[str, Any], current: dict[str, Any], ignore: frozenset[str]) -> str:
    """Human-readable list of differing config fields (empty when equal apart from ``ignore``)."""
    keys = sorted((set(saved) | set(current)) - ignore)
    diffs = [f"{k}: {json.dumps(saved.get(k))} -> {json.dumps(current.get(k))}"
             for k in keys if saved.get(k) != current.get(k)]
    return "; ".join(diffs)
