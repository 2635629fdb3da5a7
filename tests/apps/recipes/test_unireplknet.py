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


def _ctx(tmp_path):
    import torch

    from kernelkit.apps.recipes import ExperimentContext
    from kernelkit.runs import Run

    run = Run.create("unireplknet", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("unireplknet", "UniRepLKNet")
    return run, ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path,
                                  config=UniRepLKNetReportConfig.quick())


def test_recorded_runs_go_into_recorded_boxes_with_their_provenance(tmp_path):
    from kernelkit.apps.recipes.unireplknet import recorded, recorded_runs
    from kernelkit.runs import RecordedTable

    run, ctx = _ctx(tmp_path)
    recorded_runs(ctx)
    kinds = [kind for kind, _ in ctx.section.items]
    assert kinds == ["recorded", "recorded"]  # nothing recorded is shown as a table of this run
    for (_, table), name in zip(ctx.section.items, ("torus", "cifar"), strict=True):
        rec = recorded(name)
        assert isinstance(table, RecordedTable)
        assert (table.command, table.date, table.commit) == (rec["command"], rec["date"], rec["commit"])
    torus = ctx.section.items[0][1]
    assert [r[torus.columns.index("final val acc per seed")] for r in torus.rows] == ["1.000, 1.000, 1.000",
                                                                                      "0.500, 0.500, 0.500"]
    assert ctx.section.results["long_range_recorded"] == [dict(zip(torus.columns, r, strict=True)) for r in torus.rows]
    html = (run.write()).read_text(encoding="utf-8")
    assert html.count("Recorded earlier (not this run)") == 2 and "28f467a" in html and "d6064cc" in html


def test_sizes_table_labels_recorded_and_published_columns(tmp_path):
    from kernelkit.apps.recipes.unireplknet import sizes_table

    _, ctx = _ctx(tmp_path)
    sizes_table(ctx)
    ((kind, table),) = ctx.section.items
    assert kind == "table"
    ours = [c for c in table.columns if "ours" in c]
    others = [c for c in table.columns if c not in ours and c not in ("model", "res")]
    assert len(ours) == 3 and others  # every column that is not measured here says where it comes from
    assert all("recorded" in c or "published" in c for c in others), others
    assert all(r[table.columns.index(next(c for c in others if "recorded" in c))] == "= ours" for r in table.rows)


def test_the_recorded_boxes_come_after_everything_measured_and_the_intro_says_so(tmp_path, monkeypatch):
    from kernelkit.apps.recipes import unireplknet

    measured = ("sizes_table", "reparam_check", "speed", "erf_section", "long_range", "real_data")
    for name in measured:  # stand-ins for the slow measured parts
        monkeypatch.setattr(unireplknet, name, lambda ctx, name=name: ctx.section.table(name, [{"x": 1}]))
    _, ctx = _ctx(tmp_path)
    unireplknet.unireplknet_report(ctx)
    kinds = [kind for kind, _ in ctx.section.items]
    assert kinds == ["text", *["table"] * len(measured), "recorded", "recorded"]
    intro = ctx.section.items[0][1]
    assert "numbers below are measured in this run" not in intro
    assert "Recorded earlier (not this run)" in intro and "'recorded'" in intro and "'published'" in intro
