"""RoPE frequencies under context-extension methods, and switching a Hugging Face model between them.

RoPE rotates dimension pair ``i`` at position ``m`` by ``m * theta_i`` with ``theta_i = base^(-2i/d)``.

* ``linear`` (position interpolation): ``theta_i / s``.
* ``ntk`` (static NTK-aware): a new base ``b * s^(d/(d-2))``: the fastest pair is unchanged and the
  slowest is slowed by exactly ``s``.
* ``dynamic`` (dynamic NTK): the NTK base recomputed from the current length ``l`` beyond the trained
  length ``L``: ``b * (s*l/L - (s-1))^(d/(d-2))``; unchanged for ``l <= L``.
* ``yarn`` (NTK-by-parts): per-pair blend of interpolated and original frequencies with a linear ramp
  between the pairs that rotate ``beta_fast`` and ``beta_slow`` times over ``L``; attention logits are
  scaled through cos/sin by ``0.1 ln s + 1``.

Everything here is pure math on float64 tensors except :func:`apply_rope_scaling`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

Method = Literal["none", "linear", "ntk", "dynamic", "yarn"]
METHODS: tuple[str, ...] = ("none", "linear", "ntk", "dynamic", "yarn")


def _check(dim: int, base: float, factor: float) -> None:
    if dim < 4 or dim % 2:
        raise ValueError(f"rotary dim must be even and >= 4, got {dim}")
    if base <= 1:
        raise ValueError(f"rope base must be > 1, got {base}")
    if factor < 1:
        raise ValueError(f"scaling factor must be >= 1, got {factor}")


def default_inv_freq(dim: int, base: float) -> torch.Tensor:
    """``base^(-2i/dim)`` for ``i = 0 .. dim/2 - 1`` (float64)."""
    return 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def ntk_aware_base(base: float, factor: float, dim: int) -> float:
    """Static NTK-aware base ``base * factor^(dim/(dim-2))``."""
    _check(dim, base, factor)
    return base * factor ** (dim / (dim - 2))


def dynamic_ntk_base(base: float, factor: float, dim: int, seq_len: int, max_position_embeddings: int) -> float:
    """Dynamic NTK base for the current length (the trained base while ``seq_len <= max_position_embeddings``)."""
    _check(dim, base, factor)
    length = max(seq_len, max_position_embeddings)
    return base * (factor * length / max_position_embeddings - (factor - 1)) ** (dim / (dim - 2))


def yarn_attention_factor(factor: float) -> float:
    """YaRN's attention temperature ``0.1 ln(s) + 1`` (1 for ``s <= 1``)."""
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def yarn_correction_range(dim: int, base: float, max_position_embeddings: int, beta_fast: float = 32,
                          beta_slow: float = 1) -> tuple[int, int]:
    """Pair indices (floored/ceiled, clamped to ``[0, dim-1]``) where the YaRN ramp starts and ends.

    The pair rotating ``n`` times over ``L`` positions sits at ``dim * ln(L / (2 pi n)) / (2 ln base)``.
    """
    def pair_at(n_rot: float) -> float:
        return dim * math.log(max_position_embeddings / (n_rot * 2 * math.pi)) / (2 * math.log(base))

    return max(math.floor(pair_at(beta_fast)), 0), min(math.ceil(pair_at(beta_slow)), dim - 1)


def inv_freq(dim: int, base: float, method: str = "none", factor: float = 1.0, seq_len: int | None = None,
             max_position_embeddings: int | None = None, beta_fast: float = 32, beta_slow: float = 1) -> torch.Tensor:
    """Inverse frequencies (``dim/2`` values, float64) of ``method`` at scaling ``factor``.

    ``dynamic`` needs ``max_position_embeddings`` (the trained length) and uses ``seq_len`` (default:
    the trained length); ``yarn`` needs ``max_position_embeddings`` (the original trained length).
    """
    _check(dim, base, factor)
    if method == "none":
        return default_inv_freq(dim, base)
    if method == "linear":
        return default_inv_freq(dim, base) / factor
    if method == "ntk":
        return default_inv_freq(dim, ntk_aware_base(base, factor, dim))
    if method in ("dynamic", "yarn") and not max_position_embeddings:
        raise ValueError(f"method {method!r} needs max_position_embeddings (the trained context length)")
    if method == "dynamic":
        length = seq_len if seq_len is not None else int(max_position_embeddings or 0)
        return default_inv_freq(dim, dynamic_ntk_base(base, factor, dim, length, int(max_position_embeddings or 0)))
    if method == "yarn" and max_position_embeddings:
        original = default_inv_freq(dim, base)
        low, high = yarn_correction_range(dim, base, max_position_embeddings, beta_fast, beta_slow)
        span = (high - low) if high != low else 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float64) - low) / span).clamp(0, 1)
        keep_original = 1 - ramp  # 1 for fast pairs (extrapolate), 0 for slow pairs (interpolate)
        return original / factor * ramp + original * keep_original
    raise ValueError(f"unknown RoPE method {method!r}; expected one of {', '.join(METHODS)}")


def attention_factor(method: str, factor: float) -> float:
    """The cos/sin scale of ``method`` (only YaRN scales)."""
    return yarn_attention_factor(factor) if method == "yarn" else 1.0


# ----------------------------------------------------------------------------------------------
# Hugging Face models


def keeps_rope_parameters() -> bool:
    """Whether the installed transformers reads RoPE settings from ``config.rope_parameters`` (5.x) rather than
    from ``config.rope_theta`` + ``config.rope_scaling`` (4.x).

    Decided by the version, not by the config: a 4.x config loaded from a file saved by 5.x (or built with a
    ``rope_parameters=`` argument) carries a ``rope_parameters`` dict that 4.x never reads.
    """
    import transformers

    return int(transformers.__version__.split(".")[0]) >= 5


def rope_settings(config: Any) -> dict[str, Any] | None:
    """The RoPE settings a Hugging Face config is run with, as 5.x's ``rope_parameters`` dict (``rope_type``,
    ``rope_theta`` and the type's parameters) on either version; ``None`` for a config without RoPE."""
    if keeps_rope_parameters():
        return getattr(config, "rope_parameters", None)
    theta = getattr(config, "rope_theta", None)
    if theta is None:
        return None
    scaling = dict(getattr(config, "rope_scaling", None) or {})
    kind = scaling.pop("rope_type", None) or scaling.pop("type", None) or "default"
    scaling.pop("type", None)
    return {"rope_type": kind, **scaling, "rope_theta": theta}


def _rope_base_and_length(config: Any) -> tuple[float, int]:
    params = getattr(config, "rope_parameters", None) if keeps_rope_parameters() else None
    base = None
    if isinstance(params, dict):
        base = params.get("rope_theta")
    if base is None:
        base = getattr(config, "rope_theta", None)
    if base is None:
        raise ValueError(f"{type(config).__name__} has no rope_theta; is this a RoPE model?")
    return float(base), int(config.max_position_embeddings)


def rope_config(method: str, factor: float, base: float, max_position_embeddings: int, dim: int) -> dict[str, Any]:
    """The Hugging Face rope dict (``rope_type`` + parameters) realising ``method``.

    Static NTK has no Hugging Face type; it is the default type with the NTK-aware base.
    """
    if method not in METHODS:
        raise ValueError(f"unknown RoPE method {method!r}; expected one of {', '.join(METHODS)}")
    if method == "none" or (factor == 1.0 and method != "none"):
        return {"rope_type": "default", "rope_theta": base}
    if method == "ntk":
        return {"rope_type": "default", "rope_theta": ntk_aware_base(base, factor, dim)}
    out: dict[str, Any] = {"rope_type": method, "factor": float(factor), "rope_theta": base}
    if method == "yarn":
        out["original_max_position_embeddings"] = max_position_embeddings
    return out


def apply_rope_scaling(model: Any, method: str, factor: float = 1.0) -> dict[str, Any]:
    """Switch a Hugging Face RoPE model (Llama family) to ``method`` at ``factor``, in place.

    Works with transformers 5.x (``config.rope_parameters``) and 4.x (``config.rope_scaling`` +
    ``config.rope_theta``). The model's rotary-embedding modules are rebuilt from the new config. The
    trained base is remembered, so calling again switches methods rather than compounding them.
    Returns the rope dict that was applied.
    """
    config = model.config
    if not hasattr(model, "_kernelkit_rope_origin"):
        model._kernelkit_rope_origin = _rope_base_and_length(config)
    base, length = model._kernelkit_rope_origin
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    dim = int(dim * (getattr(config, "partial_rotary_factor", None) or 1.0))
    rope = rope_config(method, factor, base, length, dim)
    if keeps_rope_parameters():  # transformers >= 5
        config.rope_parameters = dict(rope)
    else:  # transformers 4.x
        config.rope_theta = rope["rope_theta"]
        if rope["rope_type"] == "default":
            config.rope_scaling = None
        else:
            legacy = {k: v for k, v in rope.items() if k != "rope_theta"}
            legacy["type"] = legacy["rope_type"]
            config.rope_scaling = legacy
    model._kernelkit_rope_applied = (method, float(factor))
    rebuilt = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__.endswith("RotaryEmbedding") and hasattr(child, "inv_freq"):
                device = child.inv_freq.device
                setattr(parent, name, type(child)(config=config).to(device))
                rebuilt += 1
    if rebuilt == 0:
        raise ValueError(f"{type(model).__name__}: no rotary embedding module found to rescale")
    return rope


def trained_context(model: Any) -> int | None:
    """The context the model was trained with: ``max_position_embeddings`` before any
    :func:`apply_rope_scaling` (which never changes it), ``None`` when the config has none."""
    origin = getattr(model, "_kernelkit_rope_origin", None)
    if origin is not None:
        return int(origin[1])
    length = getattr(model.config, "max_position_embeddings", None)
    return int(length) if length else None


def context_limit(model: Any, max_context: int | None = None) -> int | None:
    """Tokens (prompt + answer) a model is run with.

    ``max_context`` when given (for dynamic NTK, which has no fixed end, this is how far it is taken);
    otherwise ``factor x`` the trained context for a model switched by :func:`apply_rope_scaling` to any
    scaling with ``factor > 1`` (linear, ntk, yarn and dynamic), else the trained context.
    """
    if max_context is not None:
        if max_context < 1:
            raise ValueError(f"max_context must be >= 1, got {max_context}")
        return int(max_context)
    trained = trained_context(model)
    if trained is None:
        return None
    method, factor = getattr(model, "_kernelkit_rope_applied", ("none", 1.0))
    return int(trained * factor) if method != "none" else trained
