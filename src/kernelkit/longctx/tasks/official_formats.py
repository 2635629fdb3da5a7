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

import re
from dataclasses import dataclass
from pathlib import Path

from kernelkit.longctx.metrics import MetricSpec
from kernelkit.longctx.records import Record
from kernelkit.longctx.tasks.base import SUM_EN, BuildContext, fit_concatenated, hex_id, make_record, register_task
from kernelkit.longctx.tasks.formats import read_jsonl
from kernelkit.longctx.tasks.patterns import Item, Prompt, natural

_SENT_TAGS = re.compile(r"</?S>")


def read_cohan(root: Path, name: str) -> list[Item]:
    """arXiv or PubMed test documents with their abstracts (sentence tags removed)."""
    rows = read_jsonl(root / name / "test.txt", f"{name} from armancohan/long-summarization")
    return [Item(" ".join(r["article_text"]), [" ".join(_SENT_TAGS.sub("", s).strip() for s in r["abstract_text"])])
            for r in rows if r.get("article_text") and r.get("abstract_text")]


def _cohan_loader(name: str):
    def load(root: Path) -> list[Item]:
        return read_cohan(root, name)

    return load


for _name in ("arxiv", "pubmed"):
    register_task(_name, ability="global", task_type="SUM", lang="en", source=f"{_name} test (Cohan et al.)",
                  official=True, metric=SUM_EN, rule="first_below", load=_cohan_loader(_name),
                  data_files=(f"{_name}/test.txt",))(
        natural(Prompt("Summarize the paper below in one paragraph.", "Paper:\n{text}\n", "Summary:")))


def _unspaced(value: str | list[str]) -> str:
    """The text of a space-tokenized string or list of sentences, whitespace removed."""
    return "".join("".join(part.split()) for part in ([value] if isinstance(value, str) else value))


def read_cnewsum(root: Path) -> list[Item]:
    """CNewSum v2 test articles (sentences, space-tokenized) with their summaries, whitespace removed."""
    rows = read_jsonl(root / "cnewsum" / "test.simple.label.jsonl", "CNewSum v2")
    return [Item(_unspaced(r["article"]), [_unspaced(r["summary"])]) for r in rows if r.get("article")]


register_task("cnewsum", ability="global", task_type="SUM", lang="zh", source="CNewSum v2 test", official=True,
              metric=MetricSpec("rouge", "zh", ("\n", "新闻")),
              rule="first_below", load=read_cnewsum, data_files=("cnewsum/test.simple.label.jsonl",))(
    natural(Prompt("请用一段话总结下面的新闻。", "新闻：\n{text}\n", "总结：")))


@dataclass
class StarReview:
    review_id: str
    stars: int
    text: str


def read_marc(root: Path) -> list[StarReview]:
    """English and Chinese test reviews with 1 or 5 stars."""
    out = []
    for lang in ("en", "zh"):
        for r in read_jsonl(root / "marc" / f"dataset_{lang}_test.json", "Multilingual Amazon Reviews Corpus"):
            if int(r["stars"]) in (1, 5):
                out.append(StarReview(r["review_id"], int(r["stars"]), f"{r['review_title']}. {r['review_body']}"))
    return out


MARC_INSTRUCTION = "Below are customer reviews in English and Chinese. List the IDs of all positive reviews."
MARC_DEMO = ("Review 1F2E3D: Works great, fast delivery.\nReview 9A8B7C: 质量太差了。\n"
             "Review 4C5D6E: 非常好用。\nAnswer: 1F2E3D,4C5D6E.")


@register_task("marc", ability="explicit_multiple", task_type="CLS+RET", lang="mixed",
               metric=MetricSpec("set_f1", "en", id_sep=",", id_stop=".", gold_stop="."),
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
