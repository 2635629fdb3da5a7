"""Trainer behaviour in one process: clipping, hooks, logging, checkpoints, corrupt files, crash + resume."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kernelkit.train import CheckpointWarning, ConfigMismatchError, TrainConfig, Trainer, TrainResult, no_decay_groups
from kernelkit.train.state import capture_rng, load_checkpoint, optimizer_from_flat, optimizer_to_flat, restore_rng
from kernelkit.utils.checkpoint import CheckpointError, load_tensors
from kernelkit.utils.io import read_jsonl


def blobs(n: int = 96, d: int = 6, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=g) * 2
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorDataset(centers[y] + torch.randn(n, d, generator=g), y)


def mlp(d: int = 6, classes: int = 3, seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, classes))


def test_grad_clip_scales_the_update_to_the_clipped_gradient(tmp_path: Path) -> None:
    data = blobs(32)
    model = mlp()
    reference = mlp()
    x, y = data.tensors
    nn.functional.cross_entropy(reference(x), y).backward()
    grads = [p.grad.clone() for p in reference.parameters()]
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    clip = float(norm) / 4  # the clip is active: the update shrinks four-fold
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(max_steps=1, batch_size=32, lr=1.0, momentum=0.0, schedule="constant", grad_clip=clip)
    Trainer(model, data, cfg, tmp_path, quiet=True).fit()
    for p0, p1, g in zip(before, model.parameters(), grads, strict=True):
        assert torch.allclose(p0 - p1, g * clip / norm, atol=1e-6)


def test_param_groups_keep_their_lr_ratio_under_the_schedule(tmp_path: Path) -> None:
    model = mlp()
    seen: list[list[float]] = []

    def groups(m: nn.Module) -> list[dict]:
        g = no_decay_groups(m, weight_decay=0.01)
        g[1]["lr"] = 0.01  # base 0.1 for weights, 0.01 for biases
        return g

    trainer = Trainer(model, blobs(64), TrainConfig(epochs=2, batch_size=16, lr=0.1, warmup_steps=3),
                      tmp_path, param_groups=groups, quiet=True,
                      batch_transform=lambda x, y: (seen.append([g["lr"] for g in trainer.optimizer.param_groups])
                                                    or (x, y)))
    trainer.fit()
    # the transform runs before the LR of the step is set, so seen[k] holds the LR of step k - 1
    for a, b in seen[1:]:
        assert b == pytest.approx(a / 10)
    assert seen[1][0] == pytest.approx(0.1 / 3)  # first warmup step of the 0.1 group
    assert [g["weight_decay"] for g in trainer.optimizer.param_groups] == [0.01, 0.0]


def test_per_epoch_multistep_schedule_and_optimizer_factory(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=5, batch_size=16, lr=0.3, schedule="multistep", milestones=(2, 4), gamma=0.5,
                      schedule_unit="epoch", warmup_steps=1)
    trainer = Trainer(mlp(), blobs(64), cfg, tmp_path, quiet=True,
                      optimizer_factory=lambda params: torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.9))
    assert isinstance(trainer.optimizer, torch.optim.RMSprop)
    per_epoch = [[trainer.lr_factor(e * 4 + b) for b in range(4)] for e in range(5)]  # 4 steps per epoch
    assert per_epoch == [[1.0] * 4, [1.0] * 4, [0.5] * 4, [0.5] * 4, [0.25] * 4]
    result = trainer.fit()
    assert [h["lr"] for h in result.history] == pytest.approx([0.3, 0.3, 0.15, 0.15, 0.075])
    # warmup counts epochs here: with warmup_steps=2 the first epoch runs at half the LR
    cfg2 = TrainConfig(epochs=4, batch_size=16, lr=0.3, schedule="cosine", schedule_unit="epoch", warmup_steps=2)
    t2 = Trainer(mlp(), blobs(64), cfg2, tmp_path / "b", quiet=True)
    assert [t2.lr_factor(s) for s in (0, 3, 4, 8, 12)] == pytest.approx([0.5, 0.5, 1.0, 1.0, 0.5])


def test_loss_fn_and_soft_target_batch_transform_are_used(tmp_path: Path) -> None:
    calls = {"loss": 0}

    def mixup_like(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, nn.functional.one_hot(y, 3).float() * 0.9 + 0.1 / 3

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["loss"] += 1
        assert target.dtype.is_floating_point
        return nn.functional.cross_entropy(out, target)

    result = Trainer(mlp(), blobs(48), TrainConfig(epochs=1, batch_size=16), tmp_path, loss_fn=loss_fn,
                     batch_transform=mixup_like, quiet=True).fit()
    assert calls["loss"] == 3 and result.steps == 3
    assert 0.0 <= result.history[0]["train_acc"] <= 1.0


def test_metrics_go_to_section_when_given(tmp_path: Path) -> None:
    from kernelkit.runs import Run

    with Run.create("t", {}, out=tmp_path / "run", quiet=True) as run:
        sec = run.section("train", "Training")
        Trainer(mlp(), blobs(64), TrainConfig(epochs=2, batch_size=16, log_every=2), tmp_path / "out",
                val_set=blobs(32, seed=1), section=sec).fit()
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [2, 4, 6, 8]
    assert [r["epoch"] for r in records if r.get("kind") == "epoch"] == [1, 2]
    assert all(r["section"] == "train" for r in records)
    assert not (tmp_path / "out" / "metrics.jsonl").exists()


def test_evaluate_uses_ema_weights_and_best_is_selected_on_validation(tmp_path: Path) -> None:
    model = mlp()
    val = blobs(40, seed=5)
    trainer = Trainer(model, blobs(), TrainConfig(epochs=3, batch_size=16, ema_decay=0.8), tmp_path,
                      val_set=val, quiet=True)
    result = trainer.fit()
    best = max(result.history, key=lambda h: h["val_acc"])
    assert result.metrics["best_val_acc"] == best["val_acc"]
    assert json.loads((tmp_path / "best.json").read_text())["epoch"] == best["epoch"]
    # the final weights file holds the EMA weights and evaluating them reproduces the last val numbers
    final = mlp()
    final.load_state_dict(load_tensors(result.final_weights))
    assert all(torch.equal(a, b) for a, b in zip(final.state_dict().values(),
                                                  trainer.ema.module.state_dict().values(), strict=True))
    again = trainer.evaluate(val, model=final)
    assert again["acc"] == pytest.approx(result.history[-1]["val_acc"])
    assert again["loss"] == pytest.approx(result.history[-1]["val_loss"], rel=1e-6)


def test_rng_states_round_trip() -> None:
    state = capture_rng()
    a = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    restore_rng(state)
    b = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2] and a[3] == b[3]


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_optimizer_state_round_trips_through_tensors_and_json(name: str) -> None:
    model = mlp()
    make = (lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True)) if name == "sgd" else (
        lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.95)))
    opt = make(model.parameters())
    model(torch.randn(4, 6)).sum().backward()
    opt.step()
    tensors, meta = optimizer_to_flat(opt.state_dict())
    meta = json.loads(json.dumps(meta))  # what the JSON file gives back
    fresh = make(model.parameters())
    fresh.load_state_dict(optimizer_from_flat(tensors, meta, fresh.state_dict()))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid in a["state"]:
        for k, v in a["state"][pid].items():
            assert torch.equal(v, b["state"][pid][k])


def _crash_after(step: int):
    count = {"n": 0}

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count["n"] += 1
        if count["n"] > step:
            raise KeyboardInterrupt("simulated crash")
        return x + 0.1 * torch.randn_like(x), y  # augmentation draws from the global RNG

    return transform


RMSPROP = {"schedule": "multistep", "milestones": (1, 2), "schedule_unit": "epoch", "gamma": 0.3}


@pytest.mark.parametrize("variant", ["adamw", "rmsprop"])
def test_crash_then_resume_reproduces_uninterrupted_run(tmp_path: Path, variant: str) -> None:
    extra = RMSPROP if variant == "rmsprop" else {}
    cfg = TrainConfig(epochs=3, batch_size=16, optimizer="adamw", lr=0.01, weight_decay=0.05, warmup_steps=4,
                      label_smoothing=0.1, ema_decay=0.9, grad_clip=2.0, checkpoint_every=4, log_every=1, seed=3,
                      **extra)  # type: ignore[arg-type]
    factory = (lambda ps: torch.optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True)) if extra else None
    data, val = blobs(100), blobs(30, seed=2)
    full = Trainer(mlp(dropout=0.3), data, cfg, tmp_path / "full", val_set=val, quiet=True,
                   batch_transform=_crash_after(10**9), optimizer_factory=factory).fit()
    with pytest.raises(KeyboardInterrupt):
        Trainer(mlp(dropout=0.3), data, cfg, tmp_path / "cut", val_set=val, quiet=True,
                batch_transform=_crash_after(10), optimizer_factory=factory).fit()
    assert load_checkpoint(tmp_path / "cut" / "checkpoints").state["step"] == 8
    resumed = Trainer(mlp(dropout=0.3, seed=99), data, cfg, tmp_path / "cut", val_set=val, quiet=True,
                      batch_transform=_crash_after(10**9), optimizer_factory=factory).fit()
    assert resumed.resumed_from == 8
    a, b = load_tensors(full.last_checkpoint), load_tensors(resumed.last_checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # weights, EMA, AdamW moments, RNG states
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in full.history]
    assert [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history] == strip
    losses = [[r.get("loss") for r in read_jsonl(d / "metrics.jsonl")] for d in (tmp_path / "full", tmp_path / "cut")]
    assert losses[0] == losses[1]


def test_resume_with_a_different_config_is_refused(tmp_path: Path) -> None:
    Trainer(mlp(), blobs(32), TrainConfig(epochs=1, batch_size=16), tmp_path, quiet=True).fit()
    with pytest.raises(ConfigMismatchError, match=r"different config \(lr: 0.1 -> 0.2\)") as info:
        Trainer(mlp(), blobs(32), TrainConfig(epochs=1, batch_size=16, lr=0.2), tmp_path, quiet=True).fit()
    assert info.value.keys == ["lr"] and "\n" not in str(info.value)
    with pytest.raises(ConfigMismatchError, match=r"epochs: 1 -> 2; lr: 0.1 -> 0.2") as info:
        Trainer(mlp(), blobs(32), TrainConfig(epochs=2, batch_size=16, lr=0.2), tmp_path, quiet=True).fit()
    assert info.value.keys == ["epochs", "lr"]
    with pytest.raises(ConfigMismatchError, match=r"steps_per_epoch=2, this run 3") as info:
        Trainer(mlp(), blobs(48), TrainConfig(epochs=1, batch_size=16), tmp_path, quiet=True).fit()
    assert isinstance(info.value, ValueError) and info.value.keys == ["steps_per_epoch"]
    # a finished run resumes to the same result without training further
    again = Trainer(mlp(), blobs(32), TrainConfig(epochs=1, batch_size=16, log_every=5), tmp_path, quiet=True).fit()
    assert again.resumed_from == again.steps == 2


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    cfg = TrainConfig(epochs=1, batch_size=16, ema_decay=0.9, checkpoint_every=1)
    Trainer(mlp(), blobs(32), cfg, tmp_path, quiet=True).fit()
    return tmp_path


def test_checkpoint_round_trip(finished_run: Path) -> None:
    ckpt = load_checkpoint(finished_run / "checkpoints")
    assert ckpt.state["step"] == 2 and ckpt.tensors_path.name == "step-00000002.safetensors"
    assert set(ckpt.group("model")) == set(mlp().state_dict())
    assert set(ckpt.group("ema")) == set(mlp().state_dict())
    assert {"rank0.torch", "rank0.numpy_keys", "rank0.python_state", "rank0.epoch_sums"} <= set(ckpt.tensors)
    files = sorted(p.name for p in (finished_run / "checkpoints").iterdir())
    assert files == ["latest.json", "step-00000001.json", "step-00000001.safetensors",
                     "step-00000002.json", "step-00000002.safetensors"]
    assert not any(p.name.endswith(".tmp") for p in finished_run.rglob("*"))


def _resume(run: Path) -> TrainResult:
    cfg = TrainConfig(epochs=1, batch_size=16, ema_decay=0.9, checkpoint_every=1)
    return Trainer(mlp(), blobs(32), cfg, run, quiet=True).fit()


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_tensors(a), load_tensors(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def test_truncated_latest_checkpoint_falls_back_to_the_intact_older_one(finished_run: Path) -> None:
    reference = finished_run / "reference.safetensors"
    reference.write_bytes((finished_run / "model.safetensors").read_bytes())
    (finished_run / "model.safetensors").unlink()
    _truncate(finished_run / "checkpoints" / "step-00000002.safetensors")
    with pytest.warns(CheckpointWarning, match=r"step-00000002\.safetensors: \d+ bytes, expected \d+; .*truncated"
                                               r".*resuming from step 1"):
        result = _resume(finished_run)
    assert result.resumed_from == 1 and result.steps == 2  # step 2 was trained again
    assert _same_weights(result.final_weights, reference)  # ... to the same weights as the first time
    assert load_checkpoint(finished_run / "checkpoints").state["step"] == 2  # and its checkpoint rewritten whole


def test_corrupt_checkpoint_bytes_fall_back_with_a_warning(finished_run: Path) -> None:
    path = finished_run / "checkpoints" / "step-00000002.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF  # inside the tensor data: safetensors itself would not notice
    path.write_bytes(bytes(raw))
    with pytest.warns(CheckpointWarning, match=r"step-00000002\.safetensors: SHA-256 does not match.*corrupt"):
        assert _resume(finished_run).resumed_from == 1


@pytest.mark.parametrize(("text", "message"), [
    ('{"format": 1, "step": 2, "tensors_', r"step-00000002\.json: state file is not valid JSON"),
    ('{"step": 2}', r"step-00000002\.json: not a training state file"),
    ('[1, 2]', r"step-00000002\.json: not a training state file"),
])
def test_damaged_json_state_falls_back_with_a_warning(finished_run: Path, text: str, message: str) -> None:
    (finished_run / "checkpoints" / "step-00000002.json").write_text(text)
    with pytest.warns(CheckpointWarning, match=message):
        assert _resume(finished_run).resumed_from == 1


def test_damaged_pointer_falls_back_to_the_newest_intact_pair(finished_run: Path) -> None:
    (finished_run / "checkpoints" / "latest.json").write_text('["step-00000002"]')
    with pytest.warns(CheckpointWarning, match=r"latest\.json: expected keys step, tensors, state"):
        result = _resume(finished_run)
    assert result.resumed_from == result.steps == 2
    assert result.last_checkpoint == finished_run / "checkpoints" / "step-00000002.safetensors"


def test_no_intact_checkpoint_is_a_clear_error_naming_every_damaged_file(finished_run: Path) -> None:
    ckpt = finished_run / "checkpoints"
    _truncate(ckpt / "step-00000002.safetensors")
    (ckpt / "step-00000001.json").write_text("garbage")
    with pytest.raises(CheckpointError, match=r"no intact checkpoint.*step-00000002\.safetensors: .*truncated"
                                              r".*step-00000001\.json: state file is not valid JSON"):
        _resume(finished_run)
    assert (ckpt / "step-00000001.json").read_text() == "garbage"  # nothing deleted or rewritten


def test_a_state_file_renamed_to_another_step_is_not_trusted(finished_run: Path) -> None:
    ckpt = finished_run / "checkpoints"
    (ckpt / "latest.json").unlink()
    (ckpt / "step-00000009.json").write_text((ckpt / "step-00000002.json").read_text())
    with pytest.warns(CheckpointWarning) as caught:
        assert _resume(finished_run).resumed_from == 2
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "latest.json: state file not found" in messages[0] and "step-00000009.json: names step 2" in messages[1]


def test_checkpoint_of_another_model_is_a_clear_error(finished_run: Path) -> None:
    cfg = TrainConfig(epochs=1, batch_size=16, ema_decay=0.9, checkpoint_every=1)
    other = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with pytest.raises(CheckpointError, match=r"step-00000002\.safetensors: does not fit this model"):
        Trainer(other, blobs(32), cfg, finished_run, quiet=True).fit()


def test_amp_is_a_no_op_on_cpu(tmp_path: Path) -> None:
    from kernelkit.train.trainer import _amp_dtype

    assert all(_amp_dtype(m, torch.device("cpu")) is None for m in ("auto", "bf16", "fp16", "off"))
    runs = [Trainer(mlp(), blobs(32), TrainConfig(epochs=1, batch_size=16, amp=amp), tmp_path / amp, quiet=True)
            for amp in ("bf16", "off")]
    assert runs[0].scaler is None
    a, b = (load_tensors(r.fit().final_weights) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_pointer_write_leaves_the_previous_checkpoint_loadable(finished_run: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import kernelkit.train.state as state

    ckpt_dir = finished_run / "checkpoints"
    real = state.write_json

    def dying_write(path: Path, obj: object) -> None:  # the process dies just before the pointer is replaced
        if Path(path).name == state.POINTER:
            raise KeyboardInterrupt("killed")
        real(path, obj)

    monkeypatch.setattr(state, "write_json", dying_write)
    model = mlp()
    with pytest.raises(KeyboardInterrupt):
        state.save_checkpoint(ckpt_dir, 7, {"model.w": torch.ones(2)}, {"note": "newer"})
    assert (ckpt_dir / "step-00000007.json").exists()  # the new pair is complete but not pointed to
    (ckpt_dir / ".step-00000008.safetensors.123.tmp").write_bytes(b"partial")  # an interrupted temp file
    assert load_checkpoint(ckpt_dir).state["step"] == 2
    monkeypatch.undo()
    result = Trainer(model, blobs(32), TrainConfig(epochs=1, batch_size=16, ema_decay=0.9, checkpoint_every=1),
                     finished_run, quiet=True).fit()
    assert result.resumed_from == 2
    assert not list(ckpt_dir.glob(".*.tmp"))  # the interrupted temp file was cleaned up


def test_diverging_loss_is_a_clear_error(tmp_path: Path) -> None:
    data = blobs(32)
    data.tensors[0][0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="training loss is nan at step 1"):
        Trainer(mlp(), data, TrainConfig(epochs=1, batch_size=32, log_every=1), tmp_path, quiet=True).fit()


def test_bad_device_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid device 'gpu0'"):
        Trainer(mlp(), blobs(32), TrainConfig(), tmp_path, device="gpu0")


def test_a_fresh_start_drops_metrics_of_a_run_killed_before_its_first_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "lo')
    Trainer(mlp(), blobs(32), TrainConfig(epochs=1, batch_size=16, log_every=1), tmp_path, quiet=True).fit()
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 2, 2]
    assert read_jsonl(tmp_path / "metrics.jsonl")[0]["loss"] != 9.0


def _section_run(out: Path, run_dir: Path, transform: object) -> None:
    from kernelkit.runs import Run

    cfg = TrainConfig(epochs=3, batch_size=16, checkpoint_every=4, log_every=1, seed=3)
    with Run.create("t", {}, out=run_dir, quiet=True) as run:
        run.section("other", "Other").log(step=50, value=1.0)  # another section's records stay untouched
        sec = run.section("train", "Training")
        Trainer(mlp(), blobs(100), cfg, out, val_set=blobs(30, seed=2), section=sec,
                batch_transform=transform).fit()  # type: ignore[arg-type]


def test_resume_in_a_section_never_logs_a_step_twice(tmp_path: Path) -> None:
    _section_run(tmp_path / "full_out", tmp_path / "full", _crash_after(10**9))
    with pytest.raises(KeyboardInterrupt):  # crash at step 11, after the checkpoint of step 8
        _section_run(tmp_path / "cut_out", tmp_path / "cut", _crash_after(10))
    logged = [r["step"] for r in read_jsonl(tmp_path / "cut" / "metrics.jsonl") if "loss" in r]
    assert logged == list(range(1, 11))  # steps 9 and 10 were logged past the checkpoint
    _section_run(tmp_path / "cut_out", tmp_path / "cut", _crash_after(10**9))

    def rows(d: str) -> list[tuple]:
        return [(r["section"], r.get("step"), r.get("kind"), r.get("loss"), r.get("val_acc"))
                for r in read_jsonl(tmp_path / d / "metrics.jsonl")]

    full, cut = rows("full"), rows("cut")
    steps = [(s, k) for sec, s, k, *_ in cut if sec == "train"]
    assert len(steps) == len(set(steps)) == 21 + 3  # every step once, every epoch once
    assert [r for r in cut if r[0] == "train"] == [r for r in full if r[0] == "train"]
    assert [r for r in cut if r[0] == "other"] == [("other", 50, None, None, None)] * 2  # one per attempt


def test_a_fresh_start_in_a_section_drops_the_records_of_a_run_killed_before_its_first_checkpoint(
        tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        _section_run(tmp_path / "out", tmp_path / "run", _crash_after(3))
    assert not (tmp_path / "out" / "checkpoints").exists()
    _section_run(tmp_path / "out", tmp_path / "run", _crash_after(10**9))
    steps = [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "loss" in r]
    assert steps == list(range(1, 22))


def test_a_rerun_with_another_config_is_refused_and_keeps_the_finished_report(tmp_path: Path) -> None:
    from kernelkit.runs import Run

    def attempt(lr: float) -> None:
        cfg = TrainConfig(epochs=1, batch_size=16, lr=lr, log_every=1)
        with Run.create("t", {"lr": lr}, out=tmp_path / "run", quiet=True) as run:
            sec = run.section("train", "Training")
            sec.data_source("blobs")
            result = Trainer(mlp(), blobs(32), cfg, sec.dir / "trainer", section=sec).fit()
            sec.table("history", result.history)

    attempt(0.1)
    files = {n: (tmp_path / "run" / n).read_bytes() for n in ("results.json", "report.html", "config.json",
                                                               "metrics.jsonl")}
    with pytest.raises(ConfigMismatchError, match=r"lr: 0.1 -> 0.2"):
        attempt(0.2)
    assert {n: (tmp_path / "run" / n).read_bytes() for n in files} == files
    assert json.loads(files["results.json"])["status"] == "ok"


def test_pruning_never_drops_the_intact_pair_for_a_damaged_newer_one(tmp_path: Path) -> None:
    from kernelkit.train.state import save_checkpoint

    ckpt = tmp_path / "checkpoints"
    for step in (1, 2, 5):  # 5: a damaged pair left by an interrupted run; the rerun resumed from 2
        save_checkpoint(ckpt, step, {"w": torch.full((2,), float(step))}, {}, keep=3)
    (ckpt / "step-00000005.json").write_text("garbage")
    save_checkpoint(ckpt, 3, {"w": torch.full((2,), 3.0)}, {}, keep=2)
    names = sorted(p.name for p in ckpt.glob("step-*.json"))
    assert names == ["step-00000002.json", "step-00000003.json", "step-00000005.json"]
    (ckpt / "step-00000003.json").write_text("garbage")  # the new latest is damaged too
    with pytest.warns(CheckpointWarning):
        assert load_checkpoint(ckpt).state["step"] == 2
