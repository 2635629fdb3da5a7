"""Library-level checks behind the ``m4le`` commands' bad-input handling: each failure is one exception whose
message names the file or model, never a bare ``KeyError``/``IsADirectoryError`` from deep inside."""

from __future__ import annotations

import json

import pytest

from kernelkit.longctx.records import Record, RecordError, read_records, write_records
from kernelkit.longctx.runner import load_results


def test_read_records_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.jsonl: no such file"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(RecordError, match="is a directory"):
        read_records(tmp_path)
    (tmp_path / "bin.jsonl").write_bytes(b"\xff\xfe\x81\n")
    with pytest.raises(RecordError, match=r"bin\.jsonl:1: not UTF-8 text"):
        read_records(tmp_path / "bin.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    assert read_records(tmp_path / "empty.jsonl") == []


def test_load_results_refuses_what_is_not_a_results_file(tmp_path):
    records = write_records(tmp_path / "records.jsonl", [Record("I.", "Q", ["a"], 1, 2, 1000, {"task": "nq-open"})])
    with pytest.raises(ValueError, match=r"records\.jsonl: row 1 is not a result \(missing key, model"):
        load_results(records)
    with pytest.raises(ValueError, match="is a directory"):
        load_results(tmp_path)
    (tmp_path / "list.jsonl").write_text(json.dumps([1, 2]) + "\n")
    with pytest.raises(ValueError, match="row 1 is not a result"):
        load_results(tmp_path / "list.jsonl")
    assert load_results(tmp_path / "missing.jsonl") == []


def test_hf_backend_names_a_model_it_cannot_load(tmp_path):
    pytest.importorskip("transformers")
    from kernelkit.longctx.backends.hf import ModelLoadError, hf_backend

    with pytest.raises(ModelLoadError, match="no such folder"):
        hf_backend(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        hf_backend(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")  # a folder that looks like a model but is not one
    with pytest.raises(ModelLoadError, match="could not be loaded") as info:
        hf_backend(str(tmp_path))
    assert "\n" not in str(info.value)


def test_openai_failures_are_summarised_once_each():
    from kernelkit.longctx.backends.openai_http import _summarise

    assert _summarise(["HTTP 503", "HTTP 503", "timeout (ReadTimeout)", "HTTP 503"]) == \
        "3 x HTTP 503; timeout (ReadTimeout)"
