"""The M4LE scoring benchmark times kernelkit the way it times the official script: a new process each."""

from __future__ import annotations

import random

import pytest


def test_kernelkit_scoring_runs_in_its_own_process_on_the_reference_layout(tmp_path):
    pytest.importorskip("jieba")
    from kernelkit.apps.bench import m4le_reference as reference
    from kernelkit.apps.bench.m4le import _fuzz_rows, _score_in_subprocess

    rng = random.Random(0)
    tasks = ["nq-open", "c3"]
    for t in tasks:
        reference.write_outputs(tmp_path, "fuzz", t, _fuzz_rows(t, 4, rng))
    seconds = _score_in_subprocess(tmp_path, tasks)
    assert seconds > 0
    with pytest.raises(RuntimeError, match="scoring subprocess failed"):
        _score_in_subprocess(tmp_path, ["no-such-task"])
