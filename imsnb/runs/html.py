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
from typing import Any

from imsnb.bundles import ACTIONS_MIME, FINDINGS_MIME

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# nbconvert's order for HTML, restricted to what a report can show without a script.
PRIORITY = ("text/html", "image/svg+xml", "image/png", "image/jpeg", "text/markdown", "text/plain")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;color:#222;max-width:80em;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;
vertical-align:top}th{background:#f3f3f3}img{max-width:100%}
pre{background:#f7f7f7;padding:.5em .8em;overflow-x:auto;white-space:pre-wrap;font-size:.88em}
.cell{margin:0 0 1.2em}.code pre{border-left:3px solid #cfd8e3;background:#fafbfc;color:#444}
.stderr pre{background:#fff5f5}.error pre{background:#fde0dc;color:#7a1a10}
.verdict{border:2px solid #cfd8e3;padding:.2em 1em 1em;margin-bottom:2em}.nav{color:#666;font-size:.9em}
details>summary{cursor:pointer;color:#555}
"""


def render_report(nb: dict[str, Any], *, title: str | None = None) -> str:
    """The whole page for an executed notebook (a dict as nbformat stores it)."""
    cells = nb.get("cells", [])
    shown = [out for cell in cells for out in _outputs(cell) if _is_verdict(out)]
    # the findings table with its escalation first, then the actions planned or taken
    verdict = sorted(shown, key=lambda out: FINDINGS_MIME not in (out.get("data") or {}))
    body = [_cell(cell) for cell in cells]
    title = title or _title(cells) or "imsnb report"
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
        f'<body class="mathjax_ignore">\n{top}\n<main>{"".join(body)}</main>\n</body></html>\n'
    )


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
    for mime in PRIORITY:
        if mime in data:
            return f'<div class="out">{_data(mime, data[mime])}</div>'
    return ""


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
        import mistune

        render = _MARKDOWN[trusted] = mistune.create_markdown(escape=not trusted, plugins=["table", "strikethrough"])
    return render(text)
