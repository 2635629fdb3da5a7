"""The registered Omniglot experiment runs its whole recipe on the embedded fallback (quick mode)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kernelkit.apps.recipes import EXPERIMENTS, ExperimentContext
from kernelkit.apps.recipes import fscil_omniglot as omniglot
from kernelkit.runs import Run


def test_experiment_falls_back_to_digits_and_reports_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = omniglot._settings

    def one_epoch(quick: bool, real: bool) -> dict:
        s = settings(quick, real)
        s["train"].epochs = 1  # the recipe, not the accuracy, is under test
        return s

    monkeypatch.setattr(omniglot, "_settings", one_epoch)
    entry = EXPERIMENTS.entry("fscil_teen_omniglot")
    assert entry.meta["system"] == "fscil"
    empty = tmp_path / "no-data"
    empty.mkdir()
    with Run.create("t", {}, out=tmp_path / "run", quiet=True) as run:
        sec = run.section("fscil_teen_omniglot", "fscil")
        entry.obj(ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=empty))
    res = sec.results
    assert res["data"][0].startswith("EMBEDDED FALLBACK")
    assert res["seeds"] == [0, 1, 2] and len(res["per_seed_diffs"]) == 3
    assert set(res["summary"]) == {"prototype", "teen"}
    assert len(res["sensitivity"]) == 4 * 6
    # alpha = 0 is the baseline for every tau: identical last-session accuracy
    base_last = [s["last"] for s in res["summary"]["prototype"]]
    for row in res["sensitivity"]:
        if row["alpha"] == 0.0:
            assert row["acc"] == sum(base_last) / len(base_last)
    assert (tmp_path / "run" / "plots" / "fscil_teen_omniglot_accuracy_per_session.png").is_file()
