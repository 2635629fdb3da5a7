"""Adapters for the official M4LE question-answering and topic-retrieval sources.

Files go under the data root as named below, in the format the source publishes:

===========  ====================================================  ================================================
config       file(s) under the data root                           format
===========  ====================================================  ================================================
newsqa       ``newsqa/combined-newsqa-data-v1.json``               NewsQA combined JSON: ``{"data": [{storyId,
                                                                   text, questions: [{q, consensus: {s, e} or
                                                                   {badQuestion|noAnswer}}]}]}``; the answer is
                                                                   ``text[s:e]``
duorc        ``duorc/ParaphraseRC_test.json``                      DuoRC JSON list ``[{id, title, plot, qa:
                                                                   [{question, answers, no_answer}]}]``
dureader     ``dureader/devset/{search,zhidao}.dev.json``          DuReader 2.0 JSON lines ``{question_id,
                                                                   question_type, question, documents: [{title,
                                                                   paragraphs}], answers}``
triviaqa     ``triviaqa/qa/{web,wikipedia}-dev.json`` and          TriviaQA RC: ``{"Data": [{Question, Answer:
             ``triviaqa/evidence/{web,wikipedia}/<Filename>``      {Value, NormalizedValue, Aliases,
                                                                   NormalizedAliases}, SearchResults|EntityPages:
                                                                   [{Filename}]}]}``, evidence as text files
wow          ``wow/data.json``                                     Wizard of Wikipedia JSON list of dialogues
                                                                   ``[{chosen_topic, chosen_topic_passage:
                                                                   [sentences], ...}]``
===========  ====================================================  ================================================
"""

from __future__ import annotations

from pathlib import Path

from kernelkit.longctx.metrics import MetricSpec
from kernelkit.longctx.tasks.base import QA_EN, QA_ZH, register_task
from kernelkit.longctx.tasks.formats import iter_jsonl, need, read_json
from kernelkit.longctx.tasks.patterns import Item, Prompt, explicit_single, natural, semantic_single

# ---------------------------------------------------------------------------------------------- NewsQA


def read_newsqa(root: Path) -> list[Item]:
    """One item per story with its first question that has a consensus answer span."""
    data = read_json(root / "newsqa" / "combined-newsqa-data-v1.json", "NewsQA (Maluuba/newsqa)")["data"]
    out = []
    for story in data:
        text = story["text"]
        for q in story["questions"]:
            span = q.get("consensus", {})
            if "s" in span and "e" in span:
                out.append(Item(text.replace("\n", " "), [text[span["s"]:span["e"]].strip()], question=q["q"]))
                break
    return out


register_task("newsqa", ability="explicit_single", task_type="QA+RET", lang="en", source="NewsQA", official=True,
              metric=QA_EN,
              load=read_newsqa, data_files=("newsqa/combined-newsqa-data-v1.json",))(
    explicit_single(Prompt(
        "Below are numbered news articles. Answer the question about the article it names.",
        "Article {label}: {text}", "Question: Based on article {label}, {question}\nAnswer:",
        demo="Article 1: The museum reopened on Friday after a two-year renovation .\n"
             "Question: Based on article 1, how long was the museum closed?\nAnswer: two years."), labels="ordinal"))


# ---------------------------------------------------------------------------------------------- DuoRC


def read_duorc(root: Path) -> list[Item]:
    """ParaphraseRC test plots with their first answerable question (key = the movie title)."""
    out = []
    for movie in read_json(root / "duorc" / "ParaphraseRC_test.json", "DuoRC (duorc/duorc dataset/)"):
        for q in movie["qa"]:
            if not q.get("no_answer") and q.get("answers"):
                out.append(Item(movie["plot"].replace("\n", " "), list(q["answers"]), key=movie["title"],
                                question=q["question"]))
                break
    return out


register_task("duorc", ability="semantic_single", task_type="QA", lang="en", source="DuoRC ParaphraseRC test",
              metric=QA_EN,
              official=True, load=read_duorc, data_files=("duorc/ParaphraseRC_test.json",))(
    semantic_single(Prompt(
        "Answer the question using only the movie plots below (most of them are irrelevant).",
        "Plot {label}: {text}", "Question: {question}\nAnswer:",
        demo="Plot 1: Two old friends hike to a hot spring in the mountains .\nQuestion: Where do the friends hike to?"
             "\nAnswer: a hot spring.")))


# ---------------------------------------------------------------------------------------------- DuReader


def read_dureader(root: Path) -> list[Item]:
    """DuReader dev questions of type DESCRIPTION or ENTITY with answers; the text lists the question's
    own retrieved documents."""
    out = []
    for name in ("search", "zhidao"):
        for r in iter_jsonl(root / "dureader" / "devset" / f"{name}.dev.json", "DuReader 2.0 dev (baidu/DuReader)"):
            if r["question_type"] in ("DESCRIPTION", "ENTITY") and r.get("answers"):
                docs = "\n".join(f"文章 [{i}](标题：{d['title']}) {''.join(d['paragraphs'])}"
                                 for i, d in enumerate(r["documents"], 1))
                out.append(Item(docs, list(r["answers"]), question=r["question"]))
    return out


register_task("dureader", ability="semantic_single", task_type="QA", lang="zh", source="DuReader dev (search+zhidao)",
              metric=QA_ZH,
              official=True, rule="first_below", load=read_dureader,
              data_files=("dureader/devset/search.dev.json", "dureader/devset/zhidao.dev.json"))(
    natural(Prompt("请仅根据下面提供的文章回答问题（部分文章可能与问题无关）。", "{text}", "问题：{question}\n答案：",
                   demo="文章 [1](标题：长城) 长城始建于春秋战国时期。\n"
                        "问题：长城始建于什么时期\n答案：春秋战国时期。")))


# ---------------------------------------------------------------------------------------------- TriviaQA


def read_triviaqa(root: Path) -> list[Item]:
    """TriviaQA RC dev (web, then Wikipedia) with the question's first evidence document (its first search
    result, else its first entity page; questions whose file is absent are skipped); answers are the value,
    normalized value and all aliases."""
    out = []
    for name in ("web", "wikipedia"):
        data = read_json(root / "triviaqa" / "qa" / f"{name}-dev.json", "TriviaQA RC (triviaqa-rc.tar.gz)")["Data"]
        for row in data:
            if row.get("SearchResults"):
                path = root / "triviaqa" / "evidence" / "web" / row["SearchResults"][0]["Filename"]
            elif row.get("EntityPages"):
                path = root / "triviaqa" / "evidence" / "wikipedia" / row["EntityPages"][0]["Filename"]
            else:
                continue
            if not path.exists():
                continue
            a = row["Answer"]
            answers = list(dict.fromkeys([a["Value"], a["NormalizedValue"], *a["Aliases"], *a["NormalizedAliases"]]))
            out.append(Item(path.read_text(encoding="utf-8").strip(), answers, question=row["Question"]))
    return out


register_task("triviaqa", ability="global", task_type="QA", lang="en", source="TriviaQA RC dev, first evidence doc",
              metric=QA_EN,
              official=True, rule="first_below", load=read_triviaqa,
              data_files=("triviaqa/qa/web-dev.json", "triviaqa/qa/wikipedia-dev.json"))(
    natural(Prompt("Answer the question based on the given context.", "Context: {text}",
                   "Question: {question}\nAnswer:",
                   demo="Context: Lake Baikal is in Siberia, Russia.\nQuestion: In which country is Lake Baikal?\n"
                        "Answer: Russia.")))


# ---------------------------------------------------------------------------------------------- Wizard of Wikipedia


def read_wow(root: Path, words: int = 110) -> list[Item]:
    """One item per distinct chosen topic: the first ``words`` words of its passage; the topic phrase is
    shown with its ID (``key``) and is the answer when that ID is asked for."""
    dialogues = read_json(need(root / "wow" / "data.json", "Wizard of Wikipedia (parl.ai wizard_of_wikipedia.tgz)"),
                          "Wizard of Wikipedia")
    topics: dict[str, str] = {}
    for d in dialogues:
        topics.setdefault(d["chosen_topic"], " ".join(" ".join(d["chosen_topic_passage"]).split()[:words]))
    return [Item(text, [topic], key=topic) for topic, text in topics.items() if text]


register_task("wow", ability="explicit_single", task_type="RET", lang="en", source="Wizard of Wikipedia topics",
              metric=MetricSpec("acc", "en", (",", "\n")),
              official=True, load=read_wow, data_files=("wow/data.json",))(
    explicit_single(Prompt(
        "Below are pairs of a topic phrase and its article, each with an ID. Remember the phrases: at the end you "
        "are asked for the phrase of one ID.",
        "Phrase {label} is {key}, the article is as follows:\n{text}", "Question: What is phrase {label}?\nAnswer:",
        demo="Phrase 1A2B3C is Jazz, the article is as follows:\nJazz is a music genre that began in New Orleans .\n"
             "Phrase 4D5E6F is Tea, the article is as follows:\nTea is a drink made from leaves .\n"
             "Question: What is phrase 1A2B3C?\nAnswer: Jazz")))
