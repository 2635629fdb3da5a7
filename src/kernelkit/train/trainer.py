"""The training loop: plain PyTorch, resumable exactly, DDP-aware."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from kernelkit.console import ProgressBar
from kernelkit.train import distributed as D
from kernelkit.train.config import RESUME_VOLATILE, ConfigMismatchError, TrainConfig
from kernelkit.train.core import count_correct, epoch_batches, epoch_seed, lr_at, shard, smoothed_cross_entropy
from kernelkit.train.ema import ModelEma
from kernelkit.train.state import (
    capture_rng,
    dumps_config_diff,
    has_checkpoint,
    load_checkpoint,
    optimizer_from_flat,
    optimizer_to_flat,
    restore_rng,
    save_checkpoint,
)
from kernelkit.utils.checkpoint import CheckpointError, save_tensors
from kernelkit.utils.device import resolve_device
from kernelkit.utils.io import append_jsonl, read_jsonl, write_json, write_text
from kernelkit.utils.seed import seed_everything

if TYPE_CHECKING:
    from kernelkit.runs import Section

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]
BatchTransform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
ParamGroups = Callable[[nn.Module], Sequence[dict[str, Any]]]
OptimizerFactory = Callable[[Any], torch.optim.Optimizer]


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    ``history``: one dict per epoch (``epoch, step, lr, train_loss, train_acc`` and ``val_loss, val_acc``
    when a validation set is given). ``last_checkpoint``: the full training state written last.
    ``best_checkpoint``: evaluation weights (EMA when enabled) of the epoch with the best validation
    accuracy (``None`` without a validation set). ``final_weights``: evaluation weights at the end.
    Weight files hold a plain ``state_dict``: ``model.load_state_dict(load_tensors(path))``.
    """

    history: list[dict[str, Any]]
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    final_weights: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    steps: int = 0
    resumed_from: int | None = None


def no_decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups with weight decay on matrices/kernels and none on biases and norm scales (ndim <= 1)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    rest = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def logits_of(output: Any) -> torch.Tensor:
    """The logits in a model output: the tensor itself, the first item of a tuple/list, or ``output['logits']``."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    if isinstance(output, dict) and isinstance(output.get("logits"), torch.Tensor):
        return output["logits"]
    raise TypeError(f"cannot find logits in a model output of type {type(output).__name__}")


class Trainer:
    """Train a classifier on a map-style dataset yielding ``(x: Tensor, y: int)``.

    ``loss_fn(output, targets)`` replaces the (label-smoothed) cross entropy and must return a batch mean;
    ``batch_transform(x, y)`` augments each batch on the training device (it may return soft targets);
    ``param_groups(model)`` returns optimizer parameter groups (a group's ``lr`` is its base LR, scaled by
    the schedule like the global one); ``optimizer_factory(params_or_groups)`` builds another optimizer
    (e.g. RMSprop) in place of ``config.optimizer``. ``ddp_kwargs`` go to ``DistributedDataParallel`` (e.g.
    ``find_unused_parameters=True``); convert BatchNorm with ``nn.SyncBatchNorm.convert_sync_batchnorm``
    beforehand if batch statistics should span ranks. Checkpoints, ``metrics.jsonl`` and weights go to ``out_dir``;
    ``fit()`` resumes from the last checkpoint there (from the newest intact one, with a
    :class:`~kernelkit.train.state.CheckpointWarning`, when the latest is damaged); a checkpoint written with
    another config raises :class:`~kernelkit.train.config.ConfigMismatchError` naming the differing fields.
    Under ``torchrun`` (process group initialised, see :mod:`kernelkit.train.distributed`) the model is
    wrapped in DDP and each global batch is sharded.
    """

    def __init__(self, model: nn.Module, train_set: Dataset, config: TrainConfig, out_dir: str | Path,
                 val_set: Dataset | None = None, loss_fn: LossFn | None = None,
                 batch_transform: BatchTransform | None = None, param_groups: ParamGroups | None = None,
                 device: str | torch.device = "cpu", section: Section | None = None, quiet: bool = False,
                 optimizer_factory: OptimizerFactory | None = None, ddp_kwargs: dict[str, Any] | None = None) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config: expected a TrainConfig, got {type(config).__name__}")
        config.validate()
        if not hasattr(train_set, "__len__") or len(train_set) == 0:  # type: ignore[arg-type]
            raise ValueError("train_set: expected a non-empty map-style dataset with __len__")
        self.config = config
        self.model = model
        self.train_set = train_set
        self.val_set = val_set
        self.loss_fn = loss_fn
        self.batch_transform = batch_transform
        self.param_groups = param_groups
        self.optimizer_factory = optimizer_factory
        self.out_dir = Path(out_dir)
        self.section = section
        self.ddp_kwargs = dict(ddp_kwargs or {})
        self.quiet = quiet or bool(section is not None and getattr(section.run, "quiet", False))
        self.rank, self.world = D.rank(), D.world_size()
        self.device = D.device_for_rank(resolve_device(device) if isinstance(device, str) else device)
        self.model.to(self.device)

        n = len(train_set)  # type: ignore[arg-type]
        self.steps_per_epoch = len(self._batches(0))
        if self.steps_per_epoch == 0:
            raise ValueError(f"train_set: {n} samples give no batch of size {config.batch_size} "
                             f"(drop_last={config.drop_last}, world size {self.world})")
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch

        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.optimizer = self._make_optimizer()
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.ema = ModelEma(model, config.ema_decay) if config.ema_decay else None
        self.ddp: nn.Module | None = None

        # progress of the run (part of every checkpoint)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self._epoch_sums = self._zero_sums()  # this rank's (loss * n, correct, n) of the current epoch
        self.resumed_from: int | None = None
        self._last_checkpoint: Path | None = None  # the full-state tensors file written or resumed from last

    # -- setup ----------------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        groups: Any = list(self.param_groups(self.model)) if self.param_groups else self.model.parameters()
        if self.optimizer_factory is not None:
            return self.optimizer_factory(groups)
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                                   weight_decay=c.weight_decay)
        return torch.optim.AdamW(groups, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay)

    def _batches(self, epoch: int) -> list[list[int]]:
        c = self.config
        return epoch_batches(len(self.train_set), c.batch_size, c.seed, epoch,  # type: ignore[arg-type]
                             drop_last=c.drop_last, min_size=self.world)

    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoints"

    @property
    def eval_model(self) -> nn.Module:
        """The weights used for evaluation and saved as results: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.model

    # -- public API -------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train to ``total_steps`` (resuming from ``out_dir`` if a checkpoint is there); return the result.

        A fresh start seeds Python's, NumPy's and torch's global RNGs with ``config.seed + rank`` (dropout
        and augmentation draw from them); a resume restores their checkpointed states instead.
        """
        c = self.config
        if D.is_main():
            self.out_dir.mkdir(parents=True, exist_ok=True)
            _remove_stale_temporaries(self.out_dir)
        D.barrier()
        if has_checkpoint(self.checkpoint_dir):
            self._resume()
        else:
            if D.is_main():  # records of a run killed before its first checkpoint
                if self.section is None:
                    (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)
                else:
                    _drop_section_records(self.section, after_step=0)
            seed_everything(c.seed + self.rank)
        if self.world > 1 and self.ddp is None:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids, **self.ddp_kwargs)
        while self.step < self.total_steps:
            self._run_epoch(self.step // self.steps_per_epoch)
        last = self._last_checkpoint
        final = self.out_dir / "model.safetensors"
        if D.is_main():
            _save_weights(final, self.eval_model)
        D.barrier()
        metrics = dict(self.history[-1]) if self.history else {}
        if self.best is not None:
            metrics.update(best_val_acc=self.best["val_acc"], best_epoch=self.best["epoch"])
        return TrainResult(history=list(self.history), last_checkpoint=last,
                           best_checkpoint=self.out_dir / "best.safetensors" if self.best else None,
                           final_weights=final, metrics=metrics, steps=self.step, resumed_from=self.resumed_from)

    def lr_factor(self, step: int) -> float:
        """Schedule multiplier of every group's base LR at optimizer step ``step``."""
        c, spe = self.config, self.steps_per_epoch
        if c.schedule_unit == "epoch":
            return lr_at(step // spe, math.ceil(self.total_steps / spe), 1.0, c.schedule, c.warmup_steps,
                         c.min_lr / c.lr, c.milestones, c.gamma)
        return lr_at(step, self.total_steps, 1.0, c.schedule, c.warmup_steps, c.min_lr / c.lr,
                     [m * spe for m in c.milestones], c.gamma)

    @torch.no_grad()
    def evaluate(self, dataset: Dataset, model: nn.Module | None = None) -> dict[str, float]:
        """Mean cross entropy (no smoothing) and accuracy of the evaluation weights on ``dataset``.

        Under DDP each rank evaluates a contiguous shard and the sums are reduced.
        """
        model = model or self.eval_model
        was_training = model.training
        model.eval()
        n = len(dataset)  # type: ignore[arg-type]
        mine = shard(list(range(n)), self.rank, self.world)
        bs = self.config.eval_batch_size or self.config.batch_size
        batches = [mine[i:i + bs] for i in range(0, len(mine), bs)]
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        for x, y in self._loader(dataset, batches):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = logits_of(model(x))
            loss = torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
            sums += torch.stack([loss.double(), count_correct(logits, y).double(),
                                 torch.tensor(float(len(y)), dtype=torch.float64, device=self.device)])
        model.train(was_training)
        loss_sum, correct, count = D.all_reduce_sum(sums).tolist()
        if count == 0:
            raise ValueError("evaluate: the dataset is empty")
        return {"loss": loss_sum / count, "acc": correct / count, "n": int(count)}

    # -- one epoch ----------------------------------------------------------------------------------
    def _run_epoch(self, epoch: int) -> None:
        c = self.config
        batches = self._batches(epoch)
        first = self.step - epoch * self.steps_per_epoch
        remaining = batches[first:]
        last_step = min(self.total_steps, (epoch + 1) * self.steps_per_epoch)
        remaining = remaining[:last_step - self.step]
        local = [shard(b, self.rank, self.world) for b in remaining]
        started = time.time()
        loader = self._loader(self.train_set, local, seed=epoch_seed(c.seed, epoch) + first)
        n_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        with ProgressBar(f"epoch {epoch + 1}/{n_epochs}", len(local), disable=self.quiet or not D.is_main()) as bar:
            info: str | None = None  # the last logged loss and LR, shown after the ETA
            for (x, y), global_batch in zip(loader, remaining, strict=True):
                loss = self._train_step(x, y, len(global_batch))
                self.step += 1
                if self.step % c.log_every == 0:
                    if not math.isfinite(loss or 0.0) and self.scaler is None:
                        raise FloatingPointError(f"training loss is {loss} at step {self.step} "
                                                 f"(lr {self._lr_now():.3g}); lower lr or set grad_clip")
                    self._log({"step": self.step, "epoch": epoch + 1, "loss": loss, "lr": self._lr_now()})
                    info = f"loss {loss:.4f}  lr {self._lr_now():.3g}"
                bar.advance(info=info)
                if self.step == last_step:
                    self._end_epoch(epoch, time.time() - started)
                    self._save()
                elif c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self._save()

    def _train_step(self, x: torch.Tensor, y: torch.Tensor, global_n: int) -> float | None:
        """One optimizer step on a local shard; returns the global-batch mean loss on log steps."""
        c = self.config
        net = self.ddp or self.model
        net.train()
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.batch_transform is not None:
            x, y = self.batch_transform(x, y)
        factor = self.lr_factor(self.step)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            g["lr"] = base * factor
        with self._autocast():
            out = net(x)
            loss = self.loss_fn(out, y) if self.loss_fn else smoothed_cross_entropy(logits_of(out), y,
                                                                                   c.label_smoothing)
        # DDP averages gradients over ranks; weight each shard's mean so the result is the global-batch mean
        scaled = loss * (len(y) * self.world / global_n) if self.world > 1 else loss
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(scaled).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            scaled.backward()
        if c.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)
        with torch.no_grad():
            try:
                correct = count_correct(logits_of(out).detach(), y)
            except TypeError:
                correct = torch.tensor(float("nan"))
            n_local = float(len(y))
            sums = torch.stack([loss.detach().double() * n_local, correct.double().to(self.device),
                                torch.tensor(n_local, dtype=torch.float64, device=self.device)])
        self._epoch_sums += sums
        if (self.step + 1) % c.log_every == 0:
            total = D.all_reduce_sum(sums)
            return float(total[0] / total[2])
        return None

    def _end_epoch(self, epoch: int, seconds: float) -> None:
        loss_sum, correct, n = D.all_reduce_sum(self._epoch_sums).tolist()
        record: dict[str, Any] = {"epoch": epoch + 1, "step": self.step, "lr": self._lr_now(),
                                  "train_loss": loss_sum / n, "train_acc": correct / n}
        if self.val_set is not None:
            val = self.evaluate(self.val_set)
            record.update(val_loss=val["loss"], val_acc=val["acc"])
            if self.best is None or val["acc"] > self.best["val_acc"]:
                self.best = {"epoch": epoch + 1, "step": self.step, "val_acc": val["acc"], "val_loss": val["loss"]}
                if D.is_main():
                    _save_weights(self.out_dir / "best.safetensors", self.eval_model)
                    write_json(self.out_dir / "best.json", self.best)
        record["seconds"] = round(seconds, 3)
        self.history.append(record)
        self._log({"kind": "epoch", **record})
        self._epoch_sums = self._zero_sums()

    def _zero_sums(self) -> torch.Tensor:
        return torch.zeros(3, dtype=torch.float64, device=self.device)

    def _lr_now(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- data, precision, logging -------------------------------------------------------------------
    def _loader(self, dataset: Dataset, batches: list[list[int]],
                seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # A private generator keeps DataLoader from drawing its base seed from the global RNG. Worker
        # processes are seeded from it; randomness inside a dataset's __getitem__ is therefore reproducible
        # per epoch but not across a mid-epoch resume (augment in batch_transform for exact resume).
        loader = DataLoader(dataset, batch_sampler=batches, num_workers=self.config.num_workers,
                            pin_memory=self.device.type == "cuda",
                            generator=torch.Generator().manual_seed(seed % 2**63))
        for x, y in loader:
            yield x, torch.as_tensor(y)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _log(self, record: dict[str, Any]) -> None:
        if not D.is_main():
            return
        record = {k: v for k, v in record.items() if v is not None}
        if self.section is not None:
            step = record.pop("step")
            self.section.log(step=step, **record)
        else:
            append_jsonl(self.out_dir / "metrics.jsonl", record)

    # -- checkpoints --------------------------------------------------------------------------------
    def _save(self) -> None:
        """Collective: every rank contributes its RNG state; rank 0 writes."""
        per_rank: dict[str, torch.Tensor] = {}
        for name, t in {**capture_rng(), "epoch_sums": self._epoch_sums}.items():
            for r, value in enumerate(D.all_gather_tensor(t)):
                per_rank[f"rank{r}.{name}"] = value
        if not D.is_main():
            D.barrier()
            return
        optim_tensors, optim_meta = optimizer_to_flat(self.optimizer.state_dict())
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"optim.{k}": v for k, v in optim_tensors.items()})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        tensors.update(per_rank)
        state = {
            "history": self.history,
            "best": self.best,
            "config": self.config.to_dict(),
            "world_size": self.world,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "optimizer": optim_meta,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }
        self._last_checkpoint = save_checkpoint(self.checkpoint_dir, self.step, tensors, state,
                                                keep=self.config.keep_checkpoints)
        D.barrier()

    def _resume(self) -> None:
        ckpt = load_checkpoint(self.checkpoint_dir)
        s = ckpt.state
        saved, current = s.get("config"), self.config.to_dict()
        if not isinstance(saved, dict):
            raise CheckpointError(f"{ckpt.state_path}: has no training config")
        diff = dumps_config_diff(saved, current, RESUME_VOLATILE)
        if diff:
            keys = sorted(k for k in (set(saved) | set(current)) - RESUME_VOLATILE if saved.get(k) != current.get(k))
            raise ConfigMismatchError(f"{self.out_dir}: holds a run with a different config ({diff}); "
                                      "use a new out_dir or the same config to resume", keys)
        for key, now in (("world_size", self.world), ("steps_per_epoch", self.steps_per_epoch)):
            if s.get(key) != now:
                raise ConfigMismatchError(f"{self.out_dir}: checkpoint has {key}={s.get(key)}, this run {now}; "
                                          "resume needs the same data and number of processes", [key])
        try:
            self.model.load_state_dict(ckpt.group("model"))
            if self.ema is not None:
                self.ema.load_state_dict(ckpt.group("ema"))
            self.optimizer.load_state_dict(
                optimizer_from_flat(ckpt.group("optim"), s["optimizer"], self.optimizer.state_dict()))
        except (RuntimeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.tensors_path}: does not fit this model/optimizer ({exc})") from None
        if self.scaler is not None and s.get("scaler"):
            self.scaler.load_state_dict(s["scaler"])
        mine = ckpt.group(f"rank{self.rank}")
        self._epoch_sums = mine.pop("epoch_sums").to(self.device)
        restore_rng(mine)
        self.step = int(s["step"])
        self.history = list(s["history"])
        self.best = s["best"]
        self.resumed_from = self.step
        self._last_checkpoint = ckpt.tensors_path
        if D.is_main():
            if self.section is None:
                _truncate_metrics(self.out_dir / "metrics.jsonl", self.step)
            else:
                _drop_section_records(self.section, after_step=self.step)
                for problem in ckpt.skipped:
                    self.section.text(f"Warning: skipped a damaged checkpoint ({problem}); "
                                      f"resumed from step {self.step}.")
        D.barrier()


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop records logged after ``step`` (they came from the interrupted run and will be logged again)."""
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _drop_section_records(section: Section, after_step: int) -> None:
    """In the run's ``metrics.jsonl``: drop this section's step records past ``after_step``.

    They were logged by an interrupted earlier attempt and will be logged again, so a resumed run never
    holds the same step twice. Records of other sections (and this section's without a step) are kept;
    one Trainer per section is assumed.
    """
    path = section.run.dir / "metrics.jsonl"
    if not path.exists() or path.stat().st_size == 0:
        return
    records = read_jsonl(path)
    kept = [r for r in records if not (r.get("section") == section.key and isinstance(r.get("step"), int)
                                        and r["step"] > after_step)]
    if len(kept) != len(records) or not path.read_bytes().endswith(b"\n"):
        write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Delete temporary files a killed run left behind (atomic writes name them ``.<file>.<random>.tmp``)."""
    patterns = [(out_dir / "checkpoints", ".*.tmp")]
    patterns += [(out_dir, f".{name}.*.tmp") for name in ("best.safetensors", "best.json", "model.safetensors",
                                                          "metrics.jsonl")]
    for folder, pattern in patterns:
        for p in folder.glob(pattern):
            p.unlink(missing_ok=True)


def _save_weights(path: Path, model: nn.Module) -> None:
    save_tensors(path, model.state_dict())


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or amp == "off":
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


__all__ = ["Trainer", "TrainResult", "no_decay_groups", "logits_of"]
