"""Builders of the M4LE tasks whose sources are in the data root (official configs and new tasks)."""

from __future__ import annotations

from pathlib import Path

from kernelkit.longctx.metrics import MetricSpec
from kernelkit.longctx.records import Record
from kernelkit.longctx.tasks import sources as src
from kernelkit.longctx.tasks.base import (
    QA_EN,
    QA_ZH,
    SUM_EN,
    SUM_ZH,
    BuildContext,
    fit_concatenated,
    fit_natural,
    hex_id,
    make_record,
    register_task,
)
from kernelkit.longctx.tasks.patterns import Prompt, continuation, mean_length


def _with_demo(ctx: BuildContext, demo: str, body: str) -> str:
    return demo + "\n\n" + body if ctx.one_shot else body


# ---------------------------------------------------------------------------------------------- explicit single

C3_INSTRUCTION = "下面有许多段落。最后的问题会指定其中一个段落，请根据该段落从选项中选出正确答案。"
C3_DEMO = ("段落1: 小王每天早上跑步，所以身体很好。\n段落2: 这家饭店的菜很便宜，但是服务员不太热情。\n"
           "问题：根据段落2，这家饭店怎么样？ A. 菜很贵 B. 服务很好 C. 菜很便宜\n答案：C. 菜很便宜")


@register_task("c3", metric=QA_ZH, ability="explicit_single", task_type="QA+RET", lang="zh", source="C3-M test",
               official=True, load=src.read_c3, data_files=("c3/c3-m-test.json",))
def build_c3(items: list[src.QAItem], ctx: BuildContext) -> list[Record]:
    def make(n_items: int, gold: int, k: int) -> Record:
        target = ctx.rng.choice(items)
        others = [d for d in ctx.rng.sample(items, min(len(items), n_items + 5)) if d.text != target.text]
        docs = others[: n_items - 1]
        docs.insert(gold, target)
        letters = [chr(ord("A") + i) for i in range(len(target.choices))]
        options = " ".join(f"{c}. {t}" for c, t in zip(letters, target.choices, strict=True))
        answer = f"{letters[target.choices.index(target.answers[0])]}. {target.answers[0]}"
        body = "\n".join(f"段落{i}: {d.text}" for i, d in enumerate(docs, 1))
        body += f"\n问题：根据段落{gold + 1}，{target.question} {options}\n答案："
        return make_record(ctx, C3_INSTRUCTION, _with_demo(ctx, C3_DEMO, body), [answer], gold_index=gold,
                           n_items=len(docs))

    return fit_concatenated(ctx, mean_length([d.text for d in items], "zh") + 8, 150, make)


DRCD_RET_INSTRUCTION = "以下是若干主题及其维基百科文章的开头。请根据指定的主题编号，写出该主题的名称。"
DRCD_RET_DEMO = "A1B2C3主题是长城，文章如下：\n长城是中国古代的军事防御工程。\n\n在以上主题中，A1B2C3主题是长城"


def _drcd_topics(root: Path) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for item in src.read_drcd(root):
        seen.setdefault(item.title, item.text)
    return sorted(seen.items())


@register_task("drcd_explicit-single", ability="explicit_single", task_type="RET", lang="zh", source="DRCD test",
               metric=MetricSpec("acc", "en", ("，", "\n")), reference_key="drcd_explicit-single_ret",
               official=True, load=_drcd_topics, data_files=("drcd/DRCD_test.json",),
               note="Traditional Chinese kept (the reference converts to Simplified)")
def build_drcd_retrieval(topics: list[tuple[str, str]], ctx: BuildContext) -> list[Record]:
    def make(n_items: int, gold: int, k: int) -> Record | None:
        if n_items > len(topics):
            return None
        chosen = ctx.rng.sample(topics, n_items)
        taken: set[str] = set()
        ids = [hex_id(ctx.rng, taken) for _ in chosen]
        blocks = [f"{i}主题是{title}，文章如下：\n{text[:110]}" for i, (title, text) in zip(ids, chosen, strict=True)]
        body = f"以下是{n_items}个主题的维基百科文章。\n\n" + "\n\n".join(blocks)
        body += f"\n\n在以上{n_items}个主题中，{ids[gold]}主题是"
        return make_record(ctx, DRCD_RET_INSTRUCTION, _with_demo(ctx, DRCD_RET_DEMO, body), [chosen[gold][0]],
                           gold_index=gold, n_items=n_items)

    return fit_concatenated(ctx, 125, 120, make)


# ---------------------------------------------------------------------------------------------- explicit multiple

SHOP_INSTRUCTION = "以下是多位顾客的商品评论。请列出所有正面评论的编号。"
SHOP_DEMO = ("评论5A1C22: 质量很好，物流也快。\n评论0B9F13: 用了两天就坏了，很失望。\n"
             "评论E4D871: 很满意，还会回购。\n答案: 5A1C22，E4D871。")


@register_task("online-shopping", ability="explicit_multiple", task_type="CLS+RET", lang="zh",
               metric=MetricSpec("set_f1", "zh", id_sep="，", id_stop="。"),
               source="online_shopping_10_cats", official=True, load=src.read_online_shopping,
               data_files=("online_shopping_10_cats/online_shopping_10_cats.zip",))
def build_online_shopping(reviews: list[src.Review], ctx: BuildContext) -> list[Record]:
    def make(n_items: int, gold: int, k: int) -> Record | None:
        rows = ctx.rng.sample(reviews, n_items)
        taken: set[str] = set()
        ids = [hex_id(ctx.rng, taken) for _ in rows]
        positive = [i for i, r in zip(ids, rows, strict=True) if r.label == 1]
        if not positive:
            return None
        body = "\n".join(f"评论{i}: {r.text}" for i, r in zip(ids, rows, strict=True)) + "\n答案:"
        return make_record(ctx, SHOP_INSTRUCTION, _with_demo(ctx, SHOP_DEMO, body), ["，".join(positive) + "。"],
                           n_items=n_items, n_positive=len(positive))

    return fit_concatenated(ctx, mean_length([r.text for r in reviews], "zh") + 10, 100, make)


# ---------------------------------------------------------------------------------------------- semantic single

NQ_INSTRUCTION = ("Write a high-quality answer for the given question using only the provided search results "
                  "(some of which might be irrelevant).")
NQ_DEMO = ("Document [{n}](Title: Eiffel Tower) The Eiffel Tower was completed in 1889 for the World's Fair in Paris."
           "\n\nQuestion: when was the eiffel tower completed\nAnswer: 1889.")


def _search_results_qa(results: list[str], demo: str, question: str, one_shot: bool) -> str:
    """Numbered search results, then (one-shot) the demonstration numbered as one more result and joined with
    single newlines as in the reference, then the question (after a blank line when there is no demonstration)."""
    body = "\n".join(results)
    if one_shot:
        return f"{body}\n{demo.format(n=len(results) + 1)}\n{question}"
    return f"{body}\n\n{question}"


@register_task("nq-open", ability="semantic_single", task_type="QA", lang="en", source="NQ-open oracle passages",
               metric=QA_EN,
               official=True, load=src.read_nq_open_oracle,
               data_files=("nq_open_lost_in_the_middle/nq-open-oracle.jsonl.gz",),
               note="distractors are other questions' gold passages without the answer "
                    "(the retrieved-distractor files are not in the data root)")
def build_nq_open(items: list[src.QAItem], ctx: BuildContext) -> list[Record]:
    def make(n_items: int, gold: int, k: int) -> Record:
        target = ctx.rng.choice(items)
        answers = [a.lower() for a in target.answers]
        pool = ctx.rng.sample(items, min(len(items), n_items * 2 + 5))
        docs = [d for d in pool if d.question != target.question
                and not any(a in (d.title + " " + d.text).lower() for a in answers)][: n_items - 1]
        docs.insert(gold, target)
        body = _search_results_qa([f"Document [{i}](Title: {d.title}) {d.text}" for i, d in enumerate(docs, 1)],
                                  NQ_DEMO, f"Question: {target.question}\nAnswer:", ctx.one_shot)
        return make_record(ctx, NQ_INSTRUCTION, body, list(target.answers), gold_index=gold, n_items=len(docs))

    return fit_concatenated(ctx, mean_length([d.text for d in items], "en") + 5, 70, make)


DRCD_QA_INSTRUCTION = "请仅根据提供的文章回答问题（部分文章可能与问题无关）。"
DRCD_QA_DEMO = "文章 [{n}](标题: 长城) 长城始建于春秋战国时期。\n\n问题: 长城始建于什么时期？\n答案: 春秋战国时期。"


@register_task("drcd_semantic-single", ability="semantic_single", task_type="QA", lang="zh", source="DRCD test",
               metric=QA_ZH, reference_key="drcd_semantic-single_qa",
               official=True, load=src.read_drcd, data_files=("drcd/DRCD_test.json",),
               note="Traditional Chinese kept (the reference converts to Simplified)")
def build_drcd_qa(items: list[src.QAItem], ctx: BuildContext) -> list[Record]:
    def make(n_items: int, gold: int, k: int) -> Record:
        target = ctx.rng.choice(items)
        pool = ctx.rng.sample(items, min(len(items), n_items + 5))
        docs = [d for d in pool if d.text != target.text][: n_items - 1]
        docs.insert(gold, target)
        body = _search_results_qa([f"文章 [{i}](标题: {d.title}) {d.text}" for i, d in enumerate(docs, 1)],
                                  DRCD_QA_DEMO, f"问题: {target.question}\n答案:", ctx.one_shot)
        return make_record(ctx, DRCD_QA_INSTRUCTION, body, list(target.answers), gold_index=gold, n_items=len(docs))

    return fit_concatenated(ctx, mean_length([d.text for d in items], "zh") + 15, 80, make)


WIKI_INSTRUCTION = ("You are given a query paragraph and several candidate paragraphs. Exactly one candidate "
                    "continues the query paragraph. Return the ID of that candidate paragraph.")
WIKI_DEMO = ("Query Paragraph: The bridge opened in 1932 after six years of construction .\n"
             "Candidate Paragraph 3C41AA: Penguins are flightless birds of the southern hemisphere .\n"
             "Candidate Paragraph 9F0B27: Traffic grew quickly , and a second deck was added in 1958 .\n"
             "Answer: 9F0B27.")


register_task("wikitext-103", ability="semantic_single", task_type="NLI+RET", lang="en", source="WikiText-2 test",
              metric=MetricSpec("exact_match", "en", (".",)),
              official=True, load=src.read_wikitext_topics, data_files=("wikitext-2/test.txt",),
              note="WikiText-2 test as in the reference code, but the tokenized v1 text (raw not in the data root)")(
    continuation(Prompt(WIKI_INSTRUCTION, "Candidate Paragraph {label}: {text}", "Answer:", demo=WIKI_DEMO,
                        header="Query Paragraph: {question}")))


# ---------------------------------------------------------------------------------------------- semantic multiple

HOTPOT_INSTRUCTION = "Answer the question from the paragraphs below. Some paragraphs may be irrelevant."
HOTPOT_DEMO = ("Paragraph 1: The Nile flows north through eleven countries into the Mediterranean Sea.\n"
               "Paragraph 2: Lake Victoria is the source of the White Nile.\n"
               "Question: Into which sea does the river that starts at Lake Victoria flow?\n"
               "Answer: the Mediterranean Sea.")


@register_task("hotpotqa", metric=QA_EN, ability="semantic_multiple", task_type="QA", lang="en",
               source="HotpotQA dev distractor (53-example excerpt)", official=True,
               rule="first_below", load=src.read_hotpotqa,
               data_files=("hotpotqa/hotpot_dev_distractor_v1.first53.json",))
def build_hotpotqa(items: list[src.HotpotItem], ctx: BuildContext) -> list[Record]:
    def maker(item: src.HotpotItem):
        def make() -> Record:
            lines = [f"Paragraph {i}: {text}" for i, (_t, text) in enumerate(item.paragraphs, 1)]
            body = "\n".join([*lines, f"Question: {item.question}", "Answer:"])
            return make_record(ctx, HOTPOT_INSTRUCTION, _with_demo(ctx, HOTPOT_DEMO, body), [item.answer])
        return make

    return fit_natural(ctx, [maker(it) for it in items])


# ---------------------------------------------------------------------------------------------- global (new tasks)

QMSUM_INSTRUCTION = "Read the meeting transcript and answer the query with a short summary in one paragraph."


@register_task("qmsum", ability="global", task_type="SUM", lang="en", source="QMSum test", official=False,
               metric=SUM_EN,
               rule="first_below", load=src.read_qmsum, data_files=("qmsum/test",),
               note="new M4LE-style task: query-based meeting summarization (whole meeting or relevant span)")
def build_qmsum(meetings: list[src.Meeting], ctx: BuildContext) -> list[Record]:
    def maker(m: src.Meeting):
        def make() -> Record:
            body = "Transcript:\n" + "\n".join(m.turns) + f"\n\nQuery: {m.query}\nSummary:"
            return make_record(ctx, QMSUM_INSTRUCTION, body, [m.summary], meeting=m.name)
        return make

    return fit_natural(ctx, [maker(m) for m in meetings])


VCSUM_INSTRUCTION = "阅读下面的会议记录片段，用一段话总结其中的讨论内容。"


@register_task("vcsum", ability="global", task_type="SUM", lang="zh", source="VCSum dev segments", official=False,
               metric=SUM_ZH,
               rule="first_below", load=src.read_vcsum, data_files=("vcsum/short_dev.txt",),
               note="new M4LE-style task: Chinese meeting-segment summarization")
def build_vcsum(meetings: list[src.Meeting], ctx: BuildContext) -> list[Record]:
    def maker(m: src.Meeting):
        def make() -> Record:
            body = "会议记录：\n" + "\n".join(m.turns) + "\n\n总结："
            return make_record(ctx, VCSUM_INSTRUCTION, body, [m.summary], segment=m.name)
        return make

    return fit_natural(ctx, [maker(m) for m in meetings])
