import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from kernelkit.runs import Run  # noqa: E402
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
