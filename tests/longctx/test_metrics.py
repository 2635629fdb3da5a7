"""M4LE metrics on hand-made cases whose values are worked out by hand below (scored by task name through the
task registry, and by metric spec)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from kernelkit.longctx import metrics as m
from kernelkit.longctx import tasks as t
from kernelkit.longctx.tasks.base import QA_ZH


def test_acc_is_substring_after_end_token_cut():
    assert t.score("nq-open", "Paris. It is big", ["paris"]) == 1.0
    assert t.score("nq-open", "The city.\nParis", ["Paris"]) == 0.0  # cut at "\n" then "."
    assert t.score("nq-open", "\nParis", ["Paris"]) == 0.0  # no strip before the first cut (reference)
    assert t.score("c3", "C. 校长关心同学们。其他", ["C. 校长关心同学们"]) == 1.0
    assert t.score("wow", "Jazz, a genre", ["jazz"]) == 1.0
    assert t.score("bigpatent_global_cls", "3: Chemistry", ["3"]) == 1.0
    assert t.score("bigpatent_global_cls", "Answer: 3", ["3"]) == 0.0


def test_exact_match_and_counting_gold_cut():
    assert t.score("wikitext-103", " 37B155. more", ["37B155"]) == 1.0
    assert t.score("wikitext-103", "ID 37B155.", ["37B155"]) == 0.0
    assert t.score("mnds-news_semantic-multiple", "3.", ["3."]) == 1.0
    assert t.score("thucnews_semantic-multiple", "4。", ["4。"]) == 1.0
    assert t.score("mnds-news_explicit-single", "Sports", ["sports"]) == 1.0


def test_set_f1_cases():
    assert t.score("marc", "A1B2C3, D4E5F6.", ["A1B2C3,D4E5F6."]) == 1.0
    assert t.score("marc", "A1B2C3,D4E5F6.", ["A1B2C3,FFFFFF."]) == pytest.approx(0.5)  # P = R = 1/2
    assert t.score("marc", "A1B2C3", ["A1B2C3,FFFFFF,EEEEEE."]) == pytest.approx(2 * 1 * (1 / 3) / (1 + 1 / 3))
    # online-shopping: the reference splits the gold "A，B。" without removing "。", so a perfect
    # answer scores only 1/2 -- reproduced as is.
    assert t.score("online-shopping", "A，B。", ["A，B。"]) == pytest.approx(0.5)
    assert t.score("online-shopping", "X。", ["A，B。"]) == 0.0
    assert m.set_f1([], ["a"]) == 0.0


def test_rouge_l_recall_english_summary_level():
    # reference words {the, cat, was, on, mat}: 5 distinct; LCS "the cat" -> 2/5
    assert m.rouge_l_recall("the cat sat", ["the cat was on the mat"]) == pytest.approx(0.4)
    # distinct words: ref "a b a b" has 2; the LCS covers both
    assert m.rouge_l_recall("a b", ["a b a b"]) == pytest.approx(1.0)
    # best of several references; empty references ignored; empty prediction scores 0
    assert m.rouge_l_recall("x y", ["", "z", "x q"]) == pytest.approx(0.5)
    assert m.rouge_l_recall("", ["a b"]) == 0.0
    assert m.rouge_l_recall("...", ["a b"]) == 0.0
    # summary level: union of LCS words over sentences
    assert m.rouge_l_recall("w1 w2 w6. w1 w3 w5", ["w1 w2 w3 w4 w5"]) == pytest.approx(4 / 5)
    assert t.score("arxiv", "the cat sat\nextra words the mat", ["the cat was on the mat"]) == pytest.approx(0.4)


def test_rouge_l_recall_chinese_uses_jieba_words():
    pytest.importorskip("jieba")
    assert m.segment_zh("我爱北京天安门") == "我 爱 北京 天安门"
    # LCS over jieba words: 我 爱 北京 (3) of 4 reference words
    assert m.rouge_l_recall("我爱北京", ["我爱北京天安门"], lang="zh") == pytest.approx(0.75)
    assert t.score("cnewsum", "我爱北京新闻天安门", ["我爱北京天安门"]) == pytest.approx(0.75)  # cut at 新闻
    # news2016: the quoted title is taken from the prediction only
    assert t.score("news2016", '最相关的新闻是3。"我爱北京天安门"', ["我爱北京天安门"]) == pytest.approx(1.0)


def test_corpus_bleu_by_hand():
    # unigram 5/6, bigram 3/5, trigram 2/4, 4-gram 1/3, equal lengths (no brevity penalty)
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert m.corpus_bleu(["the cat sat on the mat"], [["the cat sat on a mat"]]) == pytest.approx(expected)
    assert m.corpus_bleu(["a b c d e"], ["a b c d e"]) == pytest.approx(1.0)
    # brevity penalty: 4 of 8 reference tokens -> exp(1 - 2)
    assert m.corpus_bleu(["a b c d"], [["a b c d e f g h"]]) == pytest.approx(math.exp(-1))
    # Chinese: one token per character
    assert m.tokenize_zh("我爱你 ok.") == ("我", "爱", "你", "ok", ".")
    assert m.tokenize_13a("Hello, world! 3.5") == ("Hello", ",", "world", "!", "3.5")


def test_bleu_is_per_bucket_corpus_not_mean():
    items = [(1000, "a b c d e", ["a b c d e"]), (1000, "x y", ["p q r s"]), (2000, "a b c d", ["a b c d"])]
    per_bucket = t.bucket_scores("tedtalks-zh2en", items)
    corpus = m.corpus_bleu(["a b c d e", "x y"], [["a b c d e"], ["p q r s"]])
    assert per_bucket[1000] == pytest.approx(corpus)
    assert per_bucket[1000] != pytest.approx((1.0 + 0.0) / 2)
    assert per_bucket[2000] == pytest.approx(1.0)


def test_reference_keys_and_unknown_task():
    assert t.task_metric("drcd_semantic-single_qa") == t.task_metric("drcd_semantic-single")
    assert t.task_def("mnds-news_semantic-multiple_cls+cnt").name == "mnds-news_semantic-multiple"
    assert len([d for d in t.TASKS.names() if t.TASKS.get(d).official]) == 39
    with pytest.raises(KeyError, match="did you mean"):
        t.task_metric("nq_open")


def test_each_task_carries_its_metric_and_stop_marks():
    nq = t.TASKS.get("nq-open")
    assert nq.metric == m.MetricSpec("acc", "en", ("\n", ".")) and nq.metric.stop_marks == ("\n", ".")
    assert t.TASKS.get("online-shopping").metric.stop_marks == ("。",)  # set-F1: the list ends at the stop mark
    assert t.TASKS.get("news2016").metric.stop_marks == ()  # a later quote still changes the scored span
    assert t.TASKS.entry("wow").meta["metric"] == "acc"
    assert all(isinstance(t.TASKS.get(n).metric, m.MetricSpec) for n in t.TASKS.names())


def test_the_scorers_module_names_no_task():
    source = Path(m.__file__).read_text(encoding="utf-8")
    named = [n for n in t.TASKS.names() if f'"{n}"' in source or f"'{n}'" in source]
    assert named == []
    assert not hasattr(m, "TASK_METRICS") and not hasattr(m, "REFERENCE_KEYS")


def test_scoring_by_spec_equals_scoring_by_task():
    spec = m.MetricSpec("acc", "en", ("\n", "."))
    assert m.score(spec, "Paris. It is big", ["paris"]) == t.score("nq-open", "Paris. It is big", ["paris"]) == 1.0
    assert m.prepare(spec, "The city.\nParis") == "The city"
    items = [(1000, "a b c d e", ["a b c d e"]), (1000, "x y", ["p q r s"])]
    assert m.bucket_scores(m.MetricSpec("bleu", "en"), items) == t.bucket_scores("tedtalks-zh2en", items)


def test_metrics_registry_and_spec_validation():
    from kernelkit.registry import RegistryError

    assert set(m.METRICS.names()) >= {"acc", "exact_match", "set_f1", "rouge", "bleu"}
    assert m.METRICS.entry("bleu").meta["corpus"] and not m.METRICS.entry("acc").meta["corpus"]
    with pytest.raises(RegistryError, match="did you mean 'exact_match'"):
        m.MetricSpec("exact-match", "en")
    with pytest.raises(ValueError, match="language"):
        m.MetricSpec("acc", "fr")
    with pytest.raises(RegistryError, match="duplicate"):
        t.register_task("c3", ability="explicit_single", task_type="QA", lang="zh", source="x", official=False,
                        load=lambda root: None, metric=QA_ZH)(lambda source, ctx: [])


def test_user_metric_and_task_by_registration(monkeypatch):
    # a private registry state, so the user entries do not leak into other tests
    t.TASKS.names()  # discover the built-in tasks first
    monkeypatch.setattr(m.METRICS, "_entries", dict(m.METRICS._entries))
    monkeypatch.setattr(t.TASKS, "_entries", dict(t.TASKS._entries))

    @m.register_metric("first_word")
    def first_word(text, answers, spec):
        return float(text.split()[:1] == [answers[0]])

    t.register_task("toy-task", ability="global", task_type="QA", lang="en", source="toy", official=False,
                    load=lambda root: None, metric=m.MetricSpec("first_word", "en", end_tokens=(";",)))(
        lambda source, ctx: [])
    assert t.score("toy-task", "yes it is; no", ["yes"]) == 1.0
    assert t.score("toy-task", "; yes", ["yes"]) == 0.0  # cut at ";" first
    assert t.bucket_scores("toy-task", [(1000, "yes", ["yes"]), (1000, "no", ["yes"])]) == {1000: 0.5}
    assert "toy-task" in t.TASKS
