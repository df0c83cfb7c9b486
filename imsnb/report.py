"""What a notebook shows people, and the bundle the runner reads back.

`report(findings)` displays one output with three representations: an HTML table for people, plain text for
terminals, and `application/vnd.imsnb.findings+json` for machines (the runner builds summary.json from it).

Every text in an HTML output comes from parameters or data (titles, query text, log lines, key names, API bodies)
and is escaped; no output is Markdown (nbconvert and JupyterLab pass HTML inside Markdown through). Every HTML
output is wrapped in one element of class `mathjax_ignore` (MATH_IGNORE), so JupyterLab's MathJax leaves `$1`/`$2`
placeholders in query text alone (JupyterLab 4 honours that class, not `tex2jax_ignore`).
"""

from __future__ import annotations

import dataclasses
import html
import io
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb import __version__
from imsnb.bundles import FINDINGS_MIME
from imsnb.findings import Finding, Findings, Severity, escalation_for, on_call, worded

MIME_TYPE = FINDINGS_MIME
MATH_IGNORE = "mathjax_ignore"  # MathJax 3's ignoreHtmlClass default, which JupyterLab 4 keeps
SEVERITY_STYLE = {
    "OK": "background:#e3f4e8;color:#1e6b3a",
    "INFO": "background:#e6eef8;color:#234e85",
    "WARNING": "background:#fff1d6;color:#8a5a00",
    "ERROR": "background:#fde0dc;color:#9b1c12",
    "CRITICAL": "background:#9b1c12;color:#ffffff",
}
COLUMNS = ["severity", "check", "component", "value", "threshold", "unit", "period", "message"]


def findings_table(findings: list[Finding]) -> pd.DataFrame:
    """One row per finding, worst first."""
    rows = [
        {**f.to_dict(), "period": f.period.label() if f.period else ""}
        for f in sorted(findings, key=lambda f: -f.severity)
    ]
    return pd.DataFrame(rows, columns=COLUMNS + ["evidence"])[COLUMNS]


def bundle(findings: list[Finding], *, at: datetime | None = None) -> dict[str, Any]:
    """The machine-readable report: findings, the worst severity, its escalation and who is on call."""
    from imsnb.findings.oncall import on_call_now

    at = at or datetime.now(UTC)
    person = on_call_now(at)
    worst = Severity.worst(findings)
    escalation = escalation_for(worst)
    return {
        "severity": worst.name,
        "escalation": {
            "response_time": escalation.response_time,
            "notification": escalation.notification,
            "escalation": escalation.escalation,
            "page": escalation.page,
            "on_call": on_call(at),
            "on_call_name": person["name"],
        },
        "findings": [f.to_dict() for f in findings],
        "generated_at": at.isoformat(timespec="seconds"),
        "imsnb_version": __version__,
    }


def render_html(findings: list[Finding], data: dict[str, Any]) -> str:
    e = html.escape
    esc = data["escalation"]
    head = "".join(f"<th style='text-align:left;padding:4px 8px'>{e(c)}</th>" for c in COLUMNS)
    rows = []
    for row in findings_table(findings).itertuples(index=False):
        cells = []
        for column, value in zip(COLUMNS, row, strict=True):
            style = SEVERITY_STYLE.get(value, "") + ";font-weight:600" if column == "severity" else ""
            shown = "" if value is None or (isinstance(value, float) and pd.isna(value)) else value
            cells.append(f"<td style='padding:4px 8px;{style}'>{e(str(shown))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    worst = data["severity"]
    return (
        f"<div class='imsnb-report {MATH_IGNORE}'><h3>Findings: "
        f"<span style='{SEVERITY_STYLE.get(worst, '')};padding:2px 8px'>{e(str(worst))}</span></h3>"
        f"<p>Escalation: respond within <b>{e(worded(str(esc['response_time'])))}</b>; "
        f"notify {e(worded(str(esc['notification'])))}; escalation {e(worded(str(esc['escalation'])))}. "
        f"On call now: <b>{e(_on_call_text(esc))}</b>.</p>"
        f"<table style='border-collapse:collapse'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</div>"
    )


def _on_call_text(esc: dict[str, Any]) -> str:
    """ "Ana Example (primary)", or just "primary" when no roster names anyone."""
    name = esc.get("on_call_name")
    return f"{name} ({esc['on_call']})" if name and name != esc["on_call"] else str(esc["on_call"])


def render_text(findings: list[Finding], data: dict[str, Any]) -> str:
    lines = [
        f"Findings: {data['severity']} — escalation: {worded(data['escalation']['escalation'])}, "
        f"respond within {worded(data['escalation']['response_time'])}"
    ]
    for f in sorted(findings, key=lambda f: -f.severity):
        covers = f" [{f.period.label()}]" if f.period else ""
        lines.append(f"  {f.severity.name:<8} {f.check:<32} {f.message}{covers}")
    return "\n".join(lines)


def report(findings: Findings | list[Finding]) -> None:
    """Display the findings: a table for people and the JSON bundle the runner reads back."""
    data = bundle(list(findings))
    _display(
        {
            "text/html": render_html(list(findings), data),
            "text/plain": render_text(list(findings), data),
            MIME_TYPE: data,
        }
    )


def show(obj: Any, title: str | None = None) -> None:
    """Display a Figure (as PNG, so it is embedded in every artifact) or a DataFrame (as an HTML table).

    The title is text, never markup: it often carries a parameter or a name read from a target."""
    if title:
        _display({"text/html": html_block(f"<p><b>{html.escape(str(title))}</b></p>"), "text/plain": str(title)})
    if hasattr(obj, "savefig"):
        buffer = io.BytesIO()
        obj.savefig(buffer, format="png", dpi=96)
        _display({"image/png": buffer.getvalue(), "text/plain": f"<chart: {title or 'figure'}>"})
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        show(pd.DataFrame(list(dataclasses.asdict(obj).items()), columns=["metric", "value"]))
    elif isinstance(obj, pd.DataFrame):
        if obj.empty:
            _display({"text/plain": "(none)", "text/html": html_block("<p><i>(none)</i></p>")})
        else:
            table = obj.to_html(index=False, max_rows=50, escape=True)
            _display({"text/html": html_block(table), "text/plain": obj.to_string(max_rows=50)})
    else:
        _display({"text/plain": str(obj)})


def html_block(inner: str) -> str:
    """`inner` (markup built here, every text in it escaped) in the one outermost element every imsnb HTML output
    has: class `mathjax_ignore`, so math rendering leaves query placeholders like `$1` as they are."""
    return f"<div class='imsnb-output {MATH_IGNORE}'>{inner}</div>"


def _display(data: dict[str, Any]) -> None:
    try:
        from IPython.display import display
    except ImportError:  # plain Python: print the text form
        print(data.get("text/plain", ""))
        return
    if "image/png" in data:
        import base64

        data = {**data, "image/png": base64.b64encode(data["image/png"]).decode()}
    display(data, raw=True)
