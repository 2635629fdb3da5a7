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
    # TEEN's published numbers sit in their own box; the line beside them is computed from this run's results
    (pub,) = [item for kind, item in sec.items if kind == "published"]
    assert pub.source == "Wang et al. 2023, NeurIPS, TEEN"
    by = {row[0]: dict(zip(pub.columns, row, strict=True)) for row in pub.rows}
    assert by["miniImageNet"]["acc per session (%)"][0] == 73.53 and by["miniImageNet"]["avg"] == 61.44
    assert by["CIFAR-100"]["last"] == 52.64 and by["CUB-200"]["acc per session (%)"] is None
    for row in by.values():  # each published row agrees with itself: PD = first - last, avg = mean over sessions
        if row["acc per session (%)"] is not None:
            accs = row["acc per session (%)"]
            assert row["last"] == accs[-1] and round(accs[0] - accs[-1], 2) == row["PD"]
            assert round(sum(accs) / len(accs), 2) == row["avg"]
    teen = res["summary"]["teen"]
    last = 100 * sum(x["last"] for x in teen) / len(teen)
    assert pub.differs.startswith("this run's TEEN: session 0 ") and f"last {last:.2f}%" in pub.differs
    assert "scikit-learn digits, embedded fallback here" in pub.differs and "mean over 3 session plans" in pub.differs
    assert "Published (Wang et al. 2023, NeurIPS, TEEN," in (tmp_path / "run" / "report.html").read_text()


def test_presets_share_teens_defaults_and_differ_only_in_size() -> None:
    full, quick = FscilTeenOmniglotConfig(), FscilTeenOmniglotConfig.quick()
    assert (full.tau, full.alpha) == (TeenConfig.tau, TeenConfig.alpha)
    changed = {k for k, v in asdict(quick).items() if asdict(full)[k] != v}
    assert changed == {"num_base", "sessions", "epochs", "fallback_epochs"}
    assert recipe_config("fscil_teen_omniglot", quick=True) == quick
    with pytest.raises(ValueError, match="alpha"):
        FscilTeenOmniglotConfig(alphas=(0.0, 1.5))
