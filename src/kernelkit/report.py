"""Self-contained HTML report of a run: tables and plots embedded as base64 PNG.

Table cells are rendered for a reader: floats with six significant digits (no float32 noise), dicts as
``k: v; k: v`` and lists as comma lists (never a Python repr). Tables a section marks as recorded earlier
(:meth:`kernelkit.runs.Section.recorded`) sit in a separate box headed "Recorded earlier (not this run)"
with the command, date and commit that produced them; a paper's numbers
(:meth:`kernelkit.runs.Section.published`) sit in a box headed "Published (source, setting)".
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernelkit.runs import Run, Table

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:right}th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}
.meta{color:#57606a;font-size:.85rem}.data{background:#ddf4ff;padding:.35rem .6rem;border-radius:4px}
.data details{margin-top:.3rem}.data pre{white-space:pre-wrap;margin:.3rem 0 0}
.status-ok{color:#1a7f37}.status-failed{color:#cf222e}.status-skipped{color:#9a6700}
figure{margin:.5rem 0 1.2rem}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.85rem}
nav ol{columns:2;margin:.5rem 0 1rem;padding-left:1.5rem}nav li{margin:.1rem 0}
details pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.8rem}
.recorded{border:2px dashed #9a6700;background:#fff8c5;padding:.2rem .9rem .5rem;margin:1rem 0;border-radius:6px}
.recorded h3{color:#7d4e00}.recorded td,.recorded th{background:#fffbe6}
.recorded code{font-size:.8rem;word-break:break-word}
.published{border:2px solid #8250df;background:#fbefff;padding:.2rem .9rem .5rem;margin:1rem 0;border-radius:6px}
.published h3{color:#6639ba}.published td,.published th{background:#fdf7ff}
"""


def _fmt_float(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, ".6g")


def _cell(v: Any) -> str:
    """Plain text of one table cell (not yet HTML-escaped)."""
    if isinstance(v, bool) or v is None:
        return "n/a" if v is None else str(v)
    if isinstance(v, float):
        return _fmt_float(v)
    if isinstance(v, Mapping):
        return "; ".join(f"{k}: {_cell(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple, set, frozenset)):
        return ", ".join(_cell(x) for x in v)
    return str(v)


def _fmt(v: Any) -> str:
    """HTML of one table cell: no Python reprs, no float32 noise."""
    return html.escape(_cell(v))


# In a Data box, a parenthesised aside longer than this is shown as "(…)"; the full text goes in <details>.
_DATA_ASIDE_CHARS = 60


def _drop_long_asides(line: str) -> str:
    """``line`` with each top-level ``( … )`` group longer than ``_DATA_ASIDE_CHARS`` replaced by ``(…)``
    (an unbalanced group is kept as it is)."""
    out: list[str] = []
    depth, start = 0, 0
    for i, ch in enumerate(line):
        if ch == "(":
            if depth == 0:
                start = i
            depth += 1
        elif ch == ")" and depth > 0:
            depth -= 1
            if depth == 0:
                group = line[start:i + 1]
                out.append("(…)" if len(group) > _DATA_ASIDE_CHARS else group)
            continue
        if depth == 0:
            out.append(ch)
    if depth > 0:
        out.append(line[start:])
    return "".join(out)


def _data_box(message: str) -> str:
    """A Data box: the first line of ``message`` without long parenthesised asides (such as where a missing
    file was looked for and how to download it); the full text, when it says more, in a collapsed <details>."""
    e = html.escape
    text = message.strip()
    head = _drop_long_asides(text.splitlines()[0]) if text else ""
    if head == text:
        return f"<div class='data'>Data: {e(head)}</div>"
    return (f"<div class='data'>Data: {e(head)}<details><summary>full message</summary>"
            f"<pre>{e(text)}</pre></details></div>")


def _table(item: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(c))}</th>" for c in item.columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in item.rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _recorded_box(item: Any) -> str:
    e = html.escape
    what = f"<p>{e(item.what)}</p>" if item.what else ""
    note = f"<p class='meta'>{e(item.note)}</p>" if item.note else ""
    return (f"<div class='recorded'><h3>Recorded earlier (not this run): {e(item.title)}</h3>{what}"
            f"<p class='meta'>Command: <code>{e(item.command)}</code><br>Date: {e(item.date)} · "
            f"commit: {e(item.commit)}</p>{_table(item)}{note}</div>")


def _published_box(item: Any) -> str:
    e = html.escape
    note = f"<p class='meta'>{e(item.note)}</p>" if item.note else ""
    return (f"<div class='published'><h3>Published ({e(item.source)}, {e(item.setting)}): {e(item.title)}</h3>"
            f"{_table(item)}<p>Setting differs: {e(item.differs)}</p>{note}</div>")


def render_report(run: Run) -> str:
    """HTML for the whole run: header, table of contents, one block per section."""
    e = html.escape
    env = json.loads((run.dir / "environment.json").read_text(encoding="utf-8"))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>kernelkit report: {e(run.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>kernelkit report: {e(run.name)}</h1>",
        f"<p class='meta'>status <b class='status-{e(run.status)}'>{e(run.status)}</b> · "
        f"kernelkit {e(str(env.get('kernelkit')))} · torch {e(str(env.get('torch')))} · "
        f"{e(str(env.get('torch_threads')))} threads · device {e(str(env.get('device')))} · "
        f"{e(str(env.get('time')))} · commit {e(str(env.get('git_commit') or 'n/a'))[:12]}</p>",
    ]
    if run.sections:
        parts.append("<nav><b>Sections</b><ol>\n" + "\n".join(
            f"<li><a href='#{e(s.key)}'>{e(s.title)}</a></li>" for s in run.sections) + "\n</ol></nav>")
    else:
        parts.append("<p>No sections were produced.</p>")
    for s in run.sections:
        secs = f" · {s.seconds:.1f} s" if s.seconds is not None else ""
        parts.append(f"<h2 id='{e(s.key)}'>{e(s.title)}</h2>"
                     f"<p class='meta'><span class='status-{e(s.status)}'>{e(s.status)}</span>{secs}</p>")
        for kind, item in s.items:
            if kind == "text":
                parts.append(f"<p>{e(item)}</p>")
            elif kind == "data":
                parts.append(_data_box(item))
            elif kind == "table":
                note = f"<p class='meta'>{e(item.note)}</p>" if item.note else ""
                parts.append(f"<h3>{e(item.title)}</h3>{_table(item)}{note}")
            elif kind == "recorded":
                parts.append(_recorded_box(item))
            elif kind == "published":
                parts.append(_published_box(item))
            elif kind == "figure":
                data = base64.b64encode(item.path.read_bytes()).decode("ascii")
                parts.append(f"<figure><img alt='{e(item.name)}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{e(item.caption)}</figcaption></figure>")
    cfg = json.dumps(run.config, indent=2, default=str)
    parts.append(f"<h2>Configuration</h2><details><summary>config.json</summary><pre>{e(cfg)}</pre>"
                 f"</details><details><summary>environment.json</summary>"
                 f"<pre>{e(json.dumps(env, indent=2))}</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
