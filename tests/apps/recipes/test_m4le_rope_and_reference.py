"""Pieces of the registered experiment, and the side-by-side driver's availability check."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelkit.apps.configs.m4le import M4leRopeScalingConfig
from kernelkit.apps.recipes import EXPERIMENTS, ExperimentContext, recipe_config


def test_experiment_is_registered_for_m4le_with_its_config():
    entry = EXPERIMENTS.entry("m4le_rope_scaling")
    assert entry.meta["system"] == "m4le" and entry.meta["config"] is M4leRopeScalingConfig
    quick, full = recipe_config("m4le_rope_scaling", True), recipe_config("m4le_rope_scaling", False)
    assert quick == M4leRopeScalingConfig.quick() and full == M4leRopeScalingConfig()
    # quick: one long instance per method (the code path), a small sanity check, the loss inside the trained context
    assert quick.tasks == ("nq-open",) and quick.buckets == (1000,) and quick.n == 1 and quick.sanity_n == 6
    assert quick.loss_edges[-1] == 1024 and full.loss_edges[-1] == 16384
    assert full.tasks == ("nq-open", "hotpotqa", "c3", "online-shopping", "qmsum") and full.n == 1
    assert full.buckets == (1000, 2000, 4000, 6000, 8000) and full.methods == quick.methods and full.factor == 2.0
    with pytest.raises(ValueError, match="--rope"):
        M4leRopeScalingConfig(methods=("none", "magic"))


def test_build_records_falls_back_to_embedded_corpus(tmp_path):
    import torch

    from kernelkit.apps.recipes.m4le_rope import build_records

    ctx = ExperimentContext(section=None, quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path)
    records, used = build_records(ctx, ("nq-open", "wikitext-103", "c3"), (1000, 2000), 2)
    assert len(records) == 8 and all("EMBEDDED" in u for u in used) and len(used) == 2  # c3 has no fallback


def test_sanity_instances_hold_one_passage_with_and_without_the_demonstration(tmp_path):
    import torch

    from kernelkit.apps.recipes.m4le_rope import generations_table, sanity_records

    ctx = ExperimentContext(section=None, quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path)
    with_demo, no_demo, where = sanity_records(ctx, 3)
    assert "EMBEDDED" in where and len(with_demo) == len(no_demo) == 3
    assert all(r.extras["n_items"] == 1 and "Answer: 1889." in r.input for r in with_demo)
    assert all("1889" not in r.input for r in no_demo)
    assert len({r.sample_id for r in with_demo + no_demo}) == 6  # distinct result keys
    rows = [{"task": "nq-open", "bucket": 300, "sample_id": f"s{i}", "prediction": f" {a}.\nQuestion: x",
             "answers": [a], "stop": "cut"} for i, a in enumerate(["Rome", "Paris", "Oslo"])]
    table = generations_table(rows, per_group=2)
    assert [t["after the cut"] for t in table] == ["Rome", "Paris"] and all(t["score"] == 1.0 for t in table)


def test_rope_rows_match_closed_forms(tiny_lm):
    from kernelkit.apps.recipes.m4le_rope import rope_rows

    model, _, _ = tiny_lm
    rows = {r["method"]: r for r in rope_rows(model)}
    assert all(r["max |inv_freq - closed form|"] < 1e-6 for r in rows.values())
    assert rows["linear"]["slowest period (positions)"] == pytest.approx(2 * rows["none"]["slowest period (positions)"])
    assert rows["yarn"]["attention scale"] > 1.0 and rows["none"]["attention scale"] == 1.0


def test_reference_driver_reports_why_it_is_unavailable(monkeypatch, tmp_path):
    from kernelkit.apps.bench import m4le_reference as reference

    monkeypatch.delenv("M4LE_REFERENCE_DIR", raising=False)
    ref, why = reference.find_reference()
    assert ref is None and "M4LE_REFERENCE_DIR" in why
    monkeypatch.setenv("M4LE_REFERENCE_DIR", str(tmp_path))
    ref, why = reference.find_reference()
    assert ref is None and "evaluation.py" in why


def test_outputs_layout_for_the_reference(tmp_path):
    import json

    from kernelkit.apps.bench import m4le_reference as reference

    path = reference.write_outputs(tmp_path, "m", "nq-open", [{"answers": ["a"], "gen_resp": "a"}])
    assert path == Path(tmp_path, "outputs", "m", "nq-open.jsonl")
    assert json.loads(path.read_text())["gen_resp"] == "a"


def test_side_by_side_settings_from_the_environment(monkeypatch):
    from kernelkit.apps.bench.m4le_reference import SideBySideSettings

    for name in ("TASKS", "N", "BUCKET", "BUDGET", "DTYPE", "BATCH"):
        monkeypatch.delenv(f"M4LE_SIDE_{name}", raising=False)
    assert SideBySideSettings.from_env() == SideBySideSettings()
    assert SideBySideSettings.from_env(quick=True).tasks == ("nq-open",)
    for name, value in (("TASKS", "c3,hotpotqa"), ("N", "3"), ("BUDGET", "bucket"), ("DTYPE", "float32")):
        monkeypatch.setenv(f"M4LE_SIDE_{name}", value)
    got = SideBySideSettings.from_env(quick=True)
    assert got.tasks == ("c3", "hotpotqa") and got.n == 3 and got.bucket_budget and got.dtype == "float32"
    assert got.bucket == SideBySideSettings.bucket and got.batch_size == SideBySideSettings.batch_size


class _Section:
    """Collects what a recipe step writes (tables by title, notes, records)."""

    def __init__(self, folder):
        self.dir, self.tables, self.data, self.records, self.figures = folder, {}, [], {}, []

    def data_source(self, text):
        self.data.append(text)

    def table(self, title, rows, note=""):
        self.tables[title] = (rows, note)

    def figure(self, fig, name, caption=""):
        self.figures.append(name)

    def record(self, **values):
        self.records.update(values)


@pytest.mark.parametrize("trained", [4096, 100])
def test_position_loss_reuses_plain_for_dynamic_only_inside_the_trained_context(tiny_lm, tmp_path, monkeypatch,
                                                                                 trained):
    import dataclasses

    import torch

    from kernelkit.apps.recipes import m4le_rope
    from kernelkit.longctx import perplexity

    model, tok, _ = tiny_lm
    calls = []
    real = perplexity.position_losses
    monkeypatch.setattr(perplexity, "position_losses", lambda *a, **k: calls.append(1) or real(*a, **k))
    sec = _Section(tmp_path)
    ctx = ExperimentContext(section=sec, quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path)
    cfg = dataclasses.replace(M4leRopeScalingConfig.quick(), loss_edges=(0, 64, 128, 256))
    m4le_rope.run_position_loss(ctx, model, tok, cfg, trained)
    (title, (rows, note)), = sec.tables.items()
    assert "EMBEDDED synthetic articles" in title and "256-token sequence" in title
    losses = sec.records["position_loss"]
    assert set(losses) == {"plain", "linear x2", "ntk x2", "dynamic x2", "yarn x2"}
    if trained == 4096:  # every position inside the trained context: dynamic NTK is plain RoPE, not re-run
        assert len(calls) == 4 and losses["dynamic x2"] == losses["plain"]
        assert "dynamic x2 is plain RoPE's row" in note and "Only positions up to 256" in note
    else:  # positions past the (claimed) trained context: dynamic NTK gets its own forward
        assert len(calls) == 5
        assert "dynamic x2 is plain RoPE's row" not in note and "Past it, mean loss" in note
