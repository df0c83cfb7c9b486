"""report.html: an executed notebook as one small, self-contained page, the verdict first.

nbconvert's `lab` template costs about a second a run (importing nbconvert, compiling its Jinja templates and
Pygments' lexers, inlining JupyterLab's 300 KB stylesheet) for a page a ticket reader opens once. This renders the
same cells and outputs directly: markdown with mistune (what nbconvert uses), code as escaped text, outputs by the
usual MIME priority, charts as embedded PNG, one stylesheet of a few lines, and the same Content-Security-Policy as
the incident index (no script can run, nothing is fetched).

The page opens with what a reader of the ticket wants: the findings table with the escalation, and the actions
planned or taken. The notebook follows in its own order as the evidence.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

from imsnb.bundles import ACTIONS_MIME, FINDINGS_MIME
from imsnb.period import _span
from imsnb.runs.summary import status_word

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# nbconvert's order for HTML, restricted to what a report can show without a script.
PRIORITY = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown", "text/plain")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;color:#222;max-width:80em;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}img{max-width:100%}.out{overflow-x:auto;max-width:100%}
.about{border-bottom:1px solid #cfd8e3;margin-bottom:1.2em}.about h1{margin:.2em 0 .3em}
.about dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.4em 0 1em}
.about dt{color:#555}.about dd{margin:0;overflow-wrap:anywhere}
pre{background:#f7f7f7;padding:.5em .8em;overflow-x:auto;white-space:pre-wrap;font-size:.88em}
.cell{margin:0 0 1.2em}.code pre{border-left:3px solid #cfd8e3;background:#fafbfc;color:#444}
.stderr pre{background:#fff5f5}.error pre{background:#fde0dc;color:#7a1a10}
.verdict{border:2px solid #cfd8e3;padding:.2em 1em 1em;margin-bottom:2em}.nav{color:#666;font-size:.9em}
details>summary{cursor:pointer;color:#555}
"""


def render_report(nb: dict[str, Any], *, title: str | None = None, summary: dict[str, Any] | None = None) -> str:
    """The whole page for an executed notebook (a dict as nbformat stores it); with the run's `summary`, it opens
    with what the report is about: the incident, the notebook, its targets, the window and when it ran."""
    cells = nb.get("cells", [])
    shown = [out for cell in cells for out in _outputs(cell) if _is_verdict(out)]
    # the findings table with its escalation first, then the actions planned or taken
    verdict = sorted(shown, key=lambda out: FINDINGS_MIME not in (out.get("data") or {}))
    body = [_cell(cell) for cell in cells]
    title = title or _title(cells) or "imsnb report"
    about = _about(title, summary) if summary else ""
    if summary:
        title = f"{summary.get('incident_id') or '?'} · {summary.get('notebook') or '?'} · {title}"
    top = ""
    if verdict:
        top = (
            '<section class="verdict" id="verdict"><h2>Verdict</h2>'
            + "".join(_output(out) for out in verdict)
            + '<p class="nav">The evidence, section by section, follows.</p></section>'
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f'<body class="mathjax_ignore">\n{about}{top}\n<main>{"".join(body)}</main>\n</body></html>\n'
    )


def _about(title: str, summary: dict[str, Any]) -> str:
    """The page's header: what this report is about, in the order a ticket reader asks."""

    e = html.escape
    took = summary.get("duration_s")
    ran = f"{_utc_text(summary.get('started_at'))}" + (f", {took:.1f} s" if isinstance(took, (int, float)) else "")
    worst = summary.get("severity")
    outcome = status_word(summary.get("status")) + (f"; worst finding {worst}" if worst else "; no findings")
    rows = [
        ("incident", summary.get("incident_id") or "?"),
        ("notebook", f"{summary.get('notebook') or '?'} ({title})"),
        ("targets", "; ".join(summary.get("targets") or []) or "—"),
        ("window", _window_text(summary.get("window"))),
        ("ran", f"{ran}: {outcome}"),
    ]
    items = "".join(f"<dt>{e(name)}</dt><dd>{e(str(value))}</dd>" for name, value in rows)
    heading = f"Incident {summary.get('incident_id') or '?'}: {summary.get('notebook') or '?'}"
    return f'<header class="about"><h1>{e(heading)}</h1><dl>{items}</dl></header>\n'


def _utc_text(value: Any) -> str:
    """'2026-12-02T18:00:34Z' → '2026-12-02 18:00:34 UTC'."""
    text = str(value or "?")
    return text.replace("T", " ").replace("Z", " UTC") if text.endswith("Z") else text


def _window_text(window: Any) -> str:
    """'2026-12-02 17:00:34 – 18:00:34 UTC (60 min)' from summary.json's {"start", "end"}."""

    if not isinstance(window, dict) or not window.get("start") or not window.get("end"):
        return "—"
    try:
        start, end = (datetime.fromisoformat(str(window[k]).replace("Z", "+00:00")) for k in ("start", "end"))
    except ValueError:
        return f"{window['start']} – {window['end']}"
    to = f"{end:%H:%M:%S}" if start.date() == end.date() else f"{end:%Y-%m-%d %H:%M:%S}"
    return f"{start:%Y-%m-%d %H:%M:%S} – {to} UTC ({_span((end - start).total_seconds())})"


def _title(cells: list[dict]) -> str | None:
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            for line in _text(cell.get("source")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return None


def _outputs(cell: dict) -> list[dict]:
    return (cell.get("outputs") or []) if cell.get("cell_type") == "code" else []


def _is_verdict(output: dict) -> bool:
    data = output.get("data") or {}
    return FINDINGS_MIME in data or ACTIONS_MIME in data


def _cell(cell: dict) -> str:
    kind = cell.get("cell_type")
    if kind == "markdown":
        return f'<div class="cell md">{_markdown(_text(cell.get("source")), trusted=True)}</div>'
    if kind != "code":
        return ""
    source = _text(cell.get("source"))
    parts = []
    if source.strip():
        parts.append(f'<details class="code"><summary>code</summary><pre>{html.escape(source)}</pre></details>')
    for out in _outputs(cell):
        if _is_verdict(out):
            parts.append('<p class="nav">(shown at the top: <a href="#verdict">verdict</a>)</p>')
        else:
            parts.append(_output(out))
    return f'<div class="cell">{"".join(parts)}</div>' if parts else ""


def _output(out: dict) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        css = "stderr" if out.get("name") == "stderr" else "stdout"
        return f'<div class="{css}"><pre>{_plain(_text(out.get("text")))}</pre></div>'
    if kind == "error":
        trace = "\n".join(out.get("traceback") or []) or f"{out.get('ename')}: {out.get('evalue')}"
        return f'<div class="error"><pre>{_plain(trace)}</pre></div>'
    data = out.get("data") or {}
    if isinstance(data.get(ACTIONS_MIME), dict) and data[ACTIONS_MIME].get("actions"):
        return f'<div class="out">{_actions(data)}</div>'
    for mime in PRIORITY:
        if mime in data:
            return f'<div class="out">{_data(mime, data[mime])}</div>'
    return ""


# An action plan's columns as a ticket reader asks: what state it is in, what it does to what and why, the command,
# what to expect, how to undo it, and the detail of what happened.
ACTION_COLUMNS = ("status", "action", "target", "reason", "command", "expected_effect", "undo", "detail", "approver")


def _actions(data: dict[str, Any]) -> str:
    """An action plan from its bundle (the notebook's own HTML is pandas' default table): its first line (the title
    and whether the keys were turned), then the actions as a readable table (`imsnb.tables`)."""
    # lazy: pandas (~2 s to import) only for this table
    import pandas as pd

    from imsnb.tables import table_html  # lazy: it imports pandas at its top

    first = _text(data.get("text/plain")).split("\n", 1)[0]
    actions = pd.DataFrame(data[ACTIONS_MIME]["actions"])
    shown = actions[[c for c in ACTION_COLUMNS if c in actions.columns]]
    shown = shown.drop(columns=[c for c in shown.columns if shown[c].isna().all()])
    return f"<p>{html.escape(first)}</p>{table_html(shown)}"


def _data(mime: str, value: Any) -> str:
    text = _text(value)
    if mime in ("text/html", "image/svg+xml"):
        return text  # imsnb's own HTML (escaped where it holds data); the page's CSP forbids any script in it
    if mime in ("image/png", "image/jpeg"):
        return f'<img src="data:{mime};base64,{"".join(text.split())}" alt="chart">'
    if mime == "text/markdown":
        return _markdown(text, trusted=False)
    return f"<pre>{_plain(text)}</pre>"


def _plain(text: str) -> str:
    return html.escape(_ANSI.sub("", text))


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


_MARKDOWN: dict[bool, Any] = {}


def _markdown(text: str, *, trusted: bool) -> str:
    """Markdown to HTML; raw HTML passes only in the notebook's own cells (trusted), never in outputs."""
    render = _MARKDOWN.get(trusted)
    if render is None:
        # lazy: the Markdown renderer only for a report with Markdown cells
        import mistune

        render = _MARKDOWN[trusted] = mistune.create_markdown(escape=not trusted, plugins=["table", "strikethrough"])
    return render(text)
