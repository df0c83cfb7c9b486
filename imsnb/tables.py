"""Tables as people read them, in JupyterLab and in report.html alike: headers in words ("mean (ms)", not
`mean_ms`), numbers right-aligned, rounded, with thousands separators, text left-aligned and wrapping as text (a
long text column keeps a readable width instead of one word a line), `—` for what is missing, datetimes in UTC to
the second. The data is unchanged: only what is shown.

Every style is inline on the elements: JupyterLab's stylesheet right-aligns every cell and fixes the table layout
(`.jp-RenderedHTMLCommon table`), report.html has its own; inline styles win over both. Text is escaped.
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

MISSING = "—"
MAX_ROWS = 50
LONG_TEXT = 40  # characters: a column holding longer text keeps a readable minimum width
# Column name endings that are units: `mean_ms` is "mean (ms)".
UNITS = {
    "_ms": "ms",
    "_s": "s",
    "_gib": "GiB",
    "_mib": "MiB",
    "_kib": "KiB",
    "_bytes": "bytes",
    "_pct": "%",
    "_per_s": "/s",
    "_days": "days",
    "_h": "h",
}
WORDS = {"pid": "pid", "queryid": "query id", "xact": "transaction"}
SEVERITY_STYLE = {
    "OK": "background:#e3f4e8;color:#1e6b3a",
    "INFO": "background:#e6eef8;color:#234e85",
    "WARNING": "background:#fff1d6;color:#8a5a00",
    "ERROR": "background:#fde0dc;color:#9b1c12",
    "CRITICAL": "background:#9b1c12;color:#ffffff",
}
TABLE_STYLE = "border-collapse:collapse;table-layout:auto;width:auto;max-width:100%;margin:.4em 0"
CELL = "padding:3px 8px;border:1px solid #d8dde3;vertical-align:top;line-height:1.35"
HEAD = f"{CELL};background:#f3f5f7;font-weight:600;text-align:left;white-space:nowrap"
NUMBER = f"{CELL};text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"
TEXT = f"{CELL};text-align:left;white-space:normal;overflow-wrap:anywhere"
LONG = f"{TEXT};min-width:18em;max-width:48em"
IDENTIFIER = f"{CELL};text-align:left;white-space:nowrap"


def header_text(name: Any) -> str:
    """`mean_exec_time_ms` → "mean exec time (ms)", `hit_ratio` → "hit ratio", `queryid` → "query id"."""
    text = str(name)
    unit = ""
    for ending, shown in UNITS.items():
        if text.endswith(ending) and len(text) > len(ending):
            text, unit = text[: -len(ending)], shown
            break
    words = " ".join(WORDS.get(w, w) for w in text.split("_") if w)
    return f"{words} ({unit})" if unit else words


def is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float, Decimal)) or (hasattr(value, "dtype") and pd.api.types.is_number(value))


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return isinstance(value, float) and math.isnan(value)
    except TypeError:
        return False


def number_text(value: Any, *, grouped: bool = True) -> str:
    """4592.508857 → "4,593"; 45.91 → "45.9"; 0.00166 → "0.00166"; 3500000 → "3,500,000"."""
    number = float(value)
    if math.isnan(number):
        return MISSING
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if number.is_integer():
        whole = int(value) if isinstance(value, int) or pd.api.types.is_integer(value) else int(number)
        return f"{whole:,}" if grouped else str(whole)
    size = abs(number)
    if size >= 100:
        return f"{number:,.0f}"
    if size >= 1:
        return f"{number:,.2f}".rstrip("0").rstrip(".")
    return f"{number:.3g}"


def cell_text(value: Any, column: str = "") -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, (datetime, pd.Timestamp)):
        at = value.astimezone(UTC) if value.tzinfo else value
        return f"{at:%Y-%m-%d %H:%M:%S}" + (" UTC" if value.tzinfo else "")
    if is_number(value):
        return number_text(value, grouped=not _is_identifier(column))
    if isinstance(value, (list, tuple)):
        return ", ".join(cell_text(v) for v in value) or MISSING
    text = str(value)
    return text if text.strip() else MISSING


def _is_identifier(column: str) -> bool:
    """Ids are shown as they are (no thousands separators): pid, queryid, run_id, queryids (a list of them), ..."""
    return column == "pid" or column.endswith(("id", "ids"))


def value_text(value: Any, unit: str = "") -> str:
    """A value with its unit: "358 s", "87%" (a ratio), "2,888x", "2,324 ms", "—" when there is none."""
    if is_missing(value) or value == "":
        return MISSING
    unit = "" if is_missing(unit) else str(unit or "")
    if not is_number(value):
        return f"{value} {unit}".strip() if unit and unit not in str(value) else str(value)
    if unit == "ratio":
        return f"{number_text(round(float(value) * 100, 1))}%"
    if unit in ("%", "x"):
        return f"{number_text(value)}{unit}"
    return f"{number_text(value)} {unit}".strip()


UNIT_COLUMN = "unit"
WITH_UNIT = ("value", "threshold")  # shown with the row's `unit` ("2%", "500 ms"); the unit column is then not shown


def _columns(frame: pd.DataFrame) -> list[tuple[str, list[str], bool | None]]:
    """(header, cell texts, numeric) for each column shown; numeric None for an identifier (pid, query id: shown
    whole, on one line, as a label)."""
    names = [str(c) for c in frame.columns]
    units = list(frame[UNIT_COLUMN]) if UNIT_COLUMN in names and set(WITH_UNIT) & set(names) else None
    shown = []
    for i, name in enumerate(names):
        values = list(frame.iloc[:, i])
        if units is not None and name == UNIT_COLUMN:
            continue
        numeric = all(is_number(v) or is_missing(v) for v in values) and not all(is_missing(v) for v in values)
        numeric = None if _is_identifier(name) else numeric
        if units is not None and name in WITH_UNIT:
            texts = [value_text(v, u) for v, u in zip(values, units, strict=True)]
        else:
            texts = [cell_text(v, name) for v in values]
        shown.append((header_text(name), texts, numeric))
    return shown


LONG_WORD = 30  # characters: a word longer than this (a qualified index name) widens its column to fit it


def _longest_word(texts: list[str]) -> int:
    return max((len(word) for text in texts for word in text.split()), default=0)


def table_html(frame: pd.DataFrame, *, max_rows: int = MAX_ROWS) -> str:
    """The frame as an HTML table people can read (see the module's docstring); at most `max_rows` rows, the rest
    counted under it."""
    columns = _columns(frame.head(max_rows))
    head = "".join(
        f"<th style='{HEAD};text-align:{'right' if numeric else 'left'}'>{html.escape(name)}</th>"
        for name, _, numeric in columns
    )
    long = [any(len(t) > LONG_TEXT for t in texts) for _, texts, _ in columns]
    rows = []
    for r in range(min(len(frame), max_rows)):
        cells = []
        for (name, texts, numeric), wide in zip(columns, long, strict=True):
            style = NUMBER if numeric else IDENTIFIER if numeric is None else LONG if wide else TEXT
            if wide and not numeric and (longest := _longest_word(texts)) > LONG_WORD:
                style += f";min-width:{min(28.0, longest * 0.6):.1f}em"  # a long name (an index) on one line
            if name == "severity" and texts[r] in SEVERITY_STYLE:
                style = f"{CELL};{SEVERITY_STYLE[texts[r]]};font-weight:600;white-space:nowrap;text-align:left"
            cells.append(f"<td style='{style}'>{html.escape(texts[r])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = len(frame) - max_rows
    tail = f"<p style='color:#666;margin:.2em 0'>… {more:,} more row(s) not shown</p>" if more > 0 else ""
    return (
        f"<table class='imsnb-table' style='{TABLE_STYLE}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{tail}"
    )


def table_text(frame: pd.DataFrame, *, max_rows: int = MAX_ROWS) -> str:
    """The same table as text (a terminal, the notebook's plain-text output)."""
    readable = pd.DataFrame({name: texts for name, texts, _ in _columns(frame.head(max_rows))})
    text = readable.to_string(index=False)
    more = len(frame) - max_rows
    return text + (f"\n… {more:,} more row(s) not shown" if more > 0 else "")


def breakable(text: str) -> str:
    """Escaped text with break opportunities after dots and underscores: in a narrow column a check name wraps as
    "postgres." / "statement_" / "regression" instead of widening the table; with room, it stays on one line."""
    return re.sub(r"([._])", r"\1<wbr>", html.escape(text))
