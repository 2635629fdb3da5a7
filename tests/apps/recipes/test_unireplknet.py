"""The unireplknet recipe: its config presets and the Trainer-based long-range training."""

from __future__ import annotations

from dataclasses import asdict, replace

from kernelkit.apps.configs.convnet import LongRangeConfig, UniRepLKNetReportConfig
from kernelkit.apps.recipes import EXPERIMENTS, recipe_config
from kernelkit.apps.recipes.unireplknet import VARIANTS, train_torus_net
from kernelkit.models import list_models


def test_registered_with_its_config_and_quick_preset() -> None:
    assert EXPERIMENTS.entry("unireplknet").meta["config"] is UniRepLKNetReportConfig
    full, quick = recipe_config("unireplknet", False), recipe_config("unireplknet", True)
    assert full == UniRepLKNetReportConfig() and quick == UniRepLKNetReportConfig.quick()
    assert full.long_range == LongRangeConfig() and quick.long_range.size == 16 and quick.long_range.seeds == (0,)
    assert asdict(quick)["long_range"]["near"] == (3, 5)
    assert sorted(f"unireplknet_{v}" for v in VARIANTS) == list_models("unireplknet_*")


def test_torus_net_trains_on_the_trainer(tmp_path) -> None:
    cfg = replace(LongRangeConfig(), size=12, near=(2, 3), far=(4, 6), depth=1, n_train=64, n_val=32, epochs=2,
                  batch_size=32)
    row, hist = train_torus_net(cfg, 13, 8, seed=1, out_dir=tmp_path / "k13")
    assert [h["epoch"] for h in hist] == [1, 2]
    assert row["kernel"] == 13 and row["receptive field"] == 13 and row["ceiling"] == 1.0
    assert 0.0 <= row["final val acc"] <= 1.0 and row["final val acc"] == hist[-1]["val_acc"]
    assert (tmp_path / "k13" / "model.safetensors").exists()
    again, _ = train_torus_net(cfg, 13, 8, seed=1, out_dir=tmp_path / "k13-again")
    assert again == row  # seeded: the same data, initialisation and batch order


def test_recorded_runs_name_their_command_date_and_commit():
    import re

    from kernelkit.apps.recipes.unireplknet import recorded

    for name in ("torus", "cifar"):
        rec = recorded(name)
        assert rec["command"] and rec["what"] and rec["results"]
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", rec["date"])
        assert re.match(r"[0-9a-f]{7}", rec["commit"])
