"""M4LE record schema, jsonl round trip, malformed input, local official data, lengths and buckets."""

from __future__ import annotations

import json

import pytest

from kernelkit.longctx.length import assign_bucket, fits_bucket, gold_positions, text_length
from kernelkit.longctx.records import Record, RecordError, load_official, read_records, write_records


def _row(**kw):
    row = {"instruction": "Answer.", "input": "Q: x\nAnswer:", "answers": ["y"], "input_length": 4,
           "total_length": 5, "length_bucket": 1000}
    row.update(kw)
    return row


def test_round_trip_keeps_extras(tmp_path):
    recs = [Record.from_dict(_row(gold_index=3, id="ABC")), Record.from_dict(_row(answers=["a", "b"]))]
    path = write_records(tmp_path / "t.jsonl", recs)
    back = read_records(path)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]
    assert back[0].extras == {"gold_index": 3, "id": "ABC"} and back[0].sample_id == "ABC"
    assert back[1].sample_id == recs[1].sample_id and len(back[1].sample_id) == 16
    assert back[0].prompt == "Answer.\nQ: x\nAnswer:"


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_row()) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: malformed"):
        read_records(path)
    path.write_text(json.dumps(_row(answers="y")) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=r"bad\.jsonl:1: field 'answers'"):
        read_records(path)
    row = _row()
    del row["length_bucket"]
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match="missing field"):
        read_records(path)


def test_load_official_from_local_directory(tmp_path):
    (tmp_path / "qa").mkdir()
    # the hub files have no trailing newline
    (tmp_path / "qa" / "nq-open.jsonl").write_text("\n".join(json.dumps(_row()) for _ in range(3)), encoding="utf-8")
    assert len(load_official("nq-open", tmp_path)) == 3
    with pytest.raises(FileNotFoundError, match="hotpotqa.jsonl"):
        load_official("hotpotqa", tmp_path)


def test_text_length_and_buckets():
    assert text_length("one two  three\nfour", "en") == 4
    assert text_length("我爱北京", "zh") == 4
    with pytest.raises(ValueError, match="language"):
        text_length("x", "fr")
    buckets = (1000, 2000, 4000)
    assert fits_bucket(1500, 2000, buckets) and not fits_bucket(1000, 2000, buckets)
    assert assign_bucket(999, buckets) == 1000 and assign_bucket(1000, buckets) == 2000
    assert assign_bucket(5000, buckets) is None
    assert fits_bucket(1500, 2000, buckets, "upper_half") and not fits_bucket(1400, 2000, buckets, "upper_half")
    assert gold_positions(12) == [0, 4, 9] and gold_positions(200)[:3] == [0, 9, 19]
