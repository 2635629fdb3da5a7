"""Write a model to a deployment format, load it back and check that it reproduces the eager outputs.

Formats (:data:`FORMATS`): ``onnx`` (``torch.onnx.export(dynamo=True)``, run back in ONNX Runtime; needs the
``onnx`` extra: ``pip install 'kernelkit[onnx]'``), ``torchscript`` (``torch.jit.trace``) and
``exported-program`` (``torch.export``, saved as ``.pt2``). Under export and tracing the fast paths take their
plain-ops forms, so the files hold standard operators only and load without kernelkit.

Files are written atomically: to a temporary file in the target folder, renamed over the target only once
complete.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

__all__ = ["FORMATS", "ONNX_EXTRA", "MissingExtraError", "export_model", "load_exported", "max_rel_diff",
           "suffix"]

FORMATS = ("onnx", "torchscript", "exported-program")
_SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt", "exported-program": ".pt2"}
#: The install line of the packages the ONNX format needs.
ONNX_EXTRA = "pip install 'kernelkit[onnx]'"


class MissingExtraError(RuntimeError):
    """A package a format needs is not installed; the message names it and the extra that installs it."""


def suffix(fmt: str) -> str:
    """The usual file suffix of a format (``.onnx``, ``.pt``, ``.pt2``)."""
    return _SUFFIXES[_check_format(fmt)]


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    return fmt


def require_onnx() -> None:
    """Raise :class:`MissingExtraError` unless onnx, onnxscript and onnxruntime import."""
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise MissingExtraError(f"the onnx format needs the package {name} ({ONNX_EXTRA})") from exc


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``; renamed onto ``path`` when the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # same suffix as the target (torch.export.save insists on its own); created like any new file (umask)
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}"
    tmp.open("xb").close()
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Only errors from logger ``name`` inside the block (the ONNX exporter logs notes about optional
    packages); its level is restored after."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_model(model: nn.Module, example: torch.Tensor, fmt: str, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` (put in eval mode) traced on ``example`` to ``path`` in format ``fmt``; returns the path.

    Shapes are fixed to ``example``'s. Raises :class:`MissingExtraError` when ``onnx`` packages are missing.
    """
    _check_format(fmt)
    if fmt == "onnx":
        require_onnx()
    path = Path(path)
    model.eval()
    with _atomic_path(path) as tmp, torch.no_grad():
        if fmt == "exported-program":
            torch.export.save(torch.export.export(model, (example,)), tmp)
        elif fmt == "torchscript":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes on constants; TorchScript's deprecation notice
                torch.jit.save(torch.jit.trace(model, (example,), check_trace=False), str(tmp))
        else:
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_logger("torch.onnx"):
                warnings.simplefilter("ignore")  # the exporter's progress lines and notes
                program = torch.onnx.export(model, (example,), dynamo=True, verbose=False)
                assert program is not None
                program.save(str(tmp))
    return path


def load_exported(path: str | os.PathLike[str], fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Load a file written by :func:`export_model` as a function of one input tensor (CPU)."""
    _check_format(fmt)
    path = Path(path)
    if fmt == "exported-program":
        module = torch.export.load(path).module()
        return lambda x: module(x)
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            script = torch.jit.load(str(path), map_location="cpu")
        return lambda x: script(x)
    require_onnx()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.detach().cpu().numpy()})[0])


def max_rel_diff(got: torch.Tensor, want: torch.Tensor) -> float:
    """``max|got − want| / max|want|`` (0 for two zero tensors)."""
    scale = want.abs().max().item()
    diff = (got.to(want) - want).abs().max().item()
    return diff / scale if scale > 0 else diff
