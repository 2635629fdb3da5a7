"""Adapters for the official M4LE news sources (classification, counting and summarization configs).

Files go under the data root as named below, in the format the source publishes:

============================  ==========================================  =====================================
config(s)                     file(s) under the data root                 format
============================  ==========================================  =====================================
mnds-news_explicit-single,    ``mnds/MN-DS-news-classification.csv``      MN-DS CSV (zenodo 7394851): one row
mnds-news_explicit-multiple,                                              per article, columns ``content`` and
mnds-news_semantic-multiple                                               ``category_level_1`` (17 classes) used
thucnews_explicit-single,     ``thucnews/<类别>/<n>.txt``                   THUCNews: a folder per class (14), one
thucnews_explicit-multiple,                                               UTF-8 text file per article (first
thucnews_semantic-multiple                                                line the title)
cnnnews                       ``cnn/stories/*.story``                     CNN stories: article lines, then
                                                                          ``@highlight`` blocks
news2016                      ``news2016zh/news2016zh_valid.json``        news2016zh JSON lines: ``news_id,
                                                                          keywords, title, desc, content, ...``
lcsts                         ``lcsts/PART_II.txt``                       LCSTS part II: ``<doc id=N>`` blocks of
                                                                          ``<human_label>``, ``<summary>``,
                                                                          ``<short_text>``; score-5 pairs kept
clts+                         ``clts/test.src``, ``clts/test.tgt``        CLTS: line-aligned article / summary
                                                                          (tokens separated by spaces)
ncls                          ``ncls/EN2ZHSUM_test.txt``                  NCLS EN2ZHSUM: ``<doc>`` blocks with
                                                                          ``<Article>``, ``<EN-REF-*>``,
                                                                          ``<ZH-REF-*>`` tag lines
cepsum                        ``cepsum/train.jsonl``                      CEPSUM JSON lines ``{source, targets}``
============================  ==========================================  =====================================

Prompts are kernelkit's own, in the reference's layout (labels, question, answer cue).
"""

from __future__ import annotations

import re
from pathlib import Path

from kernelkit.longctx.metrics import MetricSpec
from kernelkit.longctx.tasks.base import SUM_EN, SUM_ZH, register_task
from kernelkit.longctx.tasks.formats import iter_jsonl, need, read_csv
from kernelkit.longctx.tasks.patterns import (
    Item,
    Prompt,
    explicit_multiple,
    explicit_single,
    natural,
    semantic_count,
    semantic_single,
)

# ---------------------------------------------------------------------------------------------- MN-DS


def read_mnds(root: Path) -> list[Item]:
    """MN-DS articles (blank lines collapsed) labelled with their level-1 category."""
    rows = read_csv(root / "mnds" / "MN-DS-news-classification.csv", "MN-DS from zenodo.org/record/7394851",
                    ("content", "category_level_1"))
    out = []
    for r in rows:
        text = re.sub(r"\n{2,}", "\n", r["content"].strip())
        if text:
            out.append(Item(text.replace("\n", " "), [r["category_level_1"]], label=r["category_level_1"]))
    return out


def _mnds(name: str, ability: str, task_type: str, metric: MetricSpec):
    """Register an MN-DS config; the reference's key for it adds its task type (``..._cls+ret``)."""
    return register_task(name, ability=ability, task_type=task_type, lang="en", source="MN-DS news classification",
                         official=True, load=read_mnds, metric=metric, reference_key=f"{name}_{task_type.lower()}",
                         data_files=("mnds/MN-DS-news-classification.csv",))


_mnds("mnds-news_explicit-single", "explicit_single", "CLS+RET", MetricSpec("exact_match", "en"))(
    explicit_single(Prompt(
        "Below are news articles, each with an ID. Each belongs to one of 17 categories. At the end you are asked "
        "for the category of one article.",
        "Article {label}: {text}", "Question: What is the category of article {label}?\nAnswer:",
        demo="Article 3D9F01: The striker scored twice in the final minutes.\n"
             "Article 77AB2C: The central bank raised interest rates again.\n"
             "Question: What is the category of article 77AB2C?\nAnswer: economy, business and finance")))
_mnds("mnds-news_explicit-multiple", "explicit_multiple", "CLS+RET",
      MetricSpec("set_f1", "en", id_sep=",", id_stop="."))(
    explicit_multiple(Prompt(
        "Below are news articles, each with an ID. Each belongs to one of 17 categories. Return the IDs of all "
        "articles of the category asked at the end.",
        "Article {label}: {text}", "Question: Give the IDs of all articles about '{cls}'.\nAnswer:",
        demo="Article 3D9F01: The striker scored twice in the final minutes.\n"
             "Article 77AB2C: The central bank raised interest rates again.\n"
             "Article 12EE90: The team signed a new goalkeeper.\n"
             "Question: Give the IDs of all articles about 'sport'.\nAnswer: 3D9F01, 12EE90."), sep=", ", stop="."))
_mnds("mnds-news_semantic-multiple", "semantic_multiple", "CLS+CNT",
      MetricSpec("exact_match", "en", (".",), gold_stop="."))(
    semantic_count(Prompt(
        "Below are news articles. Each belongs to one of 17 categories. Count the articles of the category asked "
        "at the end.",
        "Article {label}: {text}", "Question: How many articles are about '{cls}'?\nAnswer:",
        demo="Article 1: The striker scored twice in the final minutes.\n"
             "Article 2: The central bank raised interest rates again.\n"
             "Question: How many articles are about 'sport'?\nAnswer: 1."), stop="."))


# ---------------------------------------------------------------------------------------------- THUCNews


def read_thucnews(root: Path, per_class: int = 100) -> list[Item]:
    """THUCNews articles (lines stripped and joined, ideographic spaces removed), the first ``per_class``
    files of each class folder in name order; articles of 20 characters or less are dropped."""
    folder = need(root / "thucnews", "THUCNews from thuctc.thunlp.org")
    out = []
    for cls_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for path in sorted(cls_dir.glob("*.txt"))[:per_class]:
            lines = path.read_text(encoding="utf-8").splitlines()
            text = " ".join(line.strip().replace("\u3000", "") for line in lines).strip()
            if len(text) > 20:
                out.append(Item(text, [cls_dir.name], label=cls_dir.name))
    return out


def _thuc(name: str, ability: str, task_type: str, metric: MetricSpec):
    """Register a THUCNews config; the reference's key for it adds its task type (``..._cls+ret``)."""
    return register_task(name, ability=ability, task_type=task_type, lang="zh", source="THUCNews", official=True,
                         load=read_thucnews, metric=metric, reference_key=f"{name}_{task_type.lower()}",
                         data_files=("thucnews",))

_THUC_CLASSES = "体育、娱乐、家居、彩票、房产、教育、时尚、时政、星座、游戏、社会、科技、股票、财经"

_thuc("thucnews_explicit-single", "explicit_single", "CLS+RET", MetricSpec("exact_match", "zh"))(
    explicit_single(Prompt(
        f"下面有多篇带编号的新闻，每篇属于以下类别之一：{_THUC_CLASSES}。最后会问其中一篇新闻的类别。",
        "新闻{label}：{text}", "问题：新闻{label}属于哪个类别？\n答案：",
        demo="新闻2B7C10：主队在加时赛中绝杀对手。\n新闻9E0A44：新楼盘本周开盘，均价下降。\n问题：新闻2B7C10属于哪个类别？\n答案：体育")))
_thuc("thucnews_explicit-multiple", "explicit_multiple", "CLS+RET",
      MetricSpec("set_f1", "zh", id_sep="，", id_stop="。"))(
    explicit_multiple(Prompt(
        f"下面有多篇带编号的新闻，每篇属于以下类别之一：{_THUC_CLASSES}。请列出指定类别的所有新闻编号。",
        "新闻{label}：{text}", "问题：哪些新闻属于{cls}类？\n答案：",
        demo="新闻2B7C10：主队在加时赛中绝杀对手。\n新闻9E0A44：新楼盘本周开盘，均价下降。\n新闻0C3D55：女排夺得冠军。\n"
             "问题：哪些新闻属于体育类？\n答案：2B7C10，0C3D55。"), sep="，", stop="。"))
_thuc("thucnews_semantic-multiple", "semantic_multiple", "CLS+CNT",
      MetricSpec("exact_match", "zh", ("。",), gold_stop="。"))(
    semantic_count(Prompt(
        f"下面有多篇新闻，每篇属于以下类别之一：{_THUC_CLASSES}。请数出指定类别的新闻篇数。",
        "新闻{label}：{text}", "问题：有几篇新闻属于{cls}类？\n答案：",
        demo="新闻1：主队在加时赛中绝杀对手。\n新闻2：新楼盘本周开盘，均价下降。\n"
             "问题：有几篇新闻属于体育类？\n答案：1。"), stop="。"))


# ---------------------------------------------------------------------------------------------- CNN stories


def parse_story(text: str) -> tuple[str, str]:
    """(article, highlights) of a CNN ``.story`` file; lines missing an end mark get `` .`` (as the
    standard CNN/DailyMail preprocessing does)."""
    article: list[str] = []
    highlights: list[str] = []
    in_highlight = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("@highlight"):
            in_highlight = True
            continue
        if line[-1] not in ".!?'`\"\u2019\u201d)":
            line += " ."
        (highlights if in_highlight else article).append(line)
    return " ".join(article), " ".join(highlights)


def read_cnn(root: Path) -> list[Item]:
    """CNN stories with more than 30 words and a highlight."""
    folder = need(root / "cnn" / "stories", "CNN stories (cnn_stories.tgz of CNN/DailyMail)")
    out = []
    for path in sorted(folder.glob("*.story")):
        article, highlight = parse_story(path.read_text(encoding="utf-8"))
        if highlight and len(article.split()) > 30:
            out.append(Item(article, [highlight]))
    return out


register_task("cnnnews", metric=SUM_EN, ability="explicit_single", task_type="SUM+RET", lang="en", source="CNN stories",
              official=True, load=read_cnn, data_files=("cnn/stories",))(
    explicit_single(Prompt(
        "Below are news articles, each with an ID. At the end, write the highlights of the article asked for.",
        "Article {label}: {text}", "Question: Write the highlights of article {label}.\nHighlights:",
        demo="Article 5E21A0: Heavy snow closed the main highway for two days before crews cleared it .\n"
             "Question: Write the highlights of article 5E21A0.\nHighlights: Snow closed the highway for two days .")))


# ---------------------------------------------------------------------------------------------- news2016zh


def read_news2016(root: Path) -> list[Item]:
    """news2016zh validation news whose keywords and title do not occur verbatim in the content,
    with 200-800 characters (the reference's filter); key = keywords, answer = title."""
    out = []
    for r in iter_jsonl(root / "news2016zh" / "news2016zh_valid.json", "news2016zh (brightmart/nlp_chinese_corpus)"):
        kw, title, content = r["keywords"], r["title"], r["content"]
        if kw not in title and kw not in content and title not in content and 200 < len(content) < 800:
            out.append(Item(content, [title], key=kw))
    return out


register_task("news2016", ability="semantic_single", task_type="SUM+RET", lang="zh", source="news2016zh valid",
              metric=MetricSpec("rouge", "zh", ("\n",), quoted=True),
              official=True, load=read_news2016, data_files=("news2016zh/news2016zh_valid.json",))(
    semantic_single(Prompt(
        "下面有若干段新闻。请根据关键词找出最相关的一段新闻，并为它写一个约三十字的标题。",
        "新闻{label}: {text}", "关键词: {key}\n答案:",
        demo="新闻1: 本市今日起调整公交线路。\n新闻2: 球队主场两球取胜。\n关键词: 足球，胜利\n"
             "答案: 最相关的新闻是2。标题是\"球队主场取胜\"。",
        answer="最相关的新闻是{label}。标题是\"{answer}\"。")))


# ---------------------------------------------------------------------------------------------- LCSTS


_LCSTS_DOC = re.compile(r"<doc[^>]*>(.*?)</doc>", re.S)


def _tag(block: str, name: str) -> str:
    found = re.search(rf"<{name}>(.*?)</{name}>", block, re.S)
    return found.group(1).strip().strip('"').strip() if found else ""


def read_lcsts(root: Path) -> list[Item]:
    """LCSTS part II pairs whose human relevance label is 5."""
    path = need(root / "lcsts" / "PART_II.txt", "LCSTS (RUCAIBox/Chinese-Generation lcsts.tgz)")
    out = []
    for block in _LCSTS_DOC.findall(path.read_text(encoding="utf-8")):
        summary, text = _tag(block, "summary"), _tag(block, "short_text")
        if _tag(block, "human_label") == "5" and summary and text:
            out.append(Item(text, [summary]))
    return out


register_task("lcsts", ability="explicit_single", task_type="SUM+RET", lang="zh", source="LCSTS part II (score 5)",
              metric=SUM_ZH,
              official=True, load=read_lcsts, data_files=("lcsts/PART_II.txt",))(
    explicit_single(Prompt(
        "以下是多则带编号的微博段落。最后请为指定的段落写一个摘要。",
        "段落{label}: {text}", "问题: 请为段落{label}写一个摘要。\n摘要:",
        demo="段落A1B2C3: 今年春运铁路客流预计增长一成，多条线路加开临客。\n"
             "问题: 请为段落A1B2C3写一个摘要。\n摘要: 春运铁路客流预计增长")))


# ---------------------------------------------------------------------------------------------- CLTS


def read_clts(root: Path) -> list[Item]:
    """CLTS test articles and summaries, whitespace removed (the files are space-tokenized)."""
    src = need(root / "clts" / "test.src", "CLTS (lxj5957/CLTS-Dataset)").read_text(encoding="utf-8").splitlines()
    tgt = need(root / "clts" / "test.tgt", "CLTS (lxj5957/CLTS-Dataset)").read_text(encoding="utf-8").splitlines()
    if len(src) != len(tgt):
        raise ValueError(f"{root / 'clts'}: test.src has {len(src)} lines but test.tgt has {len(tgt)}")
    return [Item("".join(s.split()), ["".join(t.split())]) for s, t in zip(src, tgt, strict=True) if s.strip()]


register_task("clts+", ability="global", task_type="SUM", lang="zh", source="CLTS test", official=True,
              metric=MetricSpec("rouge", "zh", ("\n", "新闻")),
              rule="first_below", load=read_clts, data_files=("clts/test.src", "clts/test.tgt"))(
    natural(Prompt("请为下面的新闻写一个摘要。", "新闻: {text}", "摘要:",
                   demo="新闻: 气象台发布暴雨预警，提醒市民减少外出。\n摘要: 气象台发布暴雨预警")))


# ---------------------------------------------------------------------------------------------- NCLS


def read_ncls(root: Path) -> list[Item]:
    """NCLS EN2ZHSUM test: English article, Chinese reference summary (a human-corrected one when given)."""
    path = need(root / "ncls" / "EN2ZHSUM_test.txt", "NCLS-Data EN2ZHSUM (ZNLP/NCLS-Corpora)")
    out: list[Item] = []
    fields: dict[str, str] = {}
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("</doc"):
            if fields.get("article") and fields.get("zh"):
                out.append(Item(fields["article"], [fields["zh"]]))
            fields, pending = {}, ""
        elif line.startswith("<Article"):
            pending = "article"
        elif line.startswith("<ZH-REF"):
            pending = "zh" if ("zh" not in fields or "human-corrected" in line.lower()) else ""
        elif line.startswith("<"):
            pending = ""
        elif pending and line:
            fields[pending] = line
            pending = ""
    return out


register_task("ncls", ability="explicit_single", task_type="SUM+RET", lang="mixed", source="NCLS EN2ZHSUM test",
              metric=SUM_ZH,
              official=True, load=read_ncls, data_files=("ncls/EN2ZHSUM_test.txt",),
              note="English articles, Chinese summaries (length: English words + Chinese characters)")(
    explicit_single(Prompt(
        "Below are English news articles, each with an ID. At the end, write a Chinese summary of the article asked "
        "for.", "Article {label}: {text}", "Question: Write a Chinese summary of article {label}.\nSummary:",
        demo="Article 0F1E2D: The city opened a new bridge over the river on Monday .\n"
             "Question: Write a Chinese summary of article 0F1E2D.\nSummary: 该市周一开通一座新桥。")))


# ---------------------------------------------------------------------------------------------- CEPSUM


def read_cepsum(root: Path) -> list[Item]:
    """CEPSUM product descriptions (``source``, 60 characters or more) with their reference summaries
    (``targets``: one string or a list)."""
    out = []
    for r in iter_jsonl(root / "cepsum" / "train.jsonl", "CEPSUM (JD product summarization)"):
        targets = r["targets"] if isinstance(r["targets"], list) else [r["targets"]]
        if len(r["source"]) >= 60 and targets:
            out.append(Item(r["source"], [str(t) for t in targets]))
    return out


register_task("cepsum", ability="explicit_single", task_type="SUM+RET", lang="zh", source="CEPSUM product descriptions",
              metric=SUM_ZH,
              official=True, load=read_cepsum, data_files=("cepsum/train.jsonl",))(
    explicit_single(Prompt(
        "以下是多个带编号的产品描述。最后请为指定的产品写一个摘要。",
        "产品{label}: {text}", "问题: 请为产品{label}写一个摘要。\n摘要:",
        demo="产品7C8D9E: 纯棉面料，透气舒适，适合夏季日常穿着，多色可选。\n"
             "问题: 请为产品7C8D9E写一个摘要。\n摘要: 纯棉透气，夏季舒适")))
