"""Adapters for the official M4LE long-document and Wikipedia sources.

Files go under the data root as named below, in the format the source publishes:

=====================  ===========================================  ==============================================
config(s)              file(s) under the data root                  format
=====================  ===========================================  ==============================================
bigpatent_global_cls,  ``bigpatent/test/<a..h,y>/*``                BigPatent: one folder per CPC section, gzipped
bigpatent_global_sum                                                JSON lines ``{publication_number, abstract,
                                                                    description}``
booksum                ``booksum/chapter_summary_aligned_``         BookSum paragraph-level alignments (output of
                       ``train_split.jsonl.gathered``               ``gather_data.py --split_paragraphs``): JSON
                                                                    lines ``{bid, book_id, text: [paragraphs],
                                                                    summary: [sentences], ...}`` in book order
wikihow                ``wikihow/wikihowAll.csv``                   WikiHow CSV, columns ``headline, title, text``
wiki2019zh             ``wiki_zh/<AA>/wiki_<nn>``                   wiki2019zh (brightmart/nlp_chinese_corpus):
                                                                    JSON lines ``{id, url, title, text}``
=====================  ===========================================  ==============================================
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from kernelkit.longctx.length import text_length
from kernelkit.longctx.metrics import MetricSpec
from kernelkit.longctx.records import Record
from kernelkit.longctx.tasks.base import SUM_EN, BuildContext, fit_natural, make_record, register_task
from kernelkit.longctx.tasks.formats import iter_jsonl, need, read_csv
from kernelkit.longctx.tasks.patterns import Item, Prompt, continuation, natural, semantic_single

# ---------------------------------------------------------------------------------------------- BigPatent

#: CPC sections in folder order (a..h, y) with the class names used in the prompt.
CPC_SECTIONS = (
    ("a", "human necessities"), ("b", "performing operations, transporting"), ("c", "chemistry, metallurgy"),
    ("d", "textiles, paper"), ("e", "fixed constructions"),
    ("f", "mechanical engineering, lighting, heating, weapons, blasting"), ("g", "physics"), ("h", "electricity"),
    ("y", "general tagging of new or cross-sectional technology"),
)


def read_bigpatent(root: Path, answer: str = "abstract") -> list[Item]:
    """BigPatent test patents: ``text`` = description, ``label`` = 1-based CPC section index,
    ``answers`` = [abstract] (``answer="abstract"``) or [section index] (``answer="section"``)."""
    folder = need(root / "bigpatent" / "test", "BigPatent (evasharma.github.io/bigpatent)")
    out = []
    for index, (letter, _name) in enumerate(CPC_SECTIONS, 1):
        files = sorted(p for p in (folder / letter).glob("*") if p.is_file()) if (folder / letter).is_dir() else []
        for path in files:  # every file of a section folder is gzipped JSON lines, whatever its name
            for r in iter_jsonl(path, "BigPatent", gzipped=True):
                gold = r["abstract"] if answer == "abstract" else str(index)
                out.append(Item(r["description"], [gold], label=str(index)))
    return out


_CPC_LIST = " ".join(f"{i}: {name}." for i, (_l, name) in enumerate(CPC_SECTIONS, 1))

register_task("bigpatent_global_cls", ability="global", task_type="CLS", lang="en", source="BigPatent test",
              metric=MetricSpec("acc", "en", (":",)),
              official=True, rule="first_below", load=lambda root: read_bigpatent(root, "section"),
              data_files=("bigpatent/test",))(
    natural(Prompt(f"Classify the patent below into one of these sections; give the index and the name. {_CPC_LIST}",
                   "Description: {text}", "Class:",
                   demo="Description: a solution of sodium aluminate is stabilised with triethanolamine .\n"
                        "Class: 3: chemistry, metallurgy.")))
register_task("bigpatent_global_sum", ability="global", task_type="SUM", lang="en", source="BigPatent test",
              metric=SUM_EN,
              official=True, rule="first_below", load=read_bigpatent, data_files=("bigpatent/test",))(
    natural(Prompt("Write the abstract of the patent below.", "Description: {text}", "Summary:")))


# ---------------------------------------------------------------------------------------------- BookSum


def read_booksum(root: Path) -> dict[str, list[tuple[str, str]]]:
    """``{book: [(paragraph text, aligned summary)]}`` in file order, grouped by ``bid`` (the book) as the
    reference does, or by ``book_id`` when a file has no ``bid``."""
    path = root / "booksum" / "chapter_summary_aligned_train_split.jsonl.gathered"
    books: dict[str, list[tuple[str, str]]] = {}
    for r in iter_jsonl(path, "BookSum paragraph alignments (salesforce/booksum)"):
        book = str(r["bid"] if "bid" in r else r["book_id"])
        books.setdefault(book, []).append((" ".join(r["text"]), " ".join(r["summary"])))
    return books


BOOKSUM_INSTRUCTION = "Summarize the content extracted from a book."


@register_task("booksum", ability="global", task_type="SUM", lang="en", source="BookSum paragraph alignments",
               metric=SUM_EN,
               official=True, rule="first_below", load=read_booksum,
               data_files=("booksum/chapter_summary_aligned_train_split.jsonl.gathered",),
               note="consecutive aligned paragraphs of one book joined up to the bucket, as the reference")
def build_booksum(books: dict[str, list[tuple[str, str]]], ctx: BuildContext) -> list[Record]:
    """Consecutive paragraphs of a book are joined while the instance stays below the bucket; the answer
    joins their aligned summaries."""

    def chunk(texts: list[str], summaries: list[str]) -> Callable[[], Record]:
        body = "Content: " + "\n".join(texts) + "\nSummary:"
        return lambda: make_record(ctx, BOOKSUM_INSTRUCTION, body, [" ".join(summaries)])

    candidates = []
    for pairs in books.values():
        texts: list[str] = []
        summaries: list[str] = []
        for text, summary in pairs:
            size = text_length(" ".join([BOOKSUM_INSTRUCTION, *texts, text, *summaries, summary]), "en")
            if texts and size >= ctx.bucket:
                candidates.append(chunk(texts, summaries))
                texts, summaries = [], []
            texts.append(text)
            summaries.append(summary)
        if texts:
            candidates.append(chunk(texts, summaries))
    return fit_natural(ctx, candidates)


# ---------------------------------------------------------------------------------------------- WikiHow


def read_wikihow(root: Path) -> list[Item]:
    """WikiHow articles of more than 60 words: ``key`` = title (trailing digits removed), answer =
    the headline (the article's summary lines), both cleaned of line breaks."""
    out = []
    for r in read_csv(root / "wikihow" / "wikihowAll.csv", "WikiHow (mahnazkoupaee/WikiHow-Dataset)",
                      ("headline", "title", "text")):
        text = re.sub(r"\n\s+", " ", re.sub(r"[.]+[\n]+[,]", ".\n", r["text"] or "")).strip()
        if len(text.split()) <= 60 or not r["title"]:
            continue
        headline = (r["headline"] or "").replace(".,", ".").replace("\n", " ").strip()
        out.append(Item(" ".join(text.split()), [headline], key=r["title"].rstrip("0123456789").strip()))
    return out


register_task("wikihow", ability="semantic_single", task_type="SUM+RET", lang="en", source="WikiHow (wikihowAll)",
              metric=SUM_EN,
              official=True, load=read_wikihow, data_files=("wikihow/wikihowAll.csv",))(
    semantic_single(Prompt(
        "Below are numbered WikiHow articles. At the end, summarize the article with the given title.",
        "Article {label}: {text}", 'Question: Summarize the article titled "{key}" in a few instructive sentences.'
        "\nSummary:",
        demo='Article 1: Wet the soil first . Plant the seeds two centimetres deep .\nQuestion: Summarize the article '
             'titled "How to Plant Beans" in a few instructive sentences.\nSummary: Wet the soil. Plant the seeds.')))


# ---------------------------------------------------------------------------------------------- wiki2019zh


def read_wiki2019zh(root: Path, min_chars: int = 140) -> dict[str, list[str]]:
    """``{title: [paragraphs]}``: the lines of each article are merged until a paragraph has at least
    ``min_chars`` characters (the remainder is dropped); articles with fewer than two paragraphs are left out."""
    folder = need(root / "wiki_zh", "wiki2019zh (brightmart/nlp_chinese_corpus)")
    topics: dict[str, list[str]] = {}
    for path in sorted(p for p in folder.glob("*/wiki_*") if p.is_file()):
        for r in iter_jsonl(path, "wiki2019zh"):
            paragraphs, current = [], ""
            for line in r["text"].replace("\n\n", "\n").split("\n"):
                current = f"{current}\n{line}" if current else line
                if len(current) >= min_chars:
                    paragraphs.append(current)
                    current = ""
            if len(paragraphs) >= 2:
                topics.setdefault(r["title"], paragraphs)
    return topics


register_task("wiki2019zh", ability="semantic_single", task_type="NLI+RET", lang="zh", source="wiki2019zh",
              metric=MetricSpec("exact_match", "zh", ("。",)),
              official=True, load=read_wiki2019zh, data_files=("wiki_zh",))(
    continuation(Prompt(
        "下面给出一个主段落和若干带编号的候选段落，其中只有一个能接在主段落之后。请给出该候选段落的编号。",
        "候选段落{label}: {text}", "答案：", header="主段落: {question}",
        demo="主段落: 这座桥于1932年建成通车。\n候选段落3C41AA: 企鹅是不会飞的鸟。\n"
             "候选段落9F0B27: 通车后车流迅速增加，1958年又加建了一层。\n答案：9F0B27。")))
