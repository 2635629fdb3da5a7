"""The NTK paper recipes are registered with their configs; the quick presets only shrink the full runs."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from kernelkit.apps.configs.ntk import NtkFig1Config, NtkFig2Config, NtkFig3Config
from kernelkit.apps.recipes import EXPERIMENTS, recipe_configs


@pytest.mark.parametrize(("name", "cls", "changed"), [
    ("ntk_fig1", NtkFig1Config, {"widths", "seeds", "points"}),
    ("ntk_fig2", NtkFig2Config, {"seeds"}),
    ("ntk_fig3", NtkFig3Config, {"widths", "trials", "t_max"}),
])
def test_recipes_register_their_config(name: str, cls: type, changed: set[str]) -> None:
    entry = EXPERIMENTS.entry(name)
    assert entry.meta["system"] == "ntk" and entry.meta["config"] is cls
    full, quick = asdict(cls()), asdict(cls.quick())
    assert {k for k in full if full[k] != quick[k]} == changed
    assert recipe_configs([name], quick=True)[name] == quick


def test_fig3_depth_is_fixed_in_advance_as_in_figs_1_and_2():
    """The paper does not state Fig. 3's depth: it is the depth of Figs. 1-2, not one picked to match eigenvalues."""
    from kernelkit.apps.configs.ntk import NtkFig1Config, NtkFig2Config, NtkFig3Config

    assert NtkFig3Config().depth == NtkFig1Config().depth == NtkFig2Config().depth


def test_fig2_data_line_shows_the_training_angles_without_float32_noise(tmp_path) -> None:
    from dataclasses import replace

    import torch

    from kernelkit.apps.recipes import ExperimentContext
    from kernelkit.apps.recipes.ntk_paper import fig2
    from kernelkit.runs import Run

    cfg = replace(NtkFig2Config(), widths=(8, 16), seeds=1, test_points=5, steps=2)
    run = Run.create("fig2", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("ntk_fig2", "Fig. 2")
    fig2(ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path, config=cfg))
    (line,) = sec.results["data"]
    assert "γ = -2.4, -0.9, 0.6, 2.2 with" in line and "0000" not in line


def test_fig3_sets_the_papers_eigenvalues_in_a_published_box_beside_this_runs(tmp_path) -> None:
    """The paper's λ are not a row of this run's table but a box of their own, with a line computed from
    this run's eigenvalues."""
    from dataclasses import replace

    import torch

    from kernelkit.apps.configs.ntk import NtkFig3Config
    from kernelkit.apps.recipes import ExperimentContext
    from kernelkit.apps.recipes.ntk_paper import PAPER_EIGENVALUES, fig3
    from kernelkit.runs import Run

    cfg = replace(NtkFig3Config(), n_digits=24, depths=(4,), widths=(8, 16), trials=1, t_max=16.0)
    run = Run.create("fig3", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("ntk_fig3", "Fig. 3")
    fig3(ExperimentContext(sec, quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path, config=cfg))
    tables = [item for kind, item in sec.items if kind == "table" and item.title.startswith("Top eigenvalues")]
    assert tables and all(row[0] != "paper" for row in tables[0].rows)
    (pub,) = [item for kind, item in sec.items if kind == "published"]
    assert PAPER_EIGENVALUES == (0.0457, 0.00108, 0.00078)  # shared/specs/ntk.md, Fig. 3
    assert pub.rows == [[0.1, 0.0457, 0.00108, 0.00078, 42.3]] and "Fig. 3" in pub.source
    measured = {row[0]: row for row in tables[0].rows if row[1] == cfg.beta}[4]
    ratio = float(measured[2]) / float(measured[3])
    assert pub.differs.startswith(f"this run's depth-4 limit gives λ₁/λ₂ = {ratio:.1f}")
    assert "the 8x8 scikit-learn digits, 24 images here" in pub.differs
