"""One writer per results file: a second process, or a second shard, given the same results file is refused before
anything is generated; the file is left as it was, and the lock goes with the process that held it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kernelkit.longctx.results_lock import ResultsInUseError, check_free, sole_writer
from kernelkit.longctx.runner import GenParams, load_results, run_records
from kernelkit.longctx.shards import ShardPlan, read_plan, selection_digest, split
from tests.longctx.test_shards import _Echo, _rec

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")

ROOT = Path(__file__).resolve().parents[2]

#: A process that runs five records into a results file with a backend that, once it holds the file, waits for
#: a release file. It exits 0 when it ran them, 3 when the file was refused.
_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kernelkit.longctx.backends.base import Result
    from kernelkit.longctx.results_lock import ResultsInUseError
    from kernelkit.longctx.runner import GenParams, run_records
    from tests.longctx.test_shards import _rec

    results, marker, release = map(Path, sys.argv[1:4])

    class Waiting:
        name = "echo"

        def generate(self, requests):
            marker.touch()
            while not release.exists():
                time.sleep(0.02)
            return [Result(r.key, text=r.prompt.split()[-1], info={"stop": "eos"}) for r in requests]

    try:
        run_records([_rec(i) for i in range(5)], Waiting(), results, GenParams(), progress=False, batch_size=5)
    except ResultsInUseError as exc:
        print(exc)
        sys.exit(3)
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _wait(predicate, seconds: float = 120.0) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.05)


def test_two_processes_on_one_results_file_one_is_refused(tmp_path):
    results, release = tmp_path / "results.jsonl", tmp_path / "release"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(results), str(tmp_path / f"generating{i}"),
                               str(release)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    try:
        # one holds the file and waits inside generate; the other has been refused by then, or is refused on trying
        _wait(lambda: any((tmp_path / f"generating{i}").exists() for i in range(2)))
        winner = 0 if (tmp_path / "generating0").exists() else 1
        loser = procs[1 - winner]
        assert loser.wait(timeout=120) == 3, loser.stderr.read() if loser.stderr else ""
        release.touch()
        assert procs[winner].wait(timeout=120) == 0, procs[winner].stderr.read() if procs[winner].stderr else ""
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
    assert not (tmp_path / f"generating{1 - winner}").exists()  # the refused process generated nothing
    lines = results.read_text(encoding="utf-8").splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == 5 == len(set(keys))


def test_a_held_file_is_refused_unchanged_and_free_again_after_kill_9(tmp_path):
    results = tmp_path / "results.jsonl"
    run_records([_rec(i) for i in range(2)], _Echo(), results, GenParams(), progress=False)
    before = results.read_bytes()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom kernelkit.longctx.results_lock import sole_writer\n"
         "with sole_writer(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n", str(results)],
        env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        called = []

        class Counting(_Echo):
            def generate(self, requests):
                called.append(len(requests))
                return super().generate(requests)

        with pytest.raises(ResultsInUseError) as err:
            run_records([_rec(i) for i in range(4)], Counting(), results, GenParams(), progress=False)
        assert str(err.value).startswith(f"{results}: another process is writing this results file")
        assert "\n" not in str(err.value)
        with pytest.raises(ResultsInUseError):
            check_free(results)
        assert called == [] and results.read_bytes() == before
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
    summary = run_records([_rec(i) for i in range(4)], Counting(), results, GenParams(), progress=False)
    assert (summary.skipped, summary.generated) == (2, 2) and called == [1, 1]


def test_a_shard_is_not_written_into_another_shards_results_file(tmp_path):
    records = [_rec(i) for i in range(6)]
    results = tmp_path / "shared.jsonl"

    def run(index: int) -> None:
        shard = ShardPlan(index, 2, selection_digest(records), len(records))
        run_records(split(records, shard.shard), _Echo(), results, GenParams(), progress=False, shard=shard)

    run(0)
    before, plan = results.read_bytes(), read_plan(results)
    with pytest.raises(ResultsInUseError, match=r"holds the answers of shard 0/2 .*not of shard 1/2"):
        run(1)
    assert results.read_bytes() == before and read_plan(results) == plan
    run(0)  # the same shard again resumes
    assert results.read_bytes() == before and len(load_results(results)) == 3


def test_the_lock_is_released_when_the_block_ends(tmp_path):
    path = tmp_path / "r.jsonl"
    with sole_writer(path), pytest.raises(ResultsInUseError):  # a second open file of this process is refused too
        check_free(path)
    check_free(path)
    with sole_writer(path):
        pass
