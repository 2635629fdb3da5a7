"""The dataset-scale benchmark: a child process per N, its kernel checked against a direct call, the RSS rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernelkit.apps.bench import ntk_dataset_scale as scale
from kernelkit.apps.bench import run_benchmarks


def test_row_bytes_and_the_stated_rule() -> None:
    assert scale.row_bytes(10_000, 1024) == 2 * 1024 * 10_000 * 8
    assert scale.row_bytes(100, 1024) == 2 * 100 * 100 * 8  # a block larger than N is one block of N rows
    row_kib = scale.row_bytes(1000, 100) / 1024
    before = 300_000
    bound, holds = scale.verdict({"rss_before_kib": before, "peak_rss_kib": before + 2 * row_kib}, 1000, 100)
    assert holds and bound == pytest.approx((before + 2 * row_kib) / 1024)
    assert not scale.verdict({"rss_before_kib": before, "peak_rss_kib": before + 2 * row_kib + 1}, 1000, 100)[1]


def test_child_writes_the_kernel_file_checks_it_and_cleans_up(tmp_path: Path) -> None:
    res = scale.measure(150, 64, tmp_path, threads=1)
    assert res["shape"] == [2, 150, 150]
    assert res["max_abs_error_vs_direct"] < 1e-12
    assert res["peak_rss_kib"] >= res["rss_before_kib"] > 0 and res["seconds"] > 0
    assert list(tmp_path.iterdir()) == []  # the .npy and its records are removed


def test_registered_benchmark_reports_time_memory_and_verdict(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_measure(n: int, block: int, folder: Path, threads: int) -> dict:
        calls.append((n, block))
        before, grown_kib = 200 * 1024, {1000: 1024, 4000: 8 * 1024}[n]
        return {"seconds": 1.5, "rss_before_kib": before, "peak_rss_kib": before + grown_kib,
                "shape": [2, n, n], "max_abs_error_vs_direct": 0.0}

    monkeypatch.setattr(scale, "measure", fake_measure)
    monkeypatch.setattr(scale, "QUICK_SIZES", (1000, 4000))
    monkeypatch.setattr(scale, "QUICK_BLOCK", 50)
    results = run_benchmarks(["ntk_dataset_scale"], quick=True, quiet=True)
    assert calls == [(1000, 50), (4000, 50)]
    assert [r.label for r in results] == ["N=1000 block=50", "N=4000 block=50"]
    small, large = results
    assert small.kernelkit_s == 1.5 and small.ratio is None
    # two block rows: 1.5 MiB at N=1000 (grown by 1 MiB: holds), 6.1 MiB at N=4000 (grown by 8 MiB: fails)
    assert small.extra["one_block_row_mib"] == round(scale.row_bytes(1000, 50) / 2**20, 1) == 0.8
    assert small.extra["peak_below_bound"] is True and large.extra["peak_below_bound"] is False
    assert small.extra["bound_mib"] == round(200 + 2 * scale.row_bytes(1000, 50) / 2**20, 1)
    assert large.extra["whole_matrix_mib"] == round(2 * 4000**2 * 8 / 2**20, 1)
