import json
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from kernelkit.runs import ConfigMismatchError, Run, config_differences  # noqa: E402
from kernelkit.utils.io import append_jsonl, read_jsonl, write_json  # noqa: E402


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "a.json"
    write_json(path, {"x": 1})

    class Boom:
        def tolist(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_json(path, {"x": Boom()})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp file left behind


def test_jsonl_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "a") as f:
        f.write("{not json}\n")
    append_jsonl(path, {"a": 2})
    with pytest.raises(ValueError, match=r"m.jsonl:2: malformed JSON line"):
        read_jsonl(path)


def test_jsonl_interrupted_last_line_is_ignored(tmp_path):
    path = tmp_path / "m.jsonl"
    append_jsonl(path, {"a": 1})
    with open(path, "a") as f:
        f.write('{"a": 2')  # killed mid-append
    assert read_jsonl(path) == [{"a": 1}]


def test_run_directory_layout_and_report(tmp_path):
    with Run.create("demo", {"seed": 0, "device": "cpu"}, out=tmp_path / "run", quiet=True) as run:
        sec = run.section("sys", "A system")
        sec.data_source("generated in code")
        sec.table("numbers", [{"name": "a", "value": 1.5}, {"name": "b", "value": 2}])
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        sec.figure(fig, "line", caption="a line")
        sec.record(answer=42)
        sec.log(step=1, loss=0.5)
    d = tmp_path / "run"
    for name in ("config.json", "environment.json", "results.json", "metrics.jsonl", "report.html"):
        assert (d / name).is_file(), name
    results = json.loads((d / "results.json").read_text())
    assert results["status"] == "ok"
    assert results["sections"]["sys"]["answer"] == 42
    assert read_jsonl(d / "metrics.jsonl")[0]["loss"] == 0.5
    html = (d / "report.html").read_text()
    assert "data:image/png;base64," in html and "generated in code" in html and "<td>1.5</td>" in html
    assert os.listdir(d / "plots") == ["sys_line.png"]


def test_run_records_failure(tmp_path):
    with pytest.raises(ZeroDivisionError), Run.create("demo", {}, out=tmp_path / "r", quiet=True) as run:
        run.section("s", "S")
        1 / 0  # noqa: B018
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["status"] == "failed" and results["sections"]["s"]["status"] == "failed"


def _finished(tmp_path):
    out = tmp_path / "r"
    with Run.create("demo", {"lr": 0.1}, out=out, quiet=True) as run:
        run.section("s", "S").record(answer=42)
    return out, {n: (out / n).read_bytes() for n in ("config.json", "environment.json", "results.json",
                                                     "report.html")}


@pytest.mark.parametrize("exc", [ValueError("no such data file"), KeyboardInterrupt()])
def test_a_rerun_that_dies_before_computing_keeps_the_finished_run(tmp_path, exc):
    out, before = _finished(tmp_path)
    with pytest.raises(type(exc)), Run.create("demo", {"lr": 0.1}, out=out, quiet=True) as run:
        run.section("s", "S").data_source("generated")  # saying which data it would use is not a result
        raise exc
    after = {n: (out / n).read_bytes() for n in before}
    assert after == before
    assert json.loads((out / "results.json").read_text())["status"] == "ok"
    assert json.loads((out / "config.json").read_text()) == {"lr": 0.1}


def test_a_rerun_that_computed_something_before_failing_reports_failed(tmp_path):
    out, _ = _finished(tmp_path)
    with pytest.raises(ZeroDivisionError), Run.create("demo", {"lr": 0.1}, out=out, quiet=True) as run:
        run.section("s", "S").log(step=1, loss=0.5)
        1 / 0  # noqa: B018
    assert json.loads((out / "results.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("status", ["finished", "failed", "killed"])
def test_a_rerun_with_other_settings_is_refused_before_it_touches_the_directory(tmp_path, status):
    out, _ = _finished(tmp_path)
    if status == "failed":
        with pytest.raises(ZeroDivisionError), Run.create("demo", {"lr": 0.1}, out=out, quiet=True) as run:
            run.section("s", "S").log(step=1, loss=0.5)
            1 / 0  # noqa: B018
    elif status == "killed":
        (out / "results.json").unlink()
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ConfigMismatchError, match=r"different config \(depth: null -> 3; lr: 0.1 -> 0.2\)") as info:
        Run.create("demo", {"lr": 0.2, "depth": 3}, out=out, quiet=True)
    assert info.value.keys == ["depth", "lr"] and info.value.detail == "depth: null -> 3; lr: 0.1 -> 0.2"
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_rerun_with_the_same_settings_or_other_threads_reuses_the_directory(tmp_path):
    out = tmp_path / "r"
    config = {"lr": 0.1, "sizes": (1, 2), "path": Path("x"), "beta": float("nan"), "threads": 1}
    for threads in (1, 2):
        with Run.create("demo", {**config, "threads": threads}, out=out, quiet=True) as run:
            run.section("s", "S").record(answer=threads)
    assert json.loads((out / "results.json").read_text())["sections"]["s"]["answer"] == 2
    assert config_differences({"a": [1, 2], "b": 1}, {"a": (1, 2), "c": 2}) == {"b": (1, None), "c": (None, 2)}


def test_a_rerun_over_a_failed_run_reports_its_own_failure(tmp_path):
    out = tmp_path / "r"
    for _ in range(2):
        with pytest.raises(ZeroDivisionError), Run.create("demo", {}, out=out, quiet=True):
            1 / 0  # noqa: B018
    assert json.loads((out / "results.json").read_text())["status"] == "failed"


def test_run_files_are_not_owner_only(tmp_path):
    import stat

    old = os.umask(0o022)
    try:
        with Run.create("demo", {}, out=tmp_path / "r", quiet=True) as run:
            sec = run.section("s", "S")
            fig, ax = plt.subplots()
            ax.plot([0, 1])
            sec.figure(fig, "line")
            sec.log(step=1, loss=0.5)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert len(files) == 6
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o644 for p in files}


def test_a_rerun_appends_metrics_after_a_line_torn_by_a_kill(tmp_path):
    out = tmp_path / "r"
    with Run.create("demo", {}, out=out, quiet=True) as run:
        run.log(step=1, loss=1.0)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "lo')  # killed mid-append
    with Run.create("demo", {}, out=out, quiet=True) as run:
        run.log(step=2, loss=0.5)
    assert [(r["step"], r["loss"]) for r in read_jsonl(out / "metrics.jsonl")] == [(1, 1.0), (2, 0.5)]


def test_a_run_whose_sections_all_failed_is_failed_not_partial(tmp_path):
    with Run.create("t", {}, out=tmp_path / "all", quiet=True) as run:
        for key in ("a", "b"):
            run.section(key, key).status = "failed"
    assert run.status == "failed"
    with Run.create("t", {}, out=tmp_path / "some", quiet=True) as run:
        run.section("a", "a").status = "failed"
        run.section("b", "b")
    assert run.status == "partial"


def test_a_recorded_table_needs_its_provenance_and_is_not_output_of_this_run(tmp_path):
    run = Run.create("t", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("s", "S")
    with pytest.raises(ValueError, match="commit is empty"):
        sec.recorded("R", [{"a": 1}], command="x", date="2026-01-01", commit=" ")
    sec.recorded("R", [{"a": 1}], command="x", date="2026-01-01", commit="abc1234")
    assert not run.produced_output()
    sec.table("T", [{"a": 1}])
    assert run.produced_output()


def test_published_numbers_need_source_setting_and_difference_and_are_not_output_of_this_run(tmp_path):
    run = Run.create("t", {}, out=tmp_path / "run", quiet=True)
    sec = run.section("s", "S")
    with pytest.raises(ValueError, match="differs is empty"):
        sec.published("P", [{"a": 1}], source="Paper 2020, Table 1", setting="ImageNet", differs="")
    sec.published("P", [{"a": 1}], source="Paper 2020, Table 1", setting="ImageNet", differs="dataset: digits here")
    assert not run.produced_output()
    run.__exit__(None, None, None)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Published (Paper 2020, Table 1, ImageNet): P" in html and "Setting differs: dataset: digits here" in html
