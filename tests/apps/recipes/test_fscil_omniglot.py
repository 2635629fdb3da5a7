"""The registered Omniglot experiment runs its whole recipe on the embedded fallback (quick preset)."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from kernelkit.apps.configs.fscil import FscilTeenOmniglotConfig
from kernelkit.apps.recipes import EXPERIMENTS, ExperimentContext, recipe_config
from kernelkit.fscil import TeenConfig
from kernelkit.runs import Run


def test_experiment_falls_back_to_digits_and_reports_seeds(tmp_path: Path) -> None:
    entry = EXPERIMENTS.entry("fscil_teen_omniglot")
    assert entry.meta["system"] == "fscil" and entry.meta["config"] is FscilTeenOmniglotConfig
    cfg = replace(FscilTeenOmniglotConfig.quick(), fallback_epochs=1)  # the recipe, not the accuracy, is under test
    empty = tmp_path / "no-data"
    empty.mkdir()
    with Run.create("t", {}, out=tmp_path / "run", quiet=True) as run:
        sec = run.section("fscil_teen_omniglot", "fscil")
        entry.obj(ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=empty, config=cfg))
    res = sec.results
    assert res["data"][0].startswith("EMBEDDED FALLBACK")
    assert sec.title.endswith("(scikit-learn digits, embedded fallback)")  # the heading names the data used
    assert "Omniglot" not in sec.title
    assert res["seeds"] == [0, 1, 2] and len(res["per_seed_diffs"]) == 3
    assert res["base"]["config"]["epochs"] == 1
    assert set(res["summary"]) == {"prototype", "teen"}
    assert len(res["sensitivity"]) == 4 * 6
    # alpha = 0 is the baseline for every tau: identical last-session accuracy
    base_last = [s["last"] for s in res["summary"]["prototype"]]
    for row in res["sensitivity"]:
        if row["alpha"] == 0.0:
            assert row["acc"] == sum(base_last) / len(base_last)
    assert (tmp_path / "run" / "plots" / "fscil_teen_omniglot_accuracy_per_session.png").is_file()


def test_presets_share_teens_defaults_and_differ_only_in_size() -> None:
    full, quick = FscilTeenOmniglotConfig(), FscilTeenOmniglotConfig.quick()
    assert (full.tau, full.alpha) == (TeenConfig.tau, TeenConfig.alpha)
    changed = {k for k, v in asdict(quick).items() if asdict(full)[k] != v}
    assert changed == {"num_base", "sessions", "epochs", "fallback_epochs"}
    assert recipe_config("fscil_teen_omniglot", quick=True) == quick
    with pytest.raises(ValueError, match="alpha"):
        FscilTeenOmniglotConfig(alphas=(0.0, 1.5))
