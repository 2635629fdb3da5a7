"""Self-contained HTML report of a run: tables and plots embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernelkit.runs import Run

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1b1f24;line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:2px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
h3{font-size:1.05rem;margin-bottom:.3rem}
table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .55rem;text-align:right}th{background:#f6f8fa}
td:first-child,th:first-child{text-align:left}
.meta{color:#57606a;font-size:.85rem}.data{background:#ddf4ff;padding:.35rem .6rem;border-radius:4px}
.status-ok{color:#1a7f37}.status-failed{color:#cf222e}.status-skipped{color:#9a6700}
figure{margin:.5rem 0 1.2rem}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.85rem}nav a{margin-right:.8rem}
details pre{background:#f6f8fa;padding:.6rem;overflow:auto;font-size:.8rem}
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v == 0 or 1e-3 <= abs(v) < 1e5:
            return f"{v:.4g}"
        return f"{v:.3e}"
    return html.escape(str(v))


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
        parts.append("<nav>" + "".join(
            f"<a href='#{e(s.key)}'>{e(s.title)}</a>" for s in run.sections) + "</nav>")
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
                parts.append(f"<p class='data'>Data: {e(item)}</p>")
            elif kind == "table":
                head = "".join(f"<th>{e(str(c))}</th>" for c in item.columns)
                body = "".join(
                    "<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in item.rows)
                note = f"<p class='meta'>{e(item.note)}</p>" if item.note else ""
                parts.append(f"<h3>{e(item.title)}</h3><table><tr>{head}</tr>{body}</table>{note}")
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
