"""Adapters of the official M4LE sources that are not in the data root, on small files generated here in
each source's published format. Every config builds instances that satisfy its bucket rule, and the gold
answer points at the right item (generated items carry a marker shared by the item and its answer)."""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from pathlib import Path

import pytest

from kernelkit.longctx.tasks import TASKS, build_task
from tests.longctx.tasks.test_tasks import HEX6, check_instances

EN = ["river", "harbour", "bridge", "library", "festival", "market", "railway", "castle", "garden", "mine", "council",
      "school", "report", "season", "engine", "village", "storm", "valley", "people", "city", "water", "light"]
ZH = list("天地人和山水风雨春秋日月城市学校新闻经济体育科技文化社会历史音乐电影生活发展问题时间国家")


def en_words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(EN) for _ in range(n))


def zh_chars(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ZH) for _ in range(n))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")


def build(name: str, root: Path, buckets=(1000,), n: int = 2):
    recs = build_task(name, root, buckets=buckets, n=n, seed=1)
    check_instances(name, recs, buckets)
    assert {r.length_bucket for r in recs} == set(buckets), name
    assert recs == build_task(name, root, buckets=buckets, n=n, seed=1)  # reproducible
    return recs


def labelled(rec, pattern: str) -> dict[str, str]:
    """``{label: item text}`` of the items of the context (the demonstration left out)."""
    body = rec.input.split("\n\n", 1)[1] if "\n\n" in rec.input else rec.input
    return {m.group(1): m.group(2) for m in re.finditer(pattern, body)}


# ---------------------------------------------------------------------------------------------- news sources

CATEGORIES = ("sport", "economy, business and finance", "science and technology")


@pytest.fixture(scope="module")
def news_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("news")
    rng = random.Random(0)
    # MN-DS CSV (zenodo 7394851): a row per article
    path = root / "mnds" / "MN-DS-news-classification.csv"
    path.parent.mkdir(parents=True)
    header = ["data_id", "id", "date", "source", "title", "content", "author", "url", "published", "published_utc",
              "collection_utc", "category_level_1", "category_level_2"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i in range(90):
            cat = CATEGORIES[i % 3]
            content = f"cls{i % 3} {en_words(rng, 40)}\n\n{en_words(rng, 30)}"
            w.writerow([i, f"x{i}", "2019-01-01", "src", f"title {i}", content, "a", "u", "p", 0, 0, cat, "sub"])
    # THUCNews: a folder per class, a text file per article (title line, then the body)
    for c, cls in enumerate(("体育", "财经", "科技")):
        (root / "thucnews" / cls).mkdir(parents=True)
        for i in range(30):
            text = f"标题{zh_chars(rng, 8)}\n\u3000\u3000类{c}{zh_chars(rng, 70)}\n\u3000\u3000{zh_chars(rng, 40)}\n"
            (root / "thucnews" / cls / f"{c * 1000 + i}.txt").write_text(text, encoding="utf-8")
    # CNN stories: article lines, then @highlight blocks
    for i in range(30):
        story = (f"story{i} {en_words(rng, 30)}\n\n{en_words(rng, 25)}.\n\n@highlight\n\nstory{i} {en_words(rng, 6)}"
                 f"\n\n@highlight\n\n{en_words(rng, 5)}\n")
        (root / "cnn" / "stories").mkdir(parents=True, exist_ok=True)
        (root / "cnn" / "stories" / f"{i:040x}.story").write_text(story, encoding="utf-8")
    # news2016zh: JSON lines
    write_jsonl(root / "news2016zh" / "news2016zh_valid.json",
                [{"news_id": str(i), "keywords": f"关键词{i}", "title": f"标题{i}{zh_chars(rng, 10)}",
                  "desc": "", "source": "来源", "time": "2016", "content": f"内容{i}" + zh_chars(rng, 300 + i)}
                 for i in range(30)] + [{"news_id": "short", "keywords": "短", "title": "短", "desc": "",
                                         "source": "s", "time": "t", "content": "太短"}])
    # LCSTS part II: <doc> blocks; only human_label 5 is kept
    docs = [f"<doc id={i}>\n    <human_label>{5 if i % 4 else 3}</human_label>\n    <summary>\n        段{i}"
            f"{zh_chars(rng, 12)}\n    </summary>\n    <short_text>\n        段{i}{zh_chars(rng, 100)}\n"
            "    </short_text>\n</doc>" for i in range(60)]
    (root / "lcsts").mkdir()
    (root / "lcsts" / "PART_II.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    # CLTS: line-aligned, space-tokenized article / summary files
    (root / "clts").mkdir()
    sizes = [300, 500, 700, 1300, 1600]
    (root / "clts" / "test.src").write_text("\n".join(" ".join(zh_chars(rng, s)) for s in sizes) + "\n", "utf-8")
    (root / "clts" / "test.tgt").write_text("\n".join(" ".join(zh_chars(rng, 30)) for _ in sizes) + "\n", "utf-8")
    # NCLS EN2ZHSUM: tagged blocks, the tag line followed by its text
    blocks = [f"<doc id={i}>\n<Article>\narticle{i} {en_words(rng, 70)}\n</Article>\n<EN-REF-1>\n{en_words(rng, 10)}"
              f"\n</EN-REF-1>\n<ZH-REF-1>\n文{i}{zh_chars(rng, 20)}\n</ZH-REF-1>\n</doc>" for i in range(30)]
    (root / "ncls").mkdir()
    (root / "ncls" / "EN2ZHSUM_test.txt").write_text("\n".join(blocks) + "\n", encoding="utf-8")
    # CEPSUM: JSON lines {source, targets}
    write_jsonl(root / "cepsum" / "train.jsonl",
                [{"source": f"品{i}" + zh_chars(rng, 90), "targets": [f"品{i}" + zh_chars(rng, 15), zh_chars(rng, 12)]}
                 for i in range(40)] + [{"source": "太短", "targets": ["短"]}])
    return root


def test_mnds_configs(news_root):
    es = build("mnds-news_explicit-single", news_root)
    for rec in es:
        items = labelled(rec, r"Article ([0-9A-F]{6}): (cls\d)")
        label = re.search(r"category of article ([0-9A-F]{6})\?\nAnswer:$", rec.input).group(1)
        assert rec.answers == [CATEGORIES[int(items[label][-1])]]
    for rec in build("mnds-news_explicit-multiple", news_root):
        cls = CATEGORIES.index(re.search(r"about '(.*)'\.\nAnswer:$", rec.input).group(1))
        items = labelled(rec, r"Article ([0-9A-F]{6}): (cls\d)")
        assert rec.answers[0].endswith(".") and all(HEX6.match(i) for i in rec.answers[0][:-1].split(", "))
        assert set(rec.answers[0][:-1].split(", ")) == {i for i, t in items.items() if t == f"cls{cls}"}
    for rec in build("mnds-news_semantic-multiple", news_root, n=4):
        cls = CATEGORIES.index(re.search(r"about '(.*)'\?\nAnswer:$", rec.input).group(1))
        items = labelled(rec, r"Article (\d+): (cls\d)")
        assert rec.answers == [f"{sum(t == f'cls{cls}' for t in items.values())}."]


def test_thucnews_configs(news_root):
    for rec in build("thucnews_explicit-single", news_root):
        label = re.findall(r"新闻([0-9A-F]{6})属于哪个类别", rec.input)[-1]
        items = labelled(rec, r"新闻([0-9A-F]{6})：标题\S* 类(\d)")
        assert rec.answers == [("体育", "财经", "科技")[int(items[label])]]
    for rec in build("thucnews_explicit-multiple", news_root):
        cls = ("体育", "财经", "科技").index(re.findall(r"哪些新闻属于(.*)类", rec.input)[-1])
        items = labelled(rec, r"新闻([0-9A-F]{6})：标题\S* 类(\d)")
        assert set(rec.answers[0].rstrip("。").split("，")) == {i for i, c in items.items() if c == str(cls)}
    for rec in build("thucnews_semantic-multiple", news_root, n=3):
        cls = ("体育", "财经", "科技").index(re.findall(r"有几篇新闻属于(.*)类", rec.input)[-1])
        count = len(re.findall(r"新闻\d+：标题\S* 类" + str(cls), rec.input.split("\n\n", 1)[1]))
        assert rec.answers == [f"{count}。"]


@pytest.mark.parametrize(("name", "item", "question", "marker"), [
    ("cnnnews", r"Article ([0-9A-F]{6}): (story\d+)", r"highlights of article ([0-9A-F]{6})", r"story\d+"),
    ("lcsts", r"段落([0-9A-F]{6}): (段\d+)", r"请为段落([0-9A-F]{6})写", r"段\d+"),
    ("ncls", r"Article ([0-9A-F]{6}): (article\d+)", r"summary of article ([0-9A-F]{6})", None),
    ("cepsum", r"产品([0-9A-F]{6}): (品\d+)", r"请为产品([0-9A-F]{6})写", r"品\d+"),
])
def test_explicit_single_summaries(news_root, name, item, question, marker):
    for rec in build(name, news_root):
        items = labelled(rec, item)
        gold = items[re.findall(question, rec.input)[-1]]
        assert list(items).index(re.findall(question, rec.input)[-1]) == rec.extras["gold_index"]
        if marker:
            assert re.match(marker, rec.answers[0]).group(0) == gold
    if name == "ncls":  # English article, Chinese summary: the length adds words and characters
        assert TASKS.get("ncls").lang == "mixed"
    if name == "lcsts":  # human label 3 filtered out
        assert all(int(m) % 4 for m in re.findall(r"段落[0-9A-F]{6}: 段(\d+)", rec.input))


def test_news2016_and_clts(news_root):
    for rec in build("news2016", news_root):
        i = re.search(r"关键词: 关键词(\d+)\n答案:$", rec.input).group(1)
        k = rec.extras["gold_index"] + 1
        assert rec.answers[0].startswith(f'最相关的新闻是{k}。标题是"标题{i}')
        assert re.search(rf"新闻{k}: 内容{i}\D", rec.input)
    recs = build("clts+", news_root, buckets=(1000, 2000), n=5)
    assert sorted(r.length_bucket for r in recs) == [1000, 1000, 1000, 2000, 2000]
    assert all(" " not in r.answers[0] for r in recs)


# ---------------------------------------------------------------------------------------------- QA sources


@pytest.fixture(scope="module")
def qa_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("qa")
    rng = random.Random(1)
    stories = []
    for i in range(30):
        text = f"story{i} {en_words(rng, 40)} answer{i} {en_words(rng, 40)}"
        s = text.index(f"answer{i}")
        stories.append({"storyId": f"./cnn/stories/{i:x}.story", "text": text, "type": "train",
                        "questions": [{"q": "unanswerable?", "consensus": {"noAnswer": True}},
                                      {"q": f"what about story{i}?", "consensus": {"s": s, "e": s + len(f"answer{i}")},
                                       "answers": [{"sourcerAnswers": [{"s": s, "e": s + 7}]}], "isAnswerAbsent": 0,
                                       "isQuestionBad": 0, "validatedAnswers": [{"s": s, "e": s + 7, "count": 2}]}]})
    write_json(root / "newsqa" / "combined-newsqa-data-v1.json", {"version": "1", "data": stories})
    write_json(root / "duorc" / "ParaphraseRC_test.json",
                [{"id": f"m{i}", "title": f"Movie {i}", "plot": f"plot{i} {en_words(rng, 90)}",
                  "qa": [{"question": "none?", "answers": [], "no_answer": True, "id": "a"},
                         {"question": f"what happens in movie {i}?", "answers": [f"event{i}"], "no_answer": False,
                          "id": "b"}]} for i in range(30)])
    for name, n in (("search", 4), ("zhidao", 4)):
        write_jsonl(root / "dureader" / "devset" / f"{name}.dev.json",
                    [{"question_id": i, "question_type": ("DESCRIPTION", "ENTITY", "YES_NO")[i % 3],
                      "question": f"问题{i}", "answers": [f"答{i}"], "fact_or_opinion": "FACT",
                      "documents": [{"title": f"标题{j}", "paragraphs": [zh_chars(rng, 150 * (i + 1))],
                                     "is_selected": True} for j in range(2)]} for i in range(n)])
    for name, key, folder in (("web", "SearchResults", "web"), ("wikipedia", "EntityPages", "wikipedia")):
        rows = []
        for i in range(4):
            fname = f"{name}_{i}.txt"
            (root / "triviaqa" / "evidence" / folder).mkdir(parents=True, exist_ok=True)
            (root / "triviaqa" / "evidence" / folder / fname).write_text(en_words(rng, 300 * (i + 1)), "utf-8")
            rows.append({"Question": f"trivia {name} {i}?", "QuestionId": f"{name}{i}", "QuestionSource": "x",
                         "Answer": {"Value": f"Value{i}", "NormalizedValue": f"value{i}", "Aliases": [f"Alias{i}"],
                                    "NormalizedAliases": [f"alias{i}"], "Type": "WikipediaEntity"},
                         key: [{"Filename": fname, "Title": "t"}]})
        rows.append({"Question": "no evidence?", "Answer": rows[0]["Answer"], key: []})
        write_json(root / "triviaqa" / "qa" / f"{name}-dev.json", {"Data": rows, "Domain": name, "Split": "dev"})
    write_json(root / "wow" / "data.json",
               [{"chosen_topic": f"Topic {i // 2}", "persona": "p", "wizard_eval": 5, "dialog": [],
                 "chosen_topic_passage": [f"passage{i // 2} {en_words(rng, 60)}", en_words(rng, 80)]}
                for i in range(60)])
    return root


def test_newsqa_duorc_wow(qa_root):
    for rec in build("newsqa", qa_root):
        k = int(re.search(r"Based on article (\d+), what about story(\d+)\?", rec.input).group(1))
        assert k == rec.extras["gold_index"] + 1
        assert labelled(rec, r"Article (\d+): (story\d+)")[str(k)] == "story" + rec.answers[0].removeprefix("answer")
    for rec in build("duorc", qa_root):
        i = re.search(r"what happens in movie (\d+)\?", rec.input).group(1)
        assert rec.answers == [f"event{i}"]
        assert labelled(rec, r"Plot (\d+): (plot\d+)")[str(rec.extras["gold_index"] + 1)] == f"plot{i}"
    for rec in build("wow", qa_root):
        label = re.findall(r"What is phrase ([0-9A-F]{6})\?", rec.input)[-1]
        shown = labelled(rec, r"Phrase ([0-9A-F]{6}) is (Topic \d+), the article is as follows:\n")[label]
        text = labelled(rec, r"Phrase ([0-9A-F]{6}) is Topic \d+, the article is as follows:\n(passage\d+)")[label]
        assert rec.answers == [shown] == ["Topic " + text.removeprefix("passage")]
        assert all(len(p.split()) <= 110 for p in re.findall(r"follows:\n(.*)", rec.input.split("\n\n", 1)[1]))


def test_dureader_and_triviaqa_natural_lengths(qa_root):
    recs = build("dureader", qa_root, buckets=(1000, 2000), n=3)
    assert all(re.search(r"问题：问题(\d+)\n答案：$", r.input).group(1) == r.answers[0][1:] for r in recs)
    assert not any("问题2\n" in r.input or "问题5\n" in r.input for r in recs)  # YES_NO questions dropped
    recs = build("triviaqa", qa_root, buckets=(1000, 2000), n=4)
    for r in recs:
        kind, i = re.search(r"Question: trivia (\w+) (\d+)\?", r.input).groups()
        assert r.answers == [f"Value{i}", f"value{i}", f"Alias{i}", f"alias{i}"]


# ---------------------------------------------------------------------------------------------- long documents


@pytest.fixture(scope="module")
def long_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("long")
    rng = random.Random(2)
    for s, letter in enumerate("agy"):
        folder = root / "bigpatent" / "test" / letter
        folder.mkdir(parents=True)
        rows = [{"publication_number": f"US{s}{i}", "abstract": f"abstract sec{letter} {en_words(rng, 30)}",
                 "description": f"sec{letter} {en_words(rng, 250 * (i + 1))}"} for i in range(5)]
        with gzip.open(folder / ("part0.gz" if letter != "g" else "0"), "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    rows = []
    for b in range(2):
        for p in range(25):
            rows.append({"bid": b, "book_id": f"book{b}.chapter1", "is_aggregate": False, "source": "s",
                         "text": [f"b{b}p{p} {en_words(rng, 40)}", en_words(rng, 20)], "summary": [f"s{b}p{p}"]})
    write_jsonl(root / "booksum" / "chapter_summary_aligned_train_split.jsonl.gathered", rows)
    path = root / "wikihow" / "wikihowAll.csv"
    path.parent.mkdir(parents=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["headline", "title", "text"])
        for i in range(30):
            w.writerow([f"\nhead{i} {en_words(rng, 5)}.,\nmore {i}.", f"How to Do Thing {i} Now{i % 3}",
                        f" how{i} {en_words(rng, 90)}"])
        w.writerow(["h", "How to Be Short", "too short"])
    for part in ("AA", "AB"):
        write_jsonl(root / "wiki_zh" / part / "wiki_00",
                    [{"id": f"{part}{i}", "url": "u", "title": f"条目{part}{i}",
                      "text": f"条目{part}{i}\n\n" + "\n".join(f"{part}{i}段{j}" + zh_chars(rng, 150)
                                                                 for j in range(4))}
                     for i in range(15)])
    return root


def test_bigpatent_configs(long_root):
    sections = {"a": "1", "g": "7", "y": "9"}
    recs = build("bigpatent_global_cls", long_root, buckets=(1000, 2000), n=3)
    for r in recs:
        assert r.answers == [sections[re.search(r"Description: sec(\w)", r.input).group(1)]]
    for r in build("bigpatent_global_sum", long_root, buckets=(1000, 2000), n=3):
        assert re.search(r"Description: sec(\w)", r.input).group(1) == r.answers[0].split()[1][3:]


def test_booksum_joins_consecutive_paragraphs(long_root):
    recs = build("booksum", long_root, buckets=(1000, 2000), n=2)
    for r in recs:
        paras = re.findall(r"b(\d)p(\d+) ", r.input)
        assert len({b for b, _ in paras}) == 1  # one book
        nums = [int(p) for _, p in paras]
        assert nums == list(range(nums[0], nums[0] + len(nums)))  # consecutive
        assert r.answers == [" ".join(f"s{paras[0][0]}p{p}" for p in nums)]


def test_wikihow_and_wiki2019zh(long_root):
    for r in build("wikihow", long_root):
        i = re.search(r'titled "How to Do Thing (\d+) Now"', r.input).group(1)
        assert r.answers[0].startswith(f"head{i} ") and "\n" not in r.answers[0] and ".," not in r.answers[0]
        assert labelled(r, r"Article (\d+): (how\d+)")[str(r.extras["gold_index"] + 1)] == f"how{i}"
    for r in build("wiki2019zh", long_root):
        query = re.search(r"主段落: (?:条目\w+\n)?(\w+?)段(\d)", r.input.split("\n\n", 1)[1])
        cands = labelled(r, r"候选段落([0-9A-F]{6}): (?:条目\w+\n)?(\w+?段\d)")
        assert cands[r.answers[0]] == f"{query.group(1)}段{int(query.group(2)) + 1}"


# ---------------------------------------------------------------------------------------------- translation


def _opus_doc(path: Path, sentences: list[str], zh: bool, headline: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    def s(sid, text):
        tokens = list(text) if zh else text.split()
        ws = "".join(f'<w id="w{sid}.{k}">{t}</w>' for k, t in enumerate(tokens, 1))
        return f'<s id="{sid}">{ws}</s>'
    head = f"<HEADLINE>{s('h1', headline)}</HEADLINE>" if headline else ""
    body = "".join(s(str(k), t) for k, t in enumerate(sentences, 1))
    data = f'<?xml version="1.0" encoding="utf-8"?>\n<document id="{path.stem}">{head}<p>{body}</p></document>\n'
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(data)
    else:
        path.write_text(data, encoding="utf-8")


@pytest.fixture(scope="module")
def tran_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tran")
    rng = random.Random(3)
    for lang in ("en", "zh-cn"):
        files = []
        for t in range(30):
            title = f"Talk title {t}" if lang == "en" else f"演讲标题{t}"
            texts = [f"t{t}s{k} " + en_words(rng, 14) if lang == "en" else f"演{t}段{k}" + zh_chars(rng, 18)
                     for k in range(12)]
            segs = "".join(f'<seekvideo id="{k * 1000}">{text}</seekvideo>' for k, text in enumerate(texts))
            files.append(f'<file id="{t}"><head><url>http://www.ted.com/talks/{t}</url><talkid>{t}</talkid>'
                         f"<title>{title}</title><description>d</description><transcription>{segs}</transcription>"
                         f"</head><content>c</content></file>")
        (root / "tedtalks").mkdir(exist_ok=True)
        (root / "tedtalks" / f"ted_{lang}-20160408.xml").write_text(
            f'<?xml version="1.0" encoding="UTF-8"?>\n<xml language="{lang}">{"".join(files)}</xml>\n', "utf-8")
    # News-Commentary (OPUS): alignment over documents that start with a headline
    groups = []
    for d in range(25):
        en = [f"nc{d}x{k} " + en_words(rng, 12) for k in range(8)]
        zh = [f"评{d}句{k}" + zh_chars(rng, 15) for k in range(8)]
        _opus_doc(root / "news-commentary" / "xml" / "en" / f"doc{d}.xml", en, False, headline=f"Headline {d} news")
        _opus_doc(root / "news-commentary" / "xml" / "zh" / f"doc{d}.xml", zh, True, headline=f"标题{d}")
        links = '<link xtargets="h1;h1"/>' + "".join(f'<link xtargets="{k};{k}"/>' for k in range(1, 9))
        groups.append(f'<linkGrp targType="s" fromDoc="en/doc{d}.xml.gz" toDoc="zh/doc{d}.xml.gz">{links}</linkGrp>')
    (root / "news-commentary" / "en-zh.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<cesAlign version="1.0">{"".join(groups)}</cesAlign>\n', "utf-8")
    # OpenSubtitles (OPUS): gzipped documents, one empty-side link per film
    groups = []
    for d in range(3):
        en = [f"os{d}l{k} " + en_words(rng, 7) for k in range(130)]
        zh = [f"字{d}行{k}" + zh_chars(rng, 6) for k in range(130)]
        _opus_doc(root / "open-subtitles" / "xml" / "en" / "1999" / str(d) / "1.xml.gz", en, False)
        _opus_doc(root / "open-subtitles" / "xml" / "zh_cn" / "1999" / str(d) / "2.xml.gz", zh, True)
        links = '<link xtargets="1;"/>' + "".join(f'<link xtargets="{k};{k}"/>' for k in range(2, 131))
        groups.append(f'<linkGrp targType="s" fromDoc="en/1999/{d}/1.xml.gz" toDoc="zh_cn/1999/{d}/2.xml.gz">'
                      f"{links}</linkGrp>")
    (root / "open-subtitles" / "en-zh_cn.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?>\n<cesAlign version="1.0">{"".join(groups)}</cesAlign>\n', "utf-8")
    return root


@pytest.mark.parametrize("name", ["tedtalks-en2zh", "tedtalks-zh2en", "news-commentary-en2zh", "news-commentary-zh2en"])
def test_translation_retrieval(tran_root, name):
    recs = build(name, tran_root, buckets=(1000, 2000), n=2)
    for r in recs:
        k = r.extras["gold_index"] + 1
        if name.startswith("tedtalks"):
            t = re.search(r"'Talk title (\d+)'|「演讲标题(\d+)」", r.input).group(1, 2)
            t = t[0] or t[1]
            prefix, marker = ("演讲", f"演{t}段0") if name.endswith("en2zh") else ("Talk ", f"t{t}s0 ")
        else:
            t = re.search(r"'Headline (\d+) news'|「标题(\d+)」", r.input).group(1, 2)
            t = t[0] or t[1]
            prefix, marker = ("段落", f"评{t}句0") if name.endswith("en2zh") else ("Paragraph ", f"nc{t}x0 ")
        assert r.answers[0].startswith(f"{prefix}{k}: {marker}")


@pytest.mark.parametrize("name", ["open-subtitles-en2zh", "open-subtitles-zh2en"])
def test_open_subtitles_stretches(tran_root, name):
    recs = build(name, tran_root, buckets=(1000, 2000), n=2)
    for r in recs:
        first = re.search(r"os(\d)l(\d+) |字(\d)行(\d+)", r.input)
        assert int(first.group(2) or first.group(4)) == 20  # the first 20 links are skipped, empty ones included
        assert ("字" in r.answers[0]) == name.endswith("en2zh")


def test_every_official_config_has_a_builder_and_a_metric():
    official = {n for n in TASKS.names() if TASKS.get(n).official}
    assert len(official) == 39
    assert {TASKS.get(n).metric.metric for n in official} == {"acc", "exact_match", "set_f1", "rouge", "bleu"}
