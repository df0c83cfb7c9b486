"""Exact row counts of named tables, judged against expected counts (verification after a restore)."""

from __future__ import annotations

import pandas as pd
import psycopg
from psycopg import sql as pgsql

from imsnb import config
from imsnb.errors import Unreachable
from imsnb.findings import Finding, Severity
from imsnb.postgres.session import Database, database_or_default
from imsnb.session import one_line

__all__ = [
    "ROW_COUNT",
    "expected_row_counts",
    "row_count_findings",
    "table_row_counts",
    "verification_database",
]

# Row counts for verification: the table name is an identifier, never text pasted into SQL.
ROW_COUNT = pgsql.SQL("SELECT count(*) AS row_count FROM {table}")


def table_row_counts(db: Database | None, tables: list[str]) -> pd.DataFrame:
    """Exact row counts of the named tables (`schema.table` or `table`); a table that cannot be counted (missing,
    no permission, over the statement timeout) gets its error instead of a count."""
    rows = []
    for name in tables:
        parts = [p for p in str(name).split(".") if p]
        if not parts or len(parts) > 2:
            rows.append({"table": name, "rows": None, "error": "not a table name: use table or schema.table"})
            continue
        try:
            count = database_or_default(db).scalar(ROW_COUNT.format(table=pgsql.Identifier(*parts)))
            rows.append({"table": name, "rows": int(count), "error": None})
        except Unreachable:
            raise
        except psycopg.Error as exc:
            rows.append({"table": name, "rows": None, "error": one_line(exc)})
    return pd.DataFrame(rows, columns=["table", "rows", "error"])


def row_count_findings(counts: pd.DataFrame, expected: dict[str, int], *, tolerance: float = 0.0) -> list[Finding]:
    """One finding per table: OK when its count is within `tolerance` (a fraction) of the expected count, ERROR when
    it differs or could not be counted."""
    found = []
    for row in counts.itertuples():
        want = expected.get(row.table)
        if row.rows is None or pd.isna(row.rows):
            message = f"{row.table}: {row.error}"
            found.append(Finding.of("postgres.row_count", Severity.ERROR, message, threshold=want, unit="rows"))
            continue
        if want is None:
            message, severity = f"{row.table}: {int(row.rows):,} rows (no expectation given)", Severity.INFO
        elif abs(row.rows - want) <= tolerance * want:
            message, severity = f"{row.table}: {int(row.rows):,} rows as expected", Severity.OK
        else:
            message = f"{row.table}: {int(row.rows):,} rows, expected {int(want):,}"
            severity = Severity.ERROR
        found.append(
            Finding.of("postgres.row_count", severity, message, value=int(row.rows), threshold=want, unit="rows")
        )
    return found


def expected_row_counts(entries: list[str]) -> dict[str, int | None]:
    """["orders=20000", "customers"] -> {"orders": 20000, "customers": None} (None: count only)."""
    expected: dict[str, int | None] = {}
    for entry in entries:
        table, _, count = str(entry).partition("=")
        if not table.strip():
            raise ValueError(f"{entry!r} names no table: use table=rows or table")
        try:
            expected[table.strip()] = int(count) if count.strip() else None
        except ValueError:
            raise ValueError(f"{entry!r}: the expected row count must be a whole number") from None
    return expected


def verification_database(
    application: str, conninfo: str = "", instances: pd.DataFrame | None = None
) -> Database | None:
    """The server a restore is verified on: `conninfo` (libpq, without a password) if given, else the endpoint of
    the first instance in `instances` (an `aws.rds.instances` table) that has one, with the usual target's user and
    database; None when there is neither. The password goes only where `config.postgres_settings_for` allows."""
    endpoints = instances["endpoint"].dropna() if instances is not None and not instances.empty else []
    endpoint = str(endpoints.iloc[0]) if len(endpoints) else None
    if not conninfo and not endpoint:
        return None
    return Database(application, settings=config.postgres_settings_for(conninfo, host=None if conninfo else endpoint))
