"""Model registry and the one public way to build a model."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from kernelkit.models.pretrained import (
    PretrainedCfg,
    cfg_for_model,
    default_cfg,
    download_weights,
    get_pretrained_cfg,
    list_pretrained,
    load_pretrained,
    pretrained_tags_of,
    read_state_dict,
)
from kernelkit.registry import Registry, RegistryError

MODELS: Registry[Callable[..., nn.Module]] = Registry("model", discover=("kernelkit.models",))
log = logging.getLogger("kernelkit.models")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a variant builder under its function name (``unireplknet_a``, ``mixnet_s``)."""
    return MODELS.register(fn.__name__)(fn)


def list_models(filter: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names, optionally filtered by a shell-style pattern (``"mixnet_*"``).

    With ``pretrained=True`` the pretrained tags (``"unireplknet_a.in1k"``) of registered models instead.
    """
    if not pretrained:
        return MODELS.names(filter)
    architectures = set(MODELS.names())
    return [t for t in list_pretrained(filter) if t.split(".", 1)[0] in architectures]


def _build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    builder = MODELS.get(name)
    params = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise TypeError(f"{name} does not accept {', '.join(unknown)}; it accepts {', '.join(params)}")
    return builder(**kwargs)


def _resolve(name: str, pretrained: bool, checkpoint_path: object) -> tuple[str, PretrainedCfg | None]:
    """The architecture of ``name`` (an architecture or a tag) and the tag configuration that applies."""
    if "." in name:
        architecture = name.split(".", 1)[0]
        MODELS.get(architecture)  # unknown architecture: KeyError with close matches
        try:
            return architecture, get_pretrained_cfg(name)
        except RegistryError as exc:  # unknown tag: close matches, and the tags this architecture has
            own = pretrained_tags_of(architecture)
            has = f" ({architecture} has {', '.join(own)})" if own else f" ({architecture} has no pretrained tags)"
            raise RegistryError(f"{exc}{has}") from None
    MODELS.get(name)
    if not pretrained:
        return name, None
    tags = pretrained_tags_of(name)
    if tags:
        return name, get_pretrained_cfg(tags[0])
    if checkpoint_path is None:
        known = sorted({t.split(".", 1)[0] for t in list_models(pretrained=True)})
        raise ValueError(f"{name} has no pretrained weights (models with weights: {', '.join(known)}); "
                         "pass checkpoint_path=FILE to load a local file")
    return name, None


def _size(state_dict: dict[str, Tensor], key: str, dim: int) -> int | None:
    tensor = state_dict.get(key)
    return int(tensor.shape[dim]) if tensor is not None and tensor.dim() > dim else None


def create_model(name: str, pretrained: bool = False, checkpoint_path: str | os.PathLike[str] | None = None,
                 num_classes: int | None = None, in_chans: int | None = None, drop_rate: float | None = None,
                 drop_path_rate: float | None = None, features_only: bool = False,
                 out_indices: tuple[int, ...] | list[int] | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("unireplknet_a", num_classes=10)``, timm style.

    ``name`` is an architecture or a pretrained tag (``"unireplknet_a.in1k"``, see
    ``list_models(pretrained=True)``). ``pretrained=True`` loads the tag's weights (a bare architecture takes its
    first tag) through the Hugging Face cache; ``checkpoint_path`` loads a local file instead (``.safetensors``
    or a weights-only ``.pth``). The loaded file (else the tag) sets the default ``num_classes`` and ``in_chans``;
    another ``num_classes`` keeps the new classifier's initialisation, another ``in_chans`` adapts the first conv
    (1: RGB summed; more: repeated and scaled by ``3 / in_chans``), ``features_only`` drops the head's weights.
    ``deploy=True`` loads the (training-form) weights and then re-parameterizes. Every model gets
    ``model.pretrained_cfg`` (a dict).

    Unknown names or tags raise ``KeyError`` suggesting close matches; keyword arguments a variant does not
    accept raise ``TypeError`` naming them; unavailable weights raise ``RuntimeError`` and checkpoints that do
    not fit raise :class:`~kernelkit.utils.checkpoint.CheckpointError`, each with one line naming the file.
    """
    architecture, cfg = _resolve(name, pretrained, checkpoint_path)
    load = pretrained or checkpoint_path is not None
    base = cfg or default_cfg(architecture)
    if load:
        path = Path(checkpoint_path) if checkpoint_path is not None else download_weights(base)
        state_dict, notes = read_state_dict(path)
        # the file's classifier rows and first-conv channels are the defaults (a fine-tuned 10-class file
        # builds a 10-class model); other values given here re-initialise / adapt those layers
        if num_classes is None:
            num_classes = _size(state_dict, f"{base.classifier}.weight", 0) if base.classifier else None
        if in_chans is None:
            in_chans = _size(state_dict, f"{base.first_conv}.weight", 1) if base.first_conv else None
    if num_classes is None and cfg is not None:
        num_classes = cfg.num_classes
    options: dict[str, Any] = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans),
                                                 ("drop_rate", drop_rate), ("drop_path_rate", drop_path_rate),
                                                 ("out_indices", out_indices)) if v is not None}
    if features_only:
        options["features_only"] = True
    deploy = bool(kwargs.get("deploy")) and load
    if deploy:  # the released weights are in the training form: load them there, then convert
        kwargs["deploy"] = False
    model = _build(architecture, {**kwargs, **options})
    if load:
        notes += load_pretrained(model, state_dict, base, str(path), features_only=features_only)
        for note in notes:
            log.info("%s: %s", path.name, note)
        if deploy:
            reparameterize(model)
    built_classes = getattr(model, "num_classes", num_classes)
    pretrained_cfg = cfg_for_model(base, built_classes if isinstance(built_classes, int) else None, in_chans)
    model.pretrained_cfg = pretrained_cfg.to_dict()  # type: ignore[assignment]  # a plain attribute
    return model


def reparameterize(model: nn.Module) -> nn.Module:
    """Convert every re-parameterizable submodule to its deploy form, in place; returns ``model``.

    A module opts in by defining an idempotent ``reparameterize()`` that converts only itself (and
    may replace its own children). Modules are visited deepest first, then ``model`` itself.
    """
    for module in reversed(list(model.modules())):
        fn = getattr(module, "reparameterize", None)
        if callable(fn):
            fn()
    return model
