"""``kernelkit.models.layer_decay``: layer ids against independent statements of the official rules, the
per-group scales and weight decay, and the trainer keeping each group's scaled LR under its schedule."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from kernelkit.models import create_model
from kernelkit.models.layer_decay import layer_decay_param_groups, layer_ids
from kernelkit.train import TrainConfig, Trainer


def _official_ids_36_blocks(name: str) -> int:
    """The official docstring's statement for depths (3, 3, 27, 3): the 36 blocks in order form 12 groups of
    three (ids 1..12); downsample layer i > 0 joins the group of the first block of stage i; the stem is 0 and
    everything after the last stage (final norm, head) 13."""
    depths = (3, 3, 27, 3)
    first = [sum(depths[:i]) for i in range(4)]  # global index of each stage's first block
    parts = name.split(".")
    if parts[0] == "downsample_layers":
        stage = int(parts[1])
        return 0 if stage == 0 else first[stage] // 3 + 1
    if parts[0] == "stages":
        return (first[int(parts[1])] + int(parts[2])) // 3 + 1
    return 13


def test_unireplknet_s_layer_ids_equal_the_official_grouping() -> None:
    with torch.device("meta"):  # only the parameter names matter: no 56M-parameter allocation
        model = create_model("unireplknet_s", num_classes=10)
    ids, num_layers = layer_ids(model)
    assert num_layers == 12
    names = [n for n, _ in model.named_parameters()]
    assert set(ids) == set(names)
    assert {n: _official_ids_36_blocks(n) for n in names} == ids
    assert sorted(set(ids.values())) == list(range(14))  # every id 0..13 is used


def test_unireplknet_a_layer_ids_by_hand() -> None:
    """depths (2, 2, 6, 2): the official rule as a hand-written table."""
    ids, _ = layer_ids(create_model("unireplknet_a", num_classes=10))
    by_prefix = {"downsample_layers.0.": 0, "downsample_layers.1.": 2, "downsample_layers.2.": 3,
                 "downsample_layers.3.": 12, "stages.0.0.": 1, "stages.0.1.": 1, "stages.1.0.": 2, "stages.1.1.": 2,
                 "stages.2.0.": 3, "stages.2.1.": 3, "stages.2.2.": 3, "stages.2.3.": 4, "stages.2.4.": 4,
                 "stages.2.5.": 4, "stages.3.0.": 12, "stages.3.1.": 12, "norm.": 13, "head.": 13}
    for name, layer in ids.items():
        prefix = [p for p in by_prefix if name.startswith(p)]
        assert len(prefix) == 1, name
        assert layer == by_prefix[prefix[0]], name


def test_mixnet_layer_ids_stem_stages_head() -> None:
    model = create_model("mixnet_s", num_classes=10)
    ids, num_layers = layer_ids(model)
    assert num_layers == len(model.blocks) == 6
    for name, layer in ids.items():
        head = name.split(".")[0]
        want = {"conv_stem": 0, "bn1": 0, "conv_head": 7, "bn2": 7, "classifier": 7}.get(head)
        assert layer == (int(name.split(".")[1]) + 1 if head == "blocks" else want), name


def test_groups_scale_lr_and_skip_decay_on_biases_and_1d_params() -> None:
    model = create_model("unireplknet_a", num_classes=10)
    lr, wd, decay = 4e-3, 0.05, 0.8
    groups = layer_decay_param_groups(model, lr, wd, decay)
    ids, _ = layer_ids(model)
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    names = {id(p): n for n, p in model.named_parameters()}
    for g in groups:
        assert g["lr_scale"] == pytest.approx(decay ** (13 - g["layer_id"]))
        assert g["lr"] == pytest.approx(lr * g["lr_scale"])
        for p in g["params"]:
            name = names[id(p)]
            assert ids[name] == g["layer_id"]
            flat = p.ndim <= 1 or name.endswith(".bias")
            assert g["weight_decay"] == (0.0 if flat else wd), name
    by_id = {g["layer_id"]: g["lr_scale"] for g in groups}
    assert by_id[13] == 1.0 and by_id[0] == pytest.approx(0.8 ** 13)
    kept = layer_decay_param_groups(model, lr, wd, decay, skip_no_decay=False)
    assert all(g["weight_decay"] == wd for g in kept)


def test_frozen_parameters_and_bad_arguments() -> None:
    model = create_model("mixnet_s", num_classes=10)
    model.conv_stem.weight.requires_grad_(False)
    groups = layer_decay_param_groups(model, 1e-3, 0.05, 0.7)
    assert all(p is not model.conv_stem.weight for g in groups for p in g["params"])
    with pytest.raises(ValueError, match="layer_decay"):
        layer_decay_param_groups(model, 1e-3, 0.05, 1.5)
    with pytest.raises(ValueError, match="UniRepLKNet and MixNet"):
        layer_decay_param_groups(nn.Linear(3, 2), 1e-3, 0.05, 0.7)


def test_trainer_keeps_each_groups_scaled_lr_under_the_schedule(tmp_path) -> None:
    model = create_model("unireplknet_a", num_classes=3)
    data = TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,)))
    cfg = TrainConfig(max_steps=2, batch_size=4, lr=1e-3, schedule="cosine", warmup_steps=3, checkpoint_every=0)
    trainer = Trainer(model, data, cfg, tmp_path, quiet=True,
                      param_groups=lambda m: layer_decay_param_groups(m, cfg.lr, 0.05, 0.75))
    trainer.fit()
    factor = trainer.lr_factor(trainer.step - 1)
    assert 0 < factor < 1
    for g in trainer.optimizer.param_groups:
        assert g["lr"] == pytest.approx(cfg.lr * g["lr_scale"] * factor)
    assert len({round(g["lr"], 15) for g in trainer.optimizer.param_groups}) > 5
