"""File formats shared by several source adapters: JSON / JSON lines (optionally gzipped), CSV, and the
OPUS XCES sentence-aligned XML used by OpenSubtitles and News-Commentary.

Every reader names the missing file (and the upstream source) or the malformed line.
"""

from __future__ import annotations

import csv
import gzip
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kernelkit.data.root import DataNotFoundError


def need(path: Path, how: str) -> Path:
    """``path`` when it exists, else :class:`DataNotFoundError` naming it and where to get it."""
    if not path.exists():
        raise DataNotFoundError(f"{path} not found ({how})")
    return path


def open_text(path: Path, gzipped: bool | None = None) -> IO[str]:
    """A text handle on ``path``, gunzipped when ``gzipped`` (default: when the name ends in ``.gz``)."""
    if path.suffix == ".gz" if gzipped is None else gzipped:
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def read_json(path: Path, how: str) -> Any:
    with open_text(need(path, how)) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None


def iter_jsonl(path: Path, how: str, gzipped: bool | None = None) -> Iterator[dict[str, Any]]:
    """Objects of a JSON-lines file (blank lines skipped; a malformed line names file and line)."""
    with open_text(need(path, how), gzipped) as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: malformed JSON line ({exc.msg})") from None


def read_jsonl(path: Path, how: str) -> list[dict[str, Any]]:
    return list(iter_jsonl(path, how))


def read_csv(path: Path, how: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CSV file with a header; the ``columns`` must be present."""
    with open(need(path, how), encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (header: {reader.fieldnames})")
        return list(reader)


# ----------------------------------------------------------------------------------------------
# OPUS (XCES alignments over per-document XML)


@dataclass
class AlignedDocument:
    """One document pair of an OPUS corpus: its aligned (source, target) segments, one per link, in order
    (a side without sentences is ``""``)."""

    source_doc: str
    target_doc: str
    pairs: list[tuple[str, str]]
    source_root: ET.Element
    target_root: ET.Element


def _xml_root(path: Path) -> ET.Element:
    if not path.exists() and path.with_suffix(path.suffix + ".gz").exists():
        path = path.with_suffix(path.suffix + ".gz")
    with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
        return ET.parse(f).getroot()


def opus_sentences(root: ET.Element, joiner: str) -> dict[str, str]:
    """``{sentence id: text}`` of an OPUS document: the ``<w>`` tokens of each ``<s>`` joined by ``joiner``
    (the raw ``<s>`` text when it has no tokens)."""
    out = {}
    for s in root.iter("s"):
        words = [w.text or "" for w in s.iter("w")]
        out[s.attrib["id"]] = joiner.join(words) if words else " ".join("".join(s.itertext()).split())
    return out


def read_opus(align_file: Path, doc_folder: Path, how: str, source_joiner: str = " ",
              target_joiner: str = "") -> list[AlignedDocument]:
    """Read an XCES alignment (``<linkGrp fromDoc toDoc><link xtargets="1 2;1"/>``) and its documents.

    Document paths in ``fromDoc``/``toDoc`` are relative to ``doc_folder``; ``.gz`` is optional on disk.
    Links with an empty side (a sentence without translation) are kept as ``""`` so that link positions
    match the alignment file. Documents that are missing or not well-formed XML are skipped, as in the
    reference.
    """
    alignment = _xml_root(need(align_file, how))
    out = []
    for group in alignment.iter("linkGrp"):
        src_name, tgt_name = group.attrib["fromDoc"], group.attrib["toDoc"]
        try:
            src_root = _xml_root(doc_folder / src_name.removesuffix(".gz"))
            tgt_root = _xml_root(doc_folder / tgt_name.removesuffix(".gz"))
        except (OSError, ET.ParseError):
            continue
        src, tgt = opus_sentences(src_root, source_joiner), opus_sentences(tgt_root, target_joiner)
        pairs = []
        for link in group.iter("link"):
            src_ids, _, tgt_ids = link.attrib["xtargets"].partition(";")
            pairs.append((source_joiner.join(src[i] for i in src_ids.split()),
                          target_joiner.join(tgt[i] for i in tgt_ids.split())))
        out.append(AlignedDocument(src_name, tgt_name, pairs, src_root, tgt_root))
    return out
