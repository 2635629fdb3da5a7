"""Shards of a selection (disjoint, complete, balanced, order-free), the record filters and merging results files
of shards (duplicates refused, absent shards and unanswered keys named)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelkit.longctx import scoring
from kernelkit.longctx.backends.base import Result
from kernelkit.longctx.records import Record
from kernelkit.longctx.runner import GenParams, load_results, run_records, select
from kernelkit.longctx.shards import Shard, ShardPlan, read_plan, record_identity, selection_digest, split


def _rec(i: int, task: str | None = "nq-open", bucket: int = 1000, **extras) -> Record:
    ex = {"id": f"s{i}", **extras}
    if task is not None:
        ex["task"] = task
    return Record("Answer.", f"Question {i}\nAnswer: w{i}", [f"w{i}"], 4, 5, bucket, ex)


class _Echo:
    name = "echo"

    def generate(self, requests):
        return [Result(r.key, text=r.prompt.split()[-1], info={"stop": "eos"}) for r in requests]


@pytest.mark.parametrize("text", ["4/4", "-1/2", "1/0", "a/b", "", "1", "0/2/3"])
def test_bad_shard_specs_are_refused(text):
    with pytest.raises(ValueError, match="i/n"):
        Shard.parse(text)


def test_shard_parse_and_names():
    assert Shard.parse(" 2 / 4 ") == Shard(2, 4)
    assert Shard(2, 4).results_name() == "results.shard-2-of-4.jsonl"


_records = st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["nq-open", "hotpotqa", "c3"]),
                              st.sampled_from([1000, 2000, 4000])), max_size=60)


@settings(max_examples=80, deadline=None)
@given(_records, st.integers(1, 7), st.randoms(use_true_random=False))
def test_shards_are_disjoint_and_their_union_is_the_selection(spec, n, rnd):
    records = [_rec(i, task, bucket) for i, task, bucket in spec]  # repeats of one identity included
    parts = [split(records, Shard(i, n)) for i in range(n)]
    ids = [{record_identity(r) for r in p} for p in parts]
    for a in range(n):
        for b in range(a + 1, n):
            assert not ids[a] & ids[b]
    # every record (with its repeats) is in exactly one shard, each shard keeps the input order
    assert Counter(id(r) for p in parts for r in p) == Counter(id(r) for r in records)
    position = {id(r): k for k, r in enumerate(records)}
    for p in parts:
        assert [position[id(r)] for r in p] == sorted(position[id(r)] for r in p)
    sizes = [len(s) for s in ids]
    assert max(sizes) - min(sizes) <= 1
    # the assignment depends on the selection, not on its order
    shuffled = list(records)
    rnd.shuffle(shuffled)
    assert [{record_identity(r) for r in split(shuffled, Shard(i, n))} for i in range(n)] == ids
    assert selection_digest(shuffled) == selection_digest(records)


def test_select_filters_by_task_bucket_and_ability():
    records = [_rec(0, "nq-open", 1000), _rec(1, "nq-open", 2000), _rec(2, "c3", 1000), _rec(3, "qmsum", 1000),
               _rec(4, "qmsum", 1000, ability="explicit_multiple"), _rec(5, None, 1000)]
    pick = lambda **kw: [r.sample_id for r in select(records, **kw)]  # noqa: E731
    assert pick(tasks=["nq-open"]) == ["s0", "s1"]
    assert pick(buckets=[2000]) == ["s1"]
    assert pick(abilities=["global"]) == ["s3"]  # a record's own ability field wins over its task's
    assert pick(abilities=["explicit_multiple"]) == ["s4"]
    assert pick(abilities=["explicit_single", "semantic_single"]) == ["s0", "s1", "s2"]
    assert pick(tasks=["c3", "nq-open"], buckets=[1000]) == ["s0", "s2"]
    assert pick(tasks=["hotpotqa"], task="hotpotqa") == ["s5"]  # records without a task field: task=
    assert pick(tasks=["qmsum"], limit=1) == ["s3"]
    assert pick() == [f"s{i}" for i in range(6)]


def _shard_files(tmp_path, records, n, model_dir="m"):
    digest, total = selection_digest(records), len(records)
    paths = []
    for i in range(n):
        path = tmp_path / model_dir / Shard(i, n).results_name()
        run_records(split(records, Shard(i, n)), _Echo(), path, GenParams(), progress=False,
                    shard=ShardPlan(i, n, digest, total))
        paths.append(str(path))
    return paths


def test_run_records_writes_the_shard_plan(tmp_path):
    records = [_rec(i) for i in range(5)]
    paths = _shard_files(tmp_path, records, 2)
    plans = [read_plan(p) for p in paths]
    assert all(p is not None for p in plans)
    assert [(p.index, p.count, p.selected) for p in plans] == [(0, 2, 5), (1, 2, 5)]
    assert sorted(k for p in plans for k in p.keys) == sorted(r["key"] for p in paths for r in load_results(p))
    assert read_plan(tmp_path / "results.jsonl") is None


def test_merged_shards_score_as_the_unsharded_run(tmp_path):
    records = [_rec(i, task, bucket) for i, (task, bucket) in enumerate(
        [("nq-open", 1000), ("nq-open", 2000), ("hotpotqa", 1000)] * 4)]
    records[3] = Record("Answer.", "Question\nAnswer: wrong", ["right"], 4, 5, 1000, {"id": "s3", "task": "nq-open"})
    whole = tmp_path / "whole.jsonl"
    run_records(records, _Echo(), whole, GenParams(), progress=False)
    merged = scoring.merge_results(_shard_files(tmp_path, records, 3))
    assert merged.missing == []
    assert sorted(r["key"] for r in merged.rows) == sorted(r["key"] for r in load_results(whole))
    assert scoring.task_bucket_scores(merged.rows) == scoring.task_bucket_scores(load_results(whole))


def test_merge_refuses_keys_in_two_files(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    run_records([_rec(i) for i in range(3)], _Echo(), a, GenParams(), progress=False)
    run_records([_rec(i) for i in range(2, 5)], _Echo(), b, GenParams(), progress=False)
    with pytest.raises(scoring.DuplicateResultsError) as err:
        scoring.merge_results([a, b])
    msg = str(err.value)
    assert str(a) in msg and str(b) in msg and "1 result key" in msg and "|s2|" in msg and "\n" not in msg
    with pytest.raises(scoring.DuplicateResultsError, match="3 result key.*same file is given twice"):
        scoring.merge_results([a, a])
    with pytest.raises(ValueError, match="no such results file"):
        scoring.merge_results([tmp_path / "nope.jsonl"])


def test_merge_names_absent_shards_and_unanswered_keys(tmp_path):
    records = [_rec(i) for i in range(8)]
    paths = _shard_files(tmp_path, records, 4)
    missing = scoring.merge_results([paths[0], paths[1]]).missing
    assert len(missing) == 1 and "shards 2, 3 of 4 missing" in missing[0]
    assert "results.shard-2-of-4.jsonl" in missing[0]
    # a shard whose run was cut short: its plan names keys without an answer
    shard3 = Path(paths[3])
    rows = [json.loads(line) for line in shard3.read_text(encoding="utf-8").splitlines()]
    shard3.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    missing = scoring.merge_results(paths).missing
    assert missing == [f"shard 3 of 4 ({paths[3]}): 1 of 2 answers missing, e.g. {rows[1]['key']}"]
    # shards of another selection are not silently mixed in
    other = _shard_files(tmp_path, [_rec(100 + i) for i in range(6)], 2, model_dir="other")
    missing = scoring.merge_results([paths[0], paths[1], paths[2], other[1]]).missing
    assert any("2 different runs" in m for m in missing)
    assert any("shards 0 of 2 missing" in m for m in missing) and any("shards 3 of 4 missing" in m for m in missing)
