"""M4LE records: the benchmark's jsonl schema, reading/writing, and loading the official data.

One record per line: ``instruction, input, answers (list of str), input_length, total_length,
length_bucket``; any other field (``gold_index``, ``id``, ``task``, ...) is kept in ``extras``. The prompt
sent to a model is ``instruction + "\\n" + input``, as in the reference.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED = ("instruction", "input", "answers", "input_length", "total_length", "length_bucket")
OFFICIAL_DATASET = "wckwan/M4LE"


class RecordError(ValueError):
    """A record that does not follow the M4LE schema (message names file and line)."""


@dataclass
class Record:
    """One M4LE instance."""

    instruction: str
    input: str
    answers: list[str]
    input_length: int
    total_length: int
    length_bucket: int
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The reference prompt: instruction, newline, input."""
        return self.instruction + "\n" + self.input

    @property
    def sample_id(self) -> str:
        """``extras["id"]`` when present, else a content hash (stable across runs and machines)."""
        if "id" in self.extras:
            return str(self.extras["id"])
        blob = json.dumps([self.instruction, self.input, self.answers, self.length_bucket], ensure_ascii=False)
        return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in REQUIRED}
        out["answers"] = list(self.answers)
        for key, value in self.extras.items():
            if key in out:
                raise RecordError(f"extra field {key!r} clashes with a schema field")
            out[key] = value
        return out

    @classmethod
    def from_dict(cls, row: Any, where: str = "record") -> Record:
        """Validate one parsed json object; ``where`` (e.g. ``file:line``) prefixes error messages."""
        if not isinstance(row, dict):
            raise RecordError(f"{where}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise RecordError(f"{where}: missing field(s) {', '.join(missing)}")
        for key in ("instruction", "input"):
            if not isinstance(row[key], str):
                raise RecordError(f"{where}: field {key!r} must be a string")
        answers = row["answers"]
        if isinstance(answers, str) or not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
            raise RecordError(f"{where}: field 'answers' must be a list of strings")
        ints = {}
        for key in ("input_length", "total_length", "length_bucket"):
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
                raise RecordError(f"{where}: field {key!r} must be an integer, got {value!r}")
            ints[key] = int(value)
        extras = {k: v for k, v in row.items() if k not in REQUIRED}
        return cls(row["instruction"], row["input"], list(answers), extras=extras, **ints)


def iter_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Records of a jsonl file; a malformed line raises naming the file and the line.

    A missing path raises :class:`FileNotFoundError`, a directory or a file that is not UTF-8 text
    :class:`RecordError`, each naming the path in one line."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise RecordError(f"{path}: is a directory, expected a jsonl records file")
    with open(path, encoding="utf-8") as f:
        lineno = 0
        try:
            for lineno, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecordError(f"{path}:{lineno}: malformed JSON line ({exc.msg})") from None
                yield Record.from_dict(row, where=f"{path}:{lineno}")
        except UnicodeDecodeError:
            raise RecordError(f"{path}:{lineno + 1}: not UTF-8 text (expected a jsonl records file)") from None


def read_records(path: str | os.PathLike[str]) -> list[Record]:
    """All records of a jsonl file (see :func:`iter_records`)."""
    return list(iter_records(path))


def write_records(path: str | os.PathLike[str], records: Iterable[Record]) -> Path:
    """Write records as jsonl (atomically: the file appears complete or not at all)."""
    from kernelkit.utils.io import write_text

    lines = [json.dumps(r.to_dict(), ensure_ascii=False) for r in records]
    write_text(path, "".join(line + "\n" for line in lines))
    return Path(path)


def load_official(config: str, source: str | os.PathLike[str] | None = None) -> list[Record]:
    """The official M4LE records of ``config``.

    ``source`` may be a local directory holding ``<config>.jsonl`` (at any depth, e.g. the hub layout
    ``classification/<config>.jsonl``) or a single jsonl file. Without it the hub dataset
    ``wckwan/M4LE`` is loaded with ``datasets`` (needs network access or a populated HF cache).
    """
    if source is not None:
        src = Path(source)
        if src.is_file():
            return read_records(src)
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: no such file or directory")
        hits = sorted(src.rglob(f"{config}.jsonl"))
        if not hits:
            raise FileNotFoundError(f"{src}: no {config}.jsonl found (looked in all subfolders)")
        return read_records(hits[0])
    try:
        from datasets import load_dataset
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("loading the official M4LE data needs `pip install datasets`") from exc
    try:
        data = load_dataset(OFFICIAL_DATASET, config, split="test")
    except Exception as exc:
        raise RuntimeError(
            f"could not load {OFFICIAL_DATASET!r} config {config!r} ({type(exc).__name__}: {exc}); "
            "pass a local directory of jsonl files instead"
        ) from exc
    return [Record.from_dict(dict(row), where=f"{OFFICIAL_DATASET}/{config}[{i}]") for i, row in enumerate(data)]
