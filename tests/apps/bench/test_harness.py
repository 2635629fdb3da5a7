"""The benchmark harness: side-by-side timing, ratios, and the JSON + markdown it writes."""

from __future__ import annotations

import json

from kernelkit.apps.bench.harness import BenchContext, results_markdown, run_benchmarks


def test_compare_times_both_sides_and_reports_the_ratio():
    slow_calls, fast_calls = [], []

    def fast():
        fast_calls.append(1)

    def slow():
        slow_calls.append(1)
        sum(range(20_000))

    ctx = BenchContext("demo", min_run_time=0.03, rounds=2)
    r = ctx.compare("case", kernelkit=fast, baseline=slow, baseline_name="slow loop", size=3)
    assert fast_calls and slow_calls
    assert r.kernelkit_s is not None and r.baseline_s is not None
    assert r.ratio == r.baseline_s / r.kernelkit_s and r.ratio > 1
    assert r.extra == {"size": 3}
    missing = ctx.compare("no baseline", kernelkit=fast, baseline=None, why="not installed")
    assert missing.ratio is None and missing.baseline_s is None


def test_derived_notes_are_computed_from_the_measured_times_before_the_row_is_shown():
    shown = []
    ctx = BenchContext("demo", min_run_time=0.01, rounds=1, on_result=shown.append)
    r = ctx.record("case", 0.5, 2.0, "base", derived=lambda k, b: {"sum_s": k + b}, size=3)
    assert r.extra == {"size": 3, "sum_s": 2.5}
    assert shown == [r] and shown[0].extra["sum_s"] == 2.5  # the callback (the printed line) sees the notes
    timed = ctx.compare("timed", kernelkit=lambda: None, baseline=lambda: None,
                        derived=lambda k, b: {"both": (k, b)})
    assert timed.extra["both"] == (timed.kernelkit_s, timed.baseline_s)


def test_results_are_written_as_json_and_markdown_naming_command_date_commit_machine(tmp_path):
    out = tmp_path / "bench.json"
    results = run_benchmarks(["depthwise_conv"], quick=True, min_run_time=0.01, json_path=out, quiet=True)
    data = json.loads(out.read_text())
    assert len(data["results"]) == len(results) > 0
    md = out.with_suffix(".md").read_text()
    for key in ("command:", "date:", "commit:", "machine:"):
        assert key in md
    assert md.count("| depthwise_conv |") == len(results)


def test_markdown_rows_say_dash_for_missing_times():
    from kernelkit.apps.bench.harness import Comparison

    env = {"argv": ["kernelkit", "bench"], "time": "2026-01-01T00:00:00", "git_commit": "abc", "processor": "x86_64",
           "cpu_count": 2, "torch_threads": 2, "platform": "Linux"}
    md = results_markdown([Comparison("b", "c", 0.002, None, "ref", None, {"skipped": "a|b"})], env)
    assert "| b | c | 2 ms | ref | — | — | skipped: a/b |" in md
    assert "- commit: abc" in md


def test_a_benchmark_is_not_run_on_a_device_it_does_not_measure(monkeypatch):
    from kernelkit.apps.bench import harness
    from kernelkit.registry import Registry

    monkeypatch.setattr(harness, "BENCHMARKS", Registry("benchmark"))
    ran: list[str] = []
    harness.register_benchmark("cpu_only", title="cpu only")(lambda ctx: ran.append(str(ctx.device)))
    results = harness.run_benchmarks(["cpu_only"], quiet=True, device="meta")
    assert ran == []
    assert [r.label for r in results] == ["not run on meta"]
    assert results[0].ratio is None and results[0].extra == {"note": "measures cpu only"}
    harness.run_benchmarks(["cpu_only"], quiet=True, device="cpu")
    assert ran == ["cpu"]


def test_bench_device_is_validated_before_any_work():
    from typer.testing import CliRunner

    from kernelkit.apps.cli import app

    result = CliRunner().invoke(app, ["bench", "depthwise_conv", "--device", "tpu"])
    assert result.exit_code == 2
    assert "--device" in result.output and "Traceback" not in result.output
