import json

import pytest
import torch

from kernelkit.apps.recipes import EXPERIMENTS, SYSTEMS, ExperimentContext, register_experiment, run_experiments, select
from kernelkit.runs import Run


@pytest.fixture
def fake_experiments():
    names = ["zz_test_ok", "zz_test_broken"]

    @register_experiment("zz_test_ok", system="ntk", title="works")
    def ok(ctx: ExperimentContext) -> None:
        ctx.section.data_source("generated in the test")
        ctx.section.record(quick=ctx.quick, seed=ctx.seed)

    @register_experiment("zz_test_broken", system="m4le", title="breaks")
    def broken(ctx: ExperimentContext) -> None:
        raise RuntimeError("deliberate failure")

    yield names
    for n in names:
        EXPERIMENTS._entries.pop(n)


def test_unknown_system_rejected():
    with pytest.raises(ValueError, match="unknown system"):
        register_experiment("x", system="nope", title="x")


def test_select_by_name_and_system(fake_experiments):
    assert "zz_test_ok" in select(["ntk"])
    assert select(["zz_test_broken"]) == ["zz_test_broken"]
    with pytest.raises(ValueError, match="matches no experiment"):
        select(["nonexistent_thing"])


def test_failure_is_recorded_and_others_still_run(tmp_path, fake_experiments):
    with Run.create("reproduce", {"quick": True}, out=tmp_path / "r", quiet=True) as run:
        secs = run_experiments(run, ["zz_test_broken", "zz_test_ok"], quick=True, seed=7,
                               device=torch.device("cpu"), data_root=tmp_path)
    assert [s.key for s in secs] == ["zz_test_ok", "zz_test_broken"]  # ordered by system
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["sections"]["zz_test_ok"]["status"] == "ok"
    assert res["sections"]["zz_test_ok"]["seed"] == 7
    assert res["sections"]["zz_test_broken"]["status"] == "failed"
    assert "deliberate failure" in res["sections"]["zz_test_broken"]["error"]
    html = (tmp_path / "r" / "report.html").read_text()
    assert SYSTEMS["ntk"] in html and SYSTEMS["m4le"] in html and "generated in the test" in html


def test_every_registered_recipe_has_a_config_with_a_quick_preset():
    from dataclasses import asdict, is_dataclass

    from kernelkit.apps.recipes import recipe_config

    for entry in EXPERIMENTS.entries():
        if entry.name.startswith("zz_test"):
            continue
        full, quick = recipe_config(entry.name, quick=False), recipe_config(entry.name, quick=True)
        assert is_dataclass(full) and type(quick) is type(full), entry.name
        assert asdict(full) != asdict(quick), f"{entry.name}: quick() preset equals the full run"


def test_recipe_receives_its_config_and_reproduce_records_it(tmp_path):
    from dataclasses import dataclass

    from kernelkit.apps.recipes import recipe_configs

    @dataclass
    class DemoConfig:
        steps: int = 100

        @classmethod
        def quick(cls) -> "DemoConfig":
            return cls(steps=3)

    seen = []

    @register_experiment("zz_test_config", system="ntk", title="config", config=DemoConfig)
    def demo(ctx: ExperimentContext) -> None:
        seen.append(ctx.config)

    try:
        assert recipe_configs(["zz_test_config"], quick=True) == {"zz_test_config": {"steps": 3}}
        assert recipe_configs(["zz_test_config"], quick=False) == {"zz_test_config": {"steps": 100}}
        with Run.create("t", {}, out=tmp_path / "run", quiet=True) as run:
            run_experiments(run, ["zz_test_config"], quick=True, seed=0, device=torch.device("cpu"), data_root=tmp_path)
        assert seen == [DemoConfig(steps=3)]
    finally:
        EXPERIMENTS._entries.pop("zz_test_config")
