"""Adapters for the official M4LE translation sources (English <-> Chinese).

Files go under the data root as named below, in the format the source publishes:

===========================  ==============================================  ========================================
configs                      file(s) under the data root                     format
===========================  ==============================================  ========================================
tedtalks-en2zh / -zh2en      ``tedtalks/ted_en-20160408.xml``,               WIT3 TED XML release 2016-04-08:
                             ``tedtalks/ted_zh-cn-20160408.xml``             ``<xml><file><head><talkid/><title/>
                                                                             <transcription><seekvideo>`` segments
open-subtitles-en2zh / -zh2en  ``open-subtitles/en-zh_cn.xml``, documents    OPUS OpenSubtitles v2018 XML: XCES
                             under ``open-subtitles/xml/`` (``fromDoc``/     alignment ``<linkGrp fromDoc toDoc>
                             ``toDoc`` paths, ``.gz`` optional)              <link xtargets="1 2;1">``, documents
                                                                             of ``<s id><w>`` tokens
news-commentary-en2zh / -zh2en ``news-commentary/en-zh.xml``, documents      OPUS News-Commentary v16 XML: the same
                             under ``news-commentary/xml/``                  alignment; documents start with a
                                                                             ``<HEADLINE>``
===========================  ==============================================  ========================================

Instances of every translation config satisfy the reference's translation rule: the total length lies
in the upper half of its bucket's range. Lengths add English words and Chinese characters.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kernelkit.longctx.length import previous_bucket, text_length
from kernelkit.longctx.metrics import MetricSpec
from kernelkit.longctx.records import Record
from kernelkit.longctx.tasks.base import BuildContext, fit_natural, make_record, register_task
from kernelkit.longctx.tasks.formats import AlignedDocument, need, opus_sentences, read_opus
from kernelkit.longctx.tasks.patterns import Item, Prompt, semantic_single


@dataclass
class Parallel:
    """One parallel text: English and Chinese titles (or headlines) and texts."""

    en_title: str
    zh_title: str
    en: str
    zh: str

    def item(self, direction: str) -> Item:
        """The text to translate, keyed by its title, with the translation as the answer."""
        if direction == "en2zh":
            return Item(self.en, [self.zh], key=self.en_title)
        return Item(self.zh, [self.en], key=self.zh_title)


def _bleu(direction: str) -> MetricSpec:
    """Corpus BLEU in the target language of ``direction`` (``en2zh`` or ``zh2en``)."""
    return MetricSpec("bleu", direction[-2:])


def _loader(read: Callable[[Path], list[Parallel]], direction: str) -> Callable[[Path], list[Item]]:
    """``load(root)`` giving the items of one translation direction."""

    def load(root: Path) -> list[Item]:
        return [t.item(direction) for t in read(root)]

    return load


# ---------------------------------------------------------------------------------------------- TED talks


def _ted_heads(path: Path) -> dict[str, ET.Element]:
    heads = {}
    for head in ET.parse(path).getroot().iter("head"):
        talkid = head.findtext("talkid")
        if talkid:
            heads[talkid] = head
    return heads


def read_ted(root: Path, max_length: int = 300) -> list[Parallel]:
    """TED talks present in both languages: their aligned ``seekvideo`` segments from the start, while the
    combined length (English words + Chinese characters) stays below ``max_length``; talks whose English
    part has 50 words or less are dropped."""
    how = "WIT3 TED XML release 2016-04-08 (ted_talks_iwslt XML_releases.tgz)"
    en = _ted_heads(need(root / "tedtalks" / "ted_en-20160408.xml", how))
    zh = _ted_heads(need(root / "tedtalks" / "ted_zh-cn-20160408.xml", how))
    out = []
    for talkid, zh_head in zh.items():
        en_head = en.get(talkid)
        if en_head is None or zh_head.findtext("title") is None:
            continue
        en_parts, zh_parts, total = [], [], 0
        for e, z in zip(en_head.iter("seekvideo"), zh_head.iter("seekvideo"), strict=False):
            e_text, z_text = (e.text or "").strip(), (z.text or "").strip()
            total += len(e_text.split()) + len(z_text)
            if total >= max_length:
                break
            en_parts.append(e_text)
            zh_parts.append(z_text)
        en_text = " ".join(en_parts)
        if len(en_text.split()) > 50:
            out.append(Parallel(en_head.findtext("title") or "", zh_head.findtext("title") or "", en_text,
                                "".join(zh_parts)))
    return out


_TED = {
    "en2zh": Prompt("Below are numbered excerpts of TED talks. Translate the talk with the given title into Chinese.",
           "Talk {label}: {text}", "Question: Translate the talk titled '{key}' into Chinese.\nAnswer:",
           answer="演讲{label}: {answer}",
           demo="Talk 1: Thank you all for coming tonight .\nQuestion: Translate the talk titled 'Thanks' into "
                "Chinese.\nAnswer: 演讲1: 感谢大家今晚到来。"),
    "zh2en": Prompt("下面是多段带编号的TED演讲节选。请把指定标题的演讲翻译成英文。",
           "演讲{label}: {text}", "问题: 请把标题为「{key}」的演讲翻译成英文。\n答案:",
           answer="Talk {label}: {answer}",
           demo="演讲1: 感谢大家今晚到来。\n问题: 请把标题为「感谢」的演讲翻译成英文。\n"
                "答案: Talk 1: Thank you all for coming tonight ."),
}

for _dir, _prompt in _TED.items():
    register_task(f"tedtalks-{_dir}", ability="semantic_single", task_type="TRAN+RET", lang="mixed",
                  source="TED talks XML 2016-04-08", official=True, rule="upper_half", metric=_bleu(_dir),
                  load=_loader(read_ted, _dir),
                  data_files=("tedtalks/ted_en-20160408.xml", "tedtalks/ted_zh-cn-20160408.xml"))(
        semantic_single(_prompt, rule="upper_half"))


# ---------------------------------------------------------------------------------------------- News-Commentary


def _headline(doc: ET.Element, joiner: str) -> str:
    head = doc.find("HEADLINE")
    return "" if head is None else joiner.join(opus_sentences(head, joiner).values()).strip()


def read_news_commentary(root: Path, max_words: int = 150) -> list[Parallel]:
    """News-Commentary articles: the headline and the aligned sentence pairs after it, up to ``max_words``
    English words."""
    docs = read_opus(root / "news-commentary" / "en-zh.xml", root / "news-commentary" / "xml",
                     "OPUS News-Commentary v16 (en-zh XML)")
    out = []
    for doc in docs:
        en_title, zh_title = _headline(doc.source_root, " "), _headline(doc.target_root, "")
        en_parts: list[str] = []
        zh_parts: list[str] = []
        for en, zh in (p for p in doc.pairs[1:] if all(p)):  # the first link aligns the headlines
            if en_parts and len(" ".join([*en_parts, en]).split()) > max_words:
                break
            en_parts.append(en)
            zh_parts.append(zh)
        if en_title and zh_title and en_parts:
            out.append(Parallel(en_title, zh_title, " ".join(en_parts), "".join(zh_parts)))
    return out


_NEWS = {
    "en2zh": Prompt("Below are numbered paragraphs. Find the one related to the given headline and translate it "
                    "into Chinese.",
           "Paragraph {label}: {text}",
           "Question: Which paragraph is related to '{key}'? Translate it into Chinese.\nAnswer:",
           answer="段落{label}: {answer}"),
    "zh2en": Prompt("下面是多个带编号的段落。请找出与指定标题相关的段落，并把它翻译成英文。",
           "段落{label}: {text}", "问题: 哪个段落与「{key}」相关？请把它翻译成英文。\n答案:",
           answer="Paragraph {label}: {answer}"),
}

for _dir, _prompt in _NEWS.items():
    register_task(f"news-commentary-{_dir}", ability="semantic_single", task_type="TRAN+RET", lang="mixed",
                  source="News-Commentary v16 (OPUS)", official=True, rule="upper_half", metric=_bleu(_dir),
                  load=_loader(read_news_commentary, _dir),
                  data_files=("news-commentary/en-zh.xml",),
                  note="the README lists it as global; its builder picks a paragraph by headline (semantic single)")(
        semantic_single(_prompt, rule="upper_half"))


# ---------------------------------------------------------------------------------------------- OpenSubtitles


def read_open_subtitles(root: Path) -> list[AlignedDocument]:
    """OpenSubtitles v2018 en-zh_cn document pairs with their aligned subtitle lines."""
    return read_opus(root / "open-subtitles" / "en-zh_cn.xml", root / "open-subtitles" / "xml",
                     "OPUS OpenSubtitles v2018 (en-zh_cn XML)")


def translate_stretch(direction: str, skip: int = 20) -> Callable[[list[AlignedDocument], BuildContext], list[Record]]:
    """One stretch of consecutive subtitle lines per film (after its first ``skip`` links, as the reference;
    links with an empty side are left out), grown until the instance reaches the upper half of the bucket's
    range; the answer is the stretch's translation."""
    src_name, tgt_name = ("English", "Chinese") if direction == "en2zh" else ("Chinese", "English")
    instruction = f"Translate the movie subtitles from {src_name} to {tgt_name}. The first one is an example."
    example = {"English": "Where are you going ? I will be back soon .", "Chinese": "你要去哪里？我很快就回来。"}
    demo = f"{src_name}: {example[src_name]}\n{tgt_name}: {example[tgt_name]}"

    def build(docs: list[AlignedDocument], ctx: BuildContext) -> list[Record]:
        prev = previous_bucket(ctx.bucket, ctx.buckets)
        lower = prev + (ctx.bucket - prev) / 2

        def stretch(pairs: list[tuple[str, str]]) -> Callable[[], Record]:
            src = [p[0] if direction == "en2zh" else p[1] for p in pairs]
            tgt = [p[1] if direction == "en2zh" else p[0] for p in pairs]
            body = f"{src_name}: " + " ".join(src) + f"\n{tgt_name}:"
            if ctx.one_shot:
                body = demo + "\n\n" + body
            return lambda: make_record(ctx, instruction, body, [("" if direction == "en2zh" else " ").join(tgt)])

        candidates = []
        for doc in docs:
            taken: list[tuple[str, str]] = []
            size = text_length(instruction + " " + demo, "mixed") + 4
            for pair in (p for p in doc.pairs[skip:] if all(p)):
                taken.append(pair)
                size += text_length(pair[0], "mixed") + text_length(pair[1], "mixed")
                if size >= lower:
                    break
            if taken:
                candidates.append(stretch(taken))
        return fit_natural(ctx, candidates, rule="upper_half")

    build.__name__ = f"build_open_subtitles_{direction}"
    return build


for _dir in ("en2zh", "zh2en"):
    register_task(f"open-subtitles-{_dir}", ability="global", task_type="TRAN", lang="mixed",
                  source="OpenSubtitles v2018 (OPUS)", official=True, rule="upper_half", load=read_open_subtitles,
                  metric=_bleu(_dir),
                  data_files=("open-subtitles/en-zh_cn.xml",))(translate_stretch(_dir))
