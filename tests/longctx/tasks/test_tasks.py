"""Task builders: bucket rules, IDs, gold-position cycle, reproducibility; source adapters."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from kernelkit.longctx.length import fits_bucket, gold_positions, text_length
from kernelkit.longctx.tasks import TASKS, BucketFitError, build_task
from kernelkit.longctx.tasks.embedded import embedded_source
from tests.conftest import SHARED_DATA

HEX6 = re.compile(r"^[0-9A-F]{6}$")
BUCKETS = (1000, 2000, 4000)
REAL = [n for n in TASKS.names() if SHARED_DATA is not None
        and all((SHARED_DATA / f).exists() for f in TASKS.get(n).data_files)]


def check_instances(name, records, buckets):
    task = TASKS.get(name)
    by_bucket = defaultdict(list)
    for rec in records:
        by_bucket[rec.length_bucket].append(rec)
        assert rec.length_bucket in buckets
        # lengths are what the record says, and the bucket rule holds
        input_length = text_length(rec.instruction + "\n" + rec.input, task.lang)
        assert rec.input_length == input_length
        assert rec.total_length == input_length + max(text_length(a, task.lang) for a in rec.answers)
        assert fits_bucket(rec.total_length, rec.length_bucket, buckets, task.rule), (name, rec.total_length)
    for bucket, recs in by_bucket.items():
        for k, rec in enumerate(recs):
            assert rec.extras["id"] == f"{name}-{bucket}-{k:04d}"
            if "gold_index" in rec.extras and task.rule == "range":
                cycle = gold_positions(rec.extras["n_items"])
                assert rec.extras["gold_index"] == cycle[k % len(cycle)]
    return by_bucket


@pytest.mark.parametrize("name", REAL or ["(no data root)"])
def test_real_source_builds_fit_and_reproduce(name):
    if name not in TASKS:
        pytest.skip("real data not found (set KERNELKIT_DATA or place the shared data at ../shared/data)")
    records = build_task(name, SHARED_DATA, buckets=BUCKETS, n=4, seed=3)
    by_bucket = check_instances(name, records, BUCKETS)
    assert 1000 in by_bucket  # every real task fills at least the first bucket
    again = build_task(name, SHARED_DATA, buckets=BUCKETS, n=4, seed=3)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in records]
    if TASKS.get(name).rule == "range":
        other = build_task(name, SHARED_DATA, buckets=BUCKETS, n=4, seed=4)
        assert [r.to_dict() for r in other] != [r.to_dict() for r in records]


@pytest.mark.skipif(SHARED_DATA is None,
                    reason="real data not found (set KERNELKIT_DATA or place the shared data at ../shared/data)")
def test_hex_ids_and_gold_cycle_on_long_bucket():
    recs = build_task("online-shopping", SHARED_DATA, buckets=(1000, 8000), n=2, seed=0)
    for rec in recs:
        ids = re.findall(r"评论([0-9A-Za-z]+): ", rec.input.split("\n\n", 1)[1])
        assert all(HEX6.match(i) for i in ids) and len(set(ids)) == len(ids)
        assert all(HEX6.match(a) for a in rec.answers[0].rstrip("。").split("，"))
    recs = build_task("wikitext-103", SHARED_DATA, buckets=(1000, 8000), n=12, seed=0)
    eight = [r for r in recs if r.length_bucket == 8000]
    assert len(eight) == 12 and all(HEX6.match(r.answers[0]) for r in eight)
    golds = [r.extras["gold_index"] for r in eight]
    cycle = gold_positions(eight[0].extras["n_items"])
    assert golds[: len(cycle)] == cycle[: len(golds)]
    for r in eight:  # the answer ID labels the candidate at the gold position
        cands = re.findall(r"Candidate Paragraph ([0-9A-F]{6}):", r.input.split("\n\n", 1)[1])
        assert cands[r.extras["gold_index"]] == r.answers[0]


def test_embedded_sources_build():
    for name in ("nq-open", "wikitext-103"):
        recs = build_task(name, source=embedded_source(name), buckets=(1000, 2000), n=3, seed=0)
        check_instances(name, recs, (1000, 2000))
        assert len(recs) == 6


def test_unfit_bucket_is_reported():
    src = embedded_source("nq-open")[:3]  # three passages cannot fill a 4k context
    with pytest.raises(BucketFitError, match="nq-open"):
        build_task("nq-open", source=src, buckets=(1000, 4000), n=1, skip_unfit=False)
    assert all(r.length_bucket == 1000 for r in build_task("nq-open", source=src, buckets=(1000, 4000), n=1))


def _write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_official_format_adapters_on_generated_files(tmp_path):
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
    for name in ("arxiv", "pubmed"):
        rows = [{"article_id": str(i), "article_text": [" ".join(words * (20 + 30 * i)) + " ."],
                 "abstract_text": ["<S> alpha beta gamma . </S>", "<S> delta . </S>"]} for i in range(4)]
        _write_jsonl(tmp_path / name / "test.txt", rows)
        recs = build_task(name, tmp_path, buckets=BUCKETS, n=5)
        check_instances(name, recs, BUCKETS)
        assert recs and recs[0].answers == ["alpha beta gamma . delta ."]
    _write_jsonl(tmp_path / "cnewsum" / "test.simple.label.jsonl",
                 [{"id": i, "article": ["今天天气很好。" * (40 * (i + 1))], "summary": "天气好。"} for i in range(3)])
    check_instances("cnewsum", build_task("cnewsum", tmp_path, buckets=BUCKETS, n=5), BUCKETS)
    for lang, body in (("en", "Great product works well"), ("zh", "非常好用，推荐购买")):
        _write_jsonl(tmp_path / "marc" / f"dataset_{lang}_test.json",
                     [{"review_id": f"{lang}_{i}", "product_id": "p", "reviewer_id": "r", "stars": [1, 5, 3][i % 3],
                       "review_body": body, "review_title": "t", "language": lang, "product_category": "x"}
                      for i in range(60)])
    recs = build_task("marc", tmp_path, buckets=(1000,), n=3)
    check_instances("marc", recs, (1000,))
    assert all(all(HEX6.match(a) for a in r.answers[0].rstrip(".").split(",")) for r in recs)


def test_missing_source_names_the_file(tmp_path):
    from kernelkit.data.root import DataNotFoundError

    with pytest.raises(DataNotFoundError, match="nq-open-oracle"):
        build_task("nq-open", tmp_path, buckets=(1000,), n=1)
