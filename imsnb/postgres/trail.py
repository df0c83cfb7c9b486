"""The trail of a statement: the tables it reads, with their scans and rows read in the same period, so a slow or
regressed statement's finding can say "public.items: 30 sequential scans reading 6,000,000 rows, 0 index scans"."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

__all__ = [
    "TRAIL_COLUMNS",
    "table_trail",
    "tables_read",
    "trail_text",
]

TRAIL_COLUMNS = ["queryid", "table", "seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "live_rows"]

_NAME = r'(?:"[^"]+"|[A-Za-z_][\w$]*)'
_TABLE_REFERENCE = re.compile(rf"\b(?:FROM|JOIN|UPDATE|INTO)\s+({_NAME}(?:\.{_NAME})?)", re.I)


def tables_read(query: str | None) -> list[str]:
    """Table names a statement mentions after FROM/JOIN/UPDATE/INTO (unqualified, lower-cased unless quoted)."""
    names = []
    for match in _TABLE_REFERENCE.finditer(query or ""):
        last = match.group(1).split(".")[-1]
        name = last.strip('"') if last.startswith('"') else last.lower()
        if name not in names:
            names.append(name)
    return names


def table_trail(statements: pd.DataFrame, tables: pd.DataFrame) -> pd.DataFrame:
    """For each statement shown, the tables it reads with their scans and rows read in the same period."""
    rows = []
    for stmt in statements.itertuples(index=False):
        for name in tables_read(stmt.query):
            for table in tables[tables["table"] == name].itertuples(index=False):
                rows.append(
                    {
                        "queryid": stmt.queryid,
                        "table": f"{table.schema}.{table.table}",
                        "seq_scan": table.seq_scan,
                        "seq_tup_read": table.seq_tup_read,
                        "idx_scan": table.idx_scan,
                        "idx_tup_fetch": table.idx_tup_fetch,
                        "live_rows": int(table.live_rows),
                    }
                )
    return pd.DataFrame(rows, columns=TRAIL_COLUMNS)


def trail_text(trail: pd.DataFrame | None, queryid: Any) -> str:
    """'public.items: 30 sequential scans reading 6,000,000 rows, 0 index scans' ('' when the statement read none
    of the tables sampled); the span is the finding's period, not repeated here."""
    if trail is None:
        return ""
    return "; ".join(
        f"{t.table}: {t.seq_scan:,} sequential scans reading {t.seq_tup_read:,} rows, {t.idx_scan:,} index scans"
        for t in trail[trail["queryid"] == queryid].itertuples(index=False)
    )
