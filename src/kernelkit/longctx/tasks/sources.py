"""Source adapters: read the real source datasets (data-root layout of ``shared/data``) into plain items.

Each adapter names the official M4LE config it feeds and reads the file exactly as published.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from kernelkit.data.root import DataNotFoundError
from kernelkit.longctx.tasks.formats import iter_jsonl, need


@dataclass
class QAItem:
    """A passage with a question about it (several answers allowed)."""

    title: str
    text: str
    question: str
    answers: list[str]
    choices: list[str] = field(default_factory=list)


def read_c3(root: Path, split: str = "test") -> list[QAItem]:
    """C3-M (``c3/c3-m-<split>.json``): ``[[paragraphs], [{question, choice, answer}], id]`` rows.

    One item per document, keeping its first question (documents under 100 characters are dropped,
    as in the reference). Feeds config ``c3``.
    """
    path = need(root / "c3" / f"c3-m-{split}.json", "C3 from nlpdata/c3")
    items = []
    for paragraphs, questions, _doc_id in json.loads(path.read_text(encoding="utf-8")):
        doc = "".join(paragraphs).replace("\n", "")
        if len(doc) < 100 or not questions:
            continue
        for q in questions:
            items.append(QAItem("", doc, q["question"], [q["answer"]], list(q["choice"])))
    return items


def read_drcd(root: Path, split: str = "test") -> list[QAItem]:
    """DRCD (``drcd/DRCD_<split>.json``, SQuAD v1 layout): one item per paragraph with its first question.

    The text stays in Traditional Chinese (the reference converts to Simplified with OpenCC).
    Feeds ``drcd_semantic-single`` and ``drcd_explicit-single``.
    """
    path = need(root / "drcd" / f"DRCD_{split}.json", "DRCD from DRCKnowledgeTeam/DRCD")
    items = []
    for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            qas = para.get("qas") or []
            if not qas:
                continue
            answers = sorted({a["text"] for a in qas[0]["answers"]})
            items.append(QAItem(article["title"], para["context"], qas[0]["question"], answers))
    return items


@dataclass
class Review:
    category: str
    label: int
    text: str


def read_online_shopping(root: Path) -> list[Review]:
    """online_shopping_10_cats (zip of one CSV ``cat,label,review``). Feeds ``online-shopping``."""
    path = need(root / "online_shopping_10_cats" / "online_shopping_10_cats.zip", "SophonPlus/ChineseNlpCorpus")
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".csv"))
        text = zf.read(name).decode("utf-8-sig")
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        review = (row.get("review") or "").strip()
        if review:
            out.append(Review(row["cat"], int(row["label"]), review.replace("\n", " ")))
    return out


def read_nq_open_oracle(root: Path) -> list[QAItem]:
    """NQ-open with its gold passage (lost-in-the-middle ``nq-open-oracle.jsonl.gz``). Feeds ``nq-open``."""
    items = []
    for row in iter_jsonl(root / "nq_open_lost_in_the_middle" / "nq-open-oracle.jsonl.gz",
                          "nelson-liu/lost-in-the-middle"):
        gold = row["ctxs"][0]
        items.append(QAItem(gold["title"], gold["text"], row["question"], list(row["answers"])))
    return items


@dataclass
class HotpotItem:
    question: str
    answer: str
    paragraphs: list[tuple[str, str]]  # (title, text)


def read_hotpotqa(root: Path) -> list[HotpotItem]:
    """HotpotQA dev distractor (official JSON; the 53-example excerpt of the data root). Feeds ``hotpotqa``."""
    folder = need(root / "hotpotqa", "HotpotQA dev distractor")
    path = next(iter(sorted(folder.glob("hotpot_dev_distractor_v1*.json"))), None)
    if path is None:
        raise DataNotFoundError(f"{folder}: no hotpot_dev_distractor_v1*.json")
    return [HotpotItem(r["question"], r["answer"], [(t, "".join(s)) for t, s in r["context"]])
            for r in json.loads(path.read_text(encoding="utf-8"))]


def read_wikitext_topics(root: Path, split: str = "test", min_words: int = 30) -> dict[str, list[str]]:
    """WikiText-2 articles: ``{title: [paragraphs of more than min_words words]}``.

    Titles are lines ``= Title =``; deeper headings (``= = ... = =``) are skipped, as in the reference.
    The data root has the tokenized v1 files (the reference used the raw variant). Feeds ``wikitext-103``.
    """
    path = need(root / "wikitext-2" / f"{split}.txt", "WikiText-2 from pytorch/examples")
    topics: dict[str, list[str]] = {}
    title = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("=") and line.endswith("="):
            if line.count("=") == 2:
                title = line.strip("= ").strip()
                topics.setdefault(title, [])
            continue
        if title and len(line.split()) > min_words:
            topics[title].append(line)
    return {t: p for t, p in topics.items() if len(p) >= 2}


@dataclass
class Meeting:
    """A meeting (or meeting excerpt) with a query and reference summary."""

    name: str
    turns: list[str]
    query: str
    summary: str


def read_qmsum(root: Path, split: str = "test") -> list[Meeting]:
    """QMSum (``qmsum/<split>/*.json``): one item per general query over the whole meeting and per specific
    query over its relevant transcript span. Feeds the new task ``qmsum``."""
    folder = need(root / "qmsum" / split, "QMSum from Yale-LILY/QMSum")
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        turns = [f"{t['speaker']}: {t['content']}" for t in data["meeting_transcripts"]]
        for q in data.get("general_query_list", []):
            out.append(Meeting(path.stem, turns, q["query"], q["answer"]))
        for q in data.get("specific_query_list", []):
            span: list[str] = []
            for start, end in q.get("relevant_text_span", []):
                span += turns[int(start):int(end) + 1]
            if span:
                out.append(Meeting(path.stem, span, q["query"], q["answer"]))
    return out


def read_vcsum(root: Path, split: str = "dev") -> list[Meeting]:
    """VCSum segments (``vcsum/short_<split>.txt``, JSON lines): segment text and its discussion summary.
    Feeds the new task ``vcsum``."""
    out = []
    for row in iter_jsonl(root / "vcsum" / f"short_{split}.txt", "VCSum from hahahawu/VCSum"):
        turns = ["".join(seg) for seg in row["context"]]
        out.append(Meeting(str(row["id"]), turns, row.get("agenda", ""), row["discussion"]))
    return out
