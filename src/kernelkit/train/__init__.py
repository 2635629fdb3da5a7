"""Plain classification training loop with exact resume and DDP.

Usage::

    from kernelkit.train import TrainConfig, Trainer

    config = TrainConfig(epochs=10, batch_size=128, optimizer="sgd", lr=0.1, weight_decay=5e-4,
                         schedule="cosine", warmup_steps=200, label_smoothing=0.1, ema_decay=0.999,
                         grad_clip=5.0, checkpoint_every=500, seed=0)
    trainer = Trainer(model, train_set, config, out_dir="runs/cifar", val_set=val_set, device="cuda")
    result = trainer.fit()          # resumes from runs/cifar/checkpoints/ if a checkpoint is there
    result.history[-1]["val_acc"]; result.best_checkpoint; trainer.evaluate(test_set)

Datasets are map-style and yield ``(x: Tensor, y: int)``. Hooks: ``loss_fn(output, targets)``,
``batch_transform(x, y) -> (x, y)`` (augmentation on the training device, may return soft targets),
``param_groups(model) -> [{"params": ..., "lr": ...}, ...]`` (see :func:`no_decay_groups`),
``optimizer_factory(params) -> Optimizer`` (e.g. RMSprop). Schedules: ``cosine`` / ``constant`` /
``multistep`` (``milestones`` in epochs, ``gamma``), all after a linear warmup, evaluated per step or,
with ``schedule_unit="epoch"``, per epoch.

``out_dir`` receives ``checkpoints/`` (safetensors + JSON state, atomic, no pickle), ``metrics.jsonl``
(or ``section.log`` when a :class:`kernelkit.runs.Section` is given), ``best.safetensors`` (validation
accuracy, never test) and ``model.safetensors``. Each epoch's batch order is a permutation seeded by
``(seed, epoch)`` and the global RNG states are checkpointed, so a run killed at any moment and
resumed with the same ``out_dir`` and config reproduces the uninterrupted run exactly on CPU
(randomness belongs in ``batch_transform`` or the model; random draws inside a dataset's
``__getitem__`` in DataLoader workers are not replayed mid-epoch). A damaged checkpoint raises
:class:`kernelkit.utils.checkpoint.CheckpointError` naming the file; a different config in the same
``out_dir`` raises ``ValueError`` listing the differences.

Distributed (DDP): launch the same script with ``torchrun --nproc_per_node 2 train.py`` and call
:func:`kernelkit.train.distributed.init_from_env` before building the trainer::

    from kernelkit.train import distributed
    distributed.init_from_env()            # gloo on CPU, nccl on CUDA; no-op without torchrun
    result = Trainer(model, data, config, "runs/x", device="cuda").fit()   # cuda -> cuda:LOCAL_RANK
    distributed.cleanup()

``batch_size`` stays the global batch: each rank trains on its shard, gradients are averaged with
shard-size weights (equal to single-process training apart from BatchNorm statistics, which are per
rank), metrics are reduced over ranks and only rank 0 writes files.
"""

from kernelkit.train import distributed
from kernelkit.train.config import ConfigMismatchError, TrainConfig
from kernelkit.train.core import lr_at, smoothed_cross_entropy
from kernelkit.train.ema import ModelEma
from kernelkit.train.state import CheckpointWarning
from kernelkit.train.trainer import Trainer, TrainResult, logits_of, no_decay_groups

__all__ = ["TrainConfig", "ConfigMismatchError", "CheckpointWarning",
           "Trainer", "TrainResult", "ModelEma", "distributed", "lr_at", "logits_of",
           "no_decay_groups", "smoothed_cross_entropy"]
