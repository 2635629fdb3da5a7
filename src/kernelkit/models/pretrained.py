"""Pretrained weights: tags, their configurations, safe checkpoint reading and loading into a model.

A tag is ``arch.pretrained_tag`` (``unireplknet_a.in1k``, ``mixnet_s.ft_in1k``); the table lives in
:mod:`kernelkit.models.pretrained_tags`. Files come from the Hugging Face Hub through
``huggingface_hub.hf_hub_download`` (its cache, ``HF_HOME``/``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE`` apply).
Checkpoints are read without unpickling code: ``.safetensors`` with safetensors, ``.pth/.pt/.bin`` with
``torch.load(weights_only=True)`` (an ``argparse.Namespace`` of training arguments is the one extra type
allowed; it is skipped with a note like every other non-tensor entry).

``kernelkit.models.create_model(name, pretrained=True)`` is the usual entry point; :func:`load_pretrained`
is the step it uses to put a state dict into a built model with timm's rules (classifier re-initialised when
the class count differs, first conv adapted to ``in_chans``, head dropped for ``features_only``).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import replace
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor, nn

from kernelkit.models.pretrained_tags import IMAGENET_MEAN, IMAGENET_STD, PRETRAINED_CFGS, PretrainedCfg
from kernelkit.registry import Registry
from kernelkit.utils.checkpoint import CheckpointError

__all__ = [
    "CheckpointError", "PretrainedCfg", "WeightsUnavailableError", "adapt_input_conv", "default_cfg",
    "download_weights", "get_pretrained_cfg", "imagenet_class_names", "imagenet_synsets", "list_pretrained",
    "load_pretrained", "pretrained_tags_of", "read_state_dict",
]

PRETRAINED: Registry[PretrainedCfg] = Registry("pretrained tag")
for _cfg in PRETRAINED_CFGS:
    PRETRAINED.register(_cfg.tag)(_cfg)


class WeightsUnavailableError(RuntimeError):
    """The weights of a tag could not be fetched (offline and not cached, or the Hub could not be reached)."""


# ---- tags and configurations -------------------------------------------------------------------

# Per family (architecture-name prefix): classifier module, first conv, and the modules of the classification
# head that a ``features_only`` model does not have (their checkpoint keys are dropped).
_FAMILIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("unireplknet_", "head", "downsample_layers.0.0", ("head", "norm")),
    ("tf_mixnet_", "classifier", "conv_stem", ("classifier", "conv_head", "bn2")),
    ("mixnet_", "classifier", "conv_stem", ("classifier", "conv_head", "bn2")),
    ("mobilenetv2_mix", "classifier", "conv_stem", ("classifier",)),
    ("resnet", "", "stem.0", ()),
)
# Modules a ``features_only`` model adds that no classification checkpoint holds (UniRepLKNet's per-stage
# norms of the official dense-task backbone); they keep their initialisation.
_FEATURE_ONLY_NEW = re.compile(r"^norm\d+\.")


def _family(architecture: str) -> tuple[str, str, tuple[str, ...]]:
    for prefix, classifier, first_conv, head in _FAMILIES:
        if architecture.startswith(prefix):
            return classifier, first_conv, head
    return "", "", ()


def get_pretrained_cfg(tag: str) -> PretrainedCfg:
    """The configuration of ``tag`` (``"unireplknet_a.in1k"``); a bare architecture gives its default tag.

    Unknown tags raise ``KeyError`` naming close matches.
    """
    if "." not in tag:
        tags = pretrained_tags_of(tag)
        if tags:
            tag = tags[0]
    return PRETRAINED.get(tag)


def pretrained_tags_of(architecture: str) -> list[str]:
    """The tags of ``architecture`` in table order (the first is the default); empty if it has none."""
    return [c.tag for c in PRETRAINED_CFGS if c.architecture == architecture]


def list_pretrained(pattern: str | None = None) -> list[str]:
    """Every tag in the table, sorted, optionally filtered by a shell-style pattern (``"mixnet_*"``)."""
    return PRETRAINED.names(pattern)


def default_cfg(architecture: str, num_classes: int = 1000) -> PretrainedCfg:
    """The configuration of an untagged model: 224, ImageNet mean/std, crop 0.875, bicubic, no Hub file."""
    classifier, first_conv, _ = _family(architecture)
    return PretrainedCfg(
        tag="", architecture=architecture, hf_hub_id="", hf_hub_filename="", input_size=(3, 224, 224),
        mean=IMAGENET_MEAN, std=IMAGENET_STD, crop_pct=0.875, crop_mode="center", interpolation="bicubic",
        num_classes=num_classes, label_names=None, top1=None, top1_source="", classifier=classifier,
        first_conv=first_conv)


def cfg_for_model(cfg: PretrainedCfg, num_classes: int | None, in_chans: int | None) -> PretrainedCfg:
    """``cfg`` as it describes a model built with other ``num_classes``/``in_chans`` (labels no longer apply)."""
    if num_classes is not None and num_classes != cfg.num_classes:
        cfg = replace(cfg, num_classes=num_classes, label_names=None)
    if in_chans is not None and in_chans != cfg.input_size[0]:
        cfg = replace(cfg, input_size=(in_chans, *cfg.input_size[1:]))
    return cfg


# ---- ImageNet-1K labels ------------------------------------------------------------------------


def _data_lines(name: str) -> list[str]:
    text = resources.files("kernelkit.models").joinpath("data", name).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1K class names in class-index order (first WordNet lemma: "tench", "goldfish", ...)."""
    return _data_lines("imagenet1k_names.txt")


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1K WordNet ids in class-index order (``"n01440764"``, ...)."""
    return _data_lines("imagenet1k_synsets.txt")


# ---- reading checkpoints -----------------------------------------------------------------------

# The one non-tensor type a weights-only load may build: official training checkpoints store their
# command-line arguments as an argparse.Namespace (plain data: a class with attributes, no code).
_ALLOWED_TYPES = [argparse.Namespace]


@contextlib.contextmanager
def _allow_namespace() -> Iterator[None]:
    safe_globals = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5; scoped, not global
    if safe_globals is None:
        yield
        return
    with safe_globals(_ALLOWED_TYPES):
        yield


def _refused_globals(path: Path, message: str) -> list[str]:
    """The globals (classes, functions) the weights-only loader would not build, from the file or its message."""
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)  # torch >= 2.5, zip files
    try:
        names = list(finder(path)) if finder is not None else []
    except Exception:  # a legacy (non-zip) file: torch's message names the first refused global
        names = []
    names += [n for n in re.findall(r"GLOBAL ([\w.]+)", message) if n not in names]
    return [n for n in names if n != "argparse.Namespace"]


def _load_pickled(path: Path) -> object:
    try:
        with _allow_namespace():  # zip-format files are memory-mapped: no second copy of large weights in RAM
            return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as exc:
        names = _refused_globals(path, str(exc))
        what = f"it refers to {', '.join(names)}" if names else "it holds objects other than tensors and data"
        raise CheckpointError(
            f"{path}: refused by the weights-only loader ({what}); only tensors, plain containers and "
            "argparse.Namespace are read, pickled code is never run"
        ) from None
    except Exception as exc:  # torch raises many kinds for damaged files (RuntimeError, EOFError, ...)
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {str(exc)[:160]}); "
            "is it truncated or corrupt?"
        ) from None


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); is it truncated or corrupt?") \
            from None


def _skip_note(key: str, value: object) -> str:
    return f"skipped non-tensor entry {key!r} ({type(value).__name__})"


def read_state_dict(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], list[str]]:
    """The tensors of a checkpoint file and one note per entry that was skipped.

    ``.safetensors`` is read with safetensors; ``.pth``/``.pt``/``.bin`` with ``torch.load(weights_only=True)``
    (code in the pickle is refused, never run). A dict holding ``model`` or ``state_dict`` is unwrapped (its
    other entries, e.g. ``args``, ``epoch``, ``optimizer``, are noted as skipped), a ``module.`` prefix is
    removed, and non-tensor values are skipped with a note. A missing, empty, corrupt or refused file raises
    :class:`CheckpointError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint is empty (0 bytes); the download or write was interrupted")
    obj: object = _load_safetensors(path) if path.suffix == ".safetensors" else _load_pickled(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    notes: list[str] = []
    for wrapper in ("model", "state_dict"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping):
            notes += [_skip_note(str(k), v) for k, v in obj.items() if k != wrapper]
            obj = inner
            break
    tensors: dict[str, Tensor] = {}
    for key, value in obj.items():
        if isinstance(value, Tensor):
            name = str(key)
            tensors[name[len("module."):] if name.startswith("module.") else name] = value
        else:
            notes.append(_skip_note(str(key), value))
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors (entries: {', '.join(map(str, obj)) or 'none'})")
    return tensors, notes


# ---- getting files -----------------------------------------------------------------------------


def download_weights(cfg: PretrainedCfg) -> Path:
    """The local path of ``cfg``'s file, from the Hugging Face cache or downloaded into it.

    Raises :class:`WeightsUnavailableError` with one line naming the tag, the file and the fix.
    """
    if not cfg.hf_hub_id:
        raise WeightsUnavailableError(f"{cfg.architecture}: no pretrained weights; pass checkpoint_path=FILE")
    from huggingface_hub import constants, hf_hub_download

    where = f"{cfg.hf_hub_id}/{cfg.hf_hub_filename}"
    try:
        return Path(hf_hub_download(cfg.hf_hub_id, cfg.hf_hub_filename))
    except Exception as exc:  # the Hub client raises many kinds (offline, HTTP, connection, missing entry)
        if constants.HF_HUB_OFFLINE:
            raise WeightsUnavailableError(
                f"{cfg.tag}: {where} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE "
                f"is set; fetch it once where the Hub is reachable (hf download {cfg.hf_hub_id} "
                f"{cfg.hf_hub_filename}) or pass checkpoint_path=FILE"
            ) from exc
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise WeightsUnavailableError(
            f"{cfg.tag}: cannot download {where} ({type(exc).__name__}: {detail}); check the connection and "
            "HF_ENDPOINT, or pass checkpoint_path=FILE"
        ) from exc


# ---- loading into a model ----------------------------------------------------------------------


def adapt_input_conv(in_chans: int, weight: Tensor) -> Tensor:
    """A 3-channel first-conv weight for ``in_chans`` inputs, as timm's ``adapt_input_conv``.

    1 channel: the sum over RGB; more than 3: RGB repeated and scaled by ``3 / in_chans`` (the response to an
    input whose channels all equal ``x`` stays that of RGB all ``x``).
    """
    if in_chans == weight.shape[1]:
        return weight
    if weight.shape[1] != 3:
        raise ValueError(f"cannot adapt a first conv with {weight.shape[1]} input channels to {in_chans}")
    w = weight.float()
    if in_chans == 1:
        w = w.sum(dim=1, keepdim=True)
    else:
        w = w.repeat(1, math.ceil(in_chans / 3), 1, 1)[:, :in_chans] * (3 / in_chans)
    return w.to(weight.dtype)


def _first(keys: list[str], n: int = 4) -> str:
    keys = sorted(keys, key=lambda k: (k.endswith("num_batches_tracked"), k))  # the informative names first
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_pretrained(model: nn.Module, state_dict: Mapping[str, Tensor], cfg: PretrainedCfg, source: str,
                    features_only: bool = False) -> list[str]:
    """Load ``state_dict`` into ``model`` with timm's rules; returns notes on what was re-initialised or adapted.

    The first conv (``cfg.first_conv``) is adapted when the model's input channels differ; the classifier
    (``cfg.classifier``) keeps the model's initialisation when its shape differs from the checkpoint's (another
    ``num_classes``, or none); for ``features_only`` the classification head's keys are dropped. Anything else
    that does not match raises :class:`CheckpointError` naming ``source`` and the first differing keys.
    """
    sd = dict(state_dict)
    own = model.state_dict()
    notes: list[str] = []
    allowed_missing: set[str] = set()
    conv_key = f"{cfg.first_conv}.weight"
    if cfg.first_conv and conv_key in sd and conv_key in own and sd[conv_key].shape[1] != own[conv_key].shape[1]:
        sd[conv_key] = adapt_input_conv(own[conv_key].shape[1], sd[conv_key])
        notes.append(f"adapted {conv_key} from {state_dict[conv_key].shape[1]} to {own[conv_key].shape[1]} "
                     "input channels")
    head_w = f"{cfg.classifier}.weight"
    if cfg.classifier and not features_only and head_w in sd and (head_w not in own or
                                                                  own[head_w].shape != sd[head_w].shape):
        for k in (head_w, f"{cfg.classifier}.bias"):
            sd.pop(k, None)
        allowed_missing |= {k for k in own if k.startswith(f"{cfg.classifier}.")}
        n_own = own[head_w].shape[0] if head_w in own else 0
        notes.append(f"{cfg.classifier}: the checkpoint has {state_dict[head_w].shape[0]} classes, the model "
                     f"{n_own}; the model's {cfg.classifier} keeps its initialisation")
    if features_only:
        _, _, head_modules = _family(cfg.architecture)
        dropped = [k for k in sd if k not in own and k.split(".", 1)[0] in head_modules]
        for k in dropped:
            del sd[k]
        allowed_missing |= {k for k in own if _FEATURE_ONLY_NEW.match(k)}
    wrong_shape = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in sd
                   if k in own and sd[k].shape != own[k].shape]
    missing = [k for k in own if k not in sd and k not in allowed_missing and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    if wrong_shape or missing or unexpected:
        parts = [f"{len(keys)} {what} ({_first(keys)})" for what, keys in
                 (("missing", missing), ("unexpected", unexpected), ("of another shape", wrong_shape)) if keys]
        raise CheckpointError(f"{source}: does not fit {cfg.architecture}: {'; '.join(parts)}; is it a checkpoint "
                              "of another architecture (or of the deploy form)?")
    model.load_state_dict(sd, strict=False)
    return notes
