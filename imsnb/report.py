"""What a notebook shows people, and the bundle the runner reads back.

`report(findings)` displays one output with three representations: an HTML table for people, plain text for
terminals, and `application/vnd.imsnb.findings+json` for machines (the runner builds summary.json from it). Tables
are shown as people read them (`imsnb.tables`); the findings table keeps to a notebook's width, the message wrapping.

Every text in an HTML output comes from parameters or data (titles, query text, log lines, key names, API bodies)
and is escaped; no output is Markdown (nbconvert and JupyterLab pass HTML inside Markdown through). Every HTML
output is wrapped in one element of class `mathjax_ignore` (MATH_IGNORE), so JupyterLab's MathJax leaves `$1`/`$2`
placeholders in query text alone (JupyterLab 4 honours that class, not `tex2jax_ignore`).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import warnings
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb import __version__
from imsnb.bundles import FINDINGS_MIME
from imsnb.findings import (
    Finding,
    Findings,
    Severity,
    escalation_for,
    escalation_text,
    on_call,
    skipped_target,
    skipped_text,
)
from imsnb.findings.oncall import on_call_now
from imsnb.tables import (
    CELL,
    HEAD,
    MISSING,
    NUMBER,
    SEVERITY_STYLE,
    TABLE_STYLE,
    TEXT,
    breakable,
    table_html,
    table_text,
    value_text,
)

MIME_TYPE = FINDINGS_MIME
MATH_IGNORE = "mathjax_ignore"  # MathJax 3's ignoreHtmlClass default, which JupyterLab 4 keeps
COLUMNS = ["severity", "check", "message", "value", "threshold", "period"]  # the important first; component: check's


def findings_table(findings: list[Finding]) -> pd.DataFrame:
    """One row per finding, worst first, as people read it: the value and threshold with their unit, the period as
    a short label ("last 46 s, from history"). Targets that were not configured are left out (`skipped_line`)."""
    rows = [
        {
            "severity": f.severity.name,
            "check": f.check,
            "message": f.message,
            "value": value_text(f.value, f.unit),
            "threshold": value_text(f.threshold, f.unit),
            "period": f.period.short() if f.period else "",
        }
        for f in sorted(findings, key=lambda f: -f.severity)
        if not skipped_target(f)
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def skipped_line(findings: list[Finding]) -> str:
    """ "Not checked (no target configured): no Redis target: set REDIS_URL, ...; ..." or ""."""
    skipped = [skipped_text(f) for f in findings if skipped_target(f)]
    return f"Not checked (no target configured): {'; '.join(skipped)}" if skipped else ""


def bundle(findings: list[Finding], *, at: datetime | None = None) -> dict[str, Any]:
    """The machine-readable report: findings, the worst severity, its escalation and who is on call."""

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


# A value is a number with its unit, or a short text (a plan change, a state): right-aligned, kept on one line while
# the table fits, wrapped rather than pushing the table past a laptop's width when a run's texts are long.
VALUE = f"{NUMBER};white-space:normal;overflow-wrap:anywhere;min-width:4em"


def render_html(findings: list[Finding], data: dict[str, Any]) -> str:
    """The findings as a table that fits a laptop's notebook width: the message wraps in the widest column, the
    other columns stay narrow; what was not checked is said above it, apart."""
    e = html.escape
    esc = data["escalation"]
    head = "".join(
        f"<th style='{HEAD};text-align:{'right' if c in ('value', 'threshold') else 'left'}'>{e(c)}</th>"
        for c in COLUMNS
    )
    periods = {id(f): f.period.label() for f in findings if f.period}
    ordered = [f for f in sorted(findings, key=lambda f: -f.severity) if not skipped_target(f)]
    rows = []
    for finding, row in zip(ordered, findings_table(findings).itertuples(index=False), strict=True):
        severity = f"{CELL};{SEVERITY_STYLE.get(row.severity, '')};font-weight:600;white-space:nowrap;text-align:left"
        period = f" title='{e(periods[id(finding)])}'" if id(finding) in periods else ""
        rows.append(
            f"<tr><td style='{severity}'>{e(row.severity)}</td>"
            f"<td style='{CELL};text-align:left;min-width:11em'>{breakable(row.check)}</td>"
            f"<td style='{TEXT};min-width:12em'>{e(row.message)}</td>"
            f"<td style='{VALUE}'>{e(row.value)}</td><td style='{VALUE}'>{e(row.threshold)}</td>"
            f"<td style='{TEXT};min-width:6em;max-width:10em'{period}>{e(row.period or MISSING)}</td></tr>"
        )
    worst = data["severity"]
    skipped = skipped_line(findings)
    return (
        f"<div class='imsnb-report {MATH_IGNORE}'><h3>Findings: "
        f"<span style='{SEVERITY_STYLE.get(worst, '')};padding:2px 8px'>{e(str(worst))}</span></h3>"
        + (f"<p><b>{e(skipped.split(': ', 1)[0])}:</b> {e(skipped.split(': ', 1)[1])}</p>" if skipped else "")
        + f"<p>Escalation: respond within <b>{e(escalation_text(str(esc['response_time'])))}</b>; "
        f"notify {e(escalation_text(str(esc['notification'])))}; "
        f"escalation {e(escalation_text(str(esc['escalation'])))}. "
        f"On call now: <b>{e(_on_call_text(esc))}</b>.</p>"
        f"<table class='imsnb-findings' style='{TABLE_STYLE};width:100%'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _on_call_text(esc: dict[str, Any]) -> str:
    """ "Ana Example (primary)", or just "primary" when no roster names anyone."""
    name = esc.get("on_call_name")
    return f"{name} ({esc['on_call']})" if name and name != esc["on_call"] else str(esc["on_call"])


def render_text(findings: list[Finding], data: dict[str, Any]) -> str:
    lines = [
        f"Findings: {data['severity']} — escalation: {escalation_text(data['escalation']['escalation'])}, "
        f"respond within {escalation_text(data['escalation']['response_time'])}"
    ]
    skipped = skipped_line(findings)
    if skipped:
        lines.append(f"  {skipped}")
    for f in sorted(findings, key=lambda f: -f.severity):
        if skipped_target(f):
            continue
        covers = f" [{f.period.short()}]" if f.period else ""
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
        with warnings.catch_warnings():  # a name in a script the font lacks (CJK, emoji) is drawn as boxes: no
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font")  # warning in the report
            obj.savefig(buffer, format="png", dpi=96)
        _display({"image/png": buffer.getvalue(), "text/plain": f"<chart: {title or 'figure'}>"})
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        show(pd.DataFrame(list(dataclasses.asdict(obj).items()), columns=["metric", "value"]))
    elif isinstance(obj, pd.DataFrame):
        if obj.empty:
            _display({"text/plain": "(none)", "text/html": html_block("<p><i>(none)</i></p>")})
        else:
            _display({"text/html": html_block(table_html(obj)), "text/plain": table_text(obj)})
    else:
        _display({"text/plain": str(obj)})


def html_block(inner: str) -> str:
    """`inner` (markup built here, every text in it escaped) in the one outermost element every imsnb HTML output
    has: class `mathjax_ignore`, so math rendering leaves query placeholders like `$1` as they are."""
    return f"<div class='imsnb-output {MATH_IGNORE}'>{inner}</div>"


def _display(data: dict[str, Any]) -> None:
    try:
        # lazy: IPython is there only inside a kernel; the CLI and workers never load it
        from IPython.display import display
    except ImportError:  # plain Python: print the text form
        print(data.get("text/plain", ""))
        return
    if "image/png" in data:
        data = {**data, "image/png": base64.b64encode(data["image/png"]).decode()}
    display(data, raw=True)
