"""Adapters and builders for official M4LE sources that are not in the data root.

They read the sources in their published formats (place the files under the data root as named):

* ``arxiv`` / ``pubmed`` -- Cohan et al. (2018) long-summarization sets, ``<root>/{arxiv,pubmed}/test.txt``:
  JSON lines ``{"article_id", "article_text": [sentences], "abstract_text": ["<S> sentence </S>", ...]}``.
* ``marc`` -- Multilingual Amazon Reviews, ``<root>/marc/dataset_{en,zh}_test.json``: JSON lines
  ``{"review_id", "stars", "review_body", "review_title", "language", ...}``; only 1- and 5-star reviews.
* ``cnewsum`` -- CNewSum v2, ``<root>/cnewsum/test.simple.label.jsonl``: JSON lines
  ``{"id", "article": [sentences], "summary"}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from kernelkit.data.root import DataNotFoundError
from kernelkit.longctx.records import Record
from kernelkit.longctx.tasks.base import BuildContext, fit_concatenated, fit_natural, hex_id, make_record, register_task


@dataclass
class Document:
    text: str
    summary: str


def _jsonl(path: Path, how: str) -> list[dict]:
    if not path.exists():
        raise DataNotFoundError(f"{path} not found ({how})")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: malformed JSON line ({exc.msg})") from None
    return rows


_SENT_TAGS = re.compile(r"</?S>")


def read_cohan(root: Path, name: str) -> list[Document]:
    """arXiv or PubMed test documents with their abstracts (sentence tags removed)."""
    rows = _jsonl(root / name / "test.txt", f"{name} from armancohan/long-summarization")
    return [Document(" ".join(r["article_text"]), " ".join(_SENT_TAGS.sub("", s).strip() for s in r["abstract_text"]))
            for r in rows if r.get("article_text") and r.get("abstract_text")]


def _summarization(name: str, lang: str, instruction: str, doc_label: str, cue: str):
    def build(docs: list[Document], ctx: BuildContext) -> list[Record]:
        def maker(d: Document):
            return lambda: make_record(ctx, instruction, f"{doc_label}\n{d.text}\n\n{cue}", [d.summary])
        return fit_natural(ctx, [maker(d) for d in docs])

    build.__name__ = f"build_{name.replace('-', '_')}"
    return build


for _name in ("arxiv", "pubmed"):
    register_task(_name, ability="global", task_type="SUM", lang="en", source=f"{_name} test (Cohan et al.)",
                  official=True, rule="first_below", load=lambda root, n=_name: read_cohan(root, n),
                  data_files=(f"{_name}/test.txt",))(
        _summarization(_name, "en", "Summarize the paper below in one paragraph.", "Paper:", "Summary:"))


def read_cnewsum(root: Path) -> list[Document]:
    rows = _jsonl(root / "cnewsum" / "test.simple.label.jsonl", "CNewSum v2")
    return [Document("".join(r["article"]), r["summary"]) for r in rows if r.get("article")]


register_task("cnewsum", ability="global", task_type="SUM", lang="zh", source="CNewSum v2 test", official=True,
              rule="first_below", load=read_cnewsum, data_files=("cnewsum/test.simple.label.jsonl",))(
    _summarization("cnewsum", "zh", "请用一段话总结下面的新闻。", "新闻：", "总结："))


@dataclass
class StarReview:
    review_id: str
    stars: int
    text: str


def read_marc(root: Path) -> list[StarReview]:
    """English and Chinese test reviews with 1 or 5 stars."""
    out = []
    for lang in ("en", "zh"):
        for r in _jsonl(root / "marc" / f"dataset_{lang}_test.json", "Multilingual Amazon Reviews Corpus"):
            if int(r["stars"]) in (1, 5):
                out.append(StarReview(r["review_id"], int(r["stars"]), f"{r['review_title']}. {r['review_body']}"))
    return out


MARC_INSTRUCTION = "Below are customer reviews in English and Chinese. List the IDs of all positive reviews."
MARC_DEMO = ("Review 1F2E3D: Works great, fast delivery.\nReview 9A8B7C: 质量太差了。\n"
             "Review 4C5D6E: 非常好用。\nAnswer: 1F2E3D,4C5D6E.")


@register_task("marc", ability="explicit_multiple", task_type="CLS+RET", lang="mixed",
               source="Multilingual Amazon Reviews test", official=True, load=read_marc,
               data_files=("marc/dataset_en_test.json", "marc/dataset_zh_test.json"))
def build_marc(reviews: list[StarReview], ctx: BuildContext) -> list[Record]:
    def make(n_items: int, gold: int, k: int) -> Record | None:
        rows = ctx.rng.sample(reviews, min(n_items, len(reviews)))
        taken: set[str] = set()
        ids = [hex_id(ctx.rng, taken) for _ in rows]
        positive = [i for i, r in zip(ids, rows, strict=True) if r.stars == 5]
        if not positive:
            return None
        body = "\n".join(f"Review {i}: {r.text}" for i, r in zip(ids, rows, strict=True)) + "\nAnswer:"
        if ctx.one_shot:
            body = MARC_DEMO + "\n\n" + body
        return make_record(ctx, MARC_INSTRUCTION, body, [",".join(positive) + "."], n_items=len(rows))

    return fit_concatenated(ctx, 55, 60, make)
