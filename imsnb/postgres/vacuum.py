"""Autovacuum falling behind: the tables whose dead rows are furthest past the point where autovacuum should have
started on them (pg_stat_user_tables, each table's own settings)."""

from __future__ import annotations

import pandas as pd

from imsnb.findings import Finding, Severity, judge, threshold, unjudged
from imsnb.postgres.session import Database, database_or_default

__all__ = [
    "DEAD_ROWS",
    "dead_rows",
    "dead_rows_finding",
]

# autovacuum_at: the dead rows at which autovacuum starts on the table, as autovacuum itself computes it:
# autovacuum_vacuum_threshold + autovacuum_vacuum_scale_factor * reltuples, each from the table's own storage
# parameters when set, else the server's; autovacuum_on: the server's `autovacuum` and the table's own switch.
DEAD_ROWS = """
WITH tables AS (
    SELECT
        s.schemaname AS schema,
        s.relname AS table,
        s.n_live_tup AS live_rows,
        s.n_dead_tup AS dead_rows,
        round(
            coalesce(o.vacuum_threshold, current_setting('autovacuum_vacuum_threshold')::float8)
            + coalesce(o.vacuum_scale_factor, current_setting('autovacuum_vacuum_scale_factor')::float8)
            * greatest(c.reltuples, 0)
        ) AS autovacuum_at,
        coalesce(o.enabled, true) AND current_setting('autovacuum')::bool AS autovacuum_on,
        p.phase AS vacuuming,
        s.last_autovacuum,
        s.last_vacuum
    FROM pg_stat_user_tables AS s
    JOIN pg_class AS c ON c.oid = s.relid
    LEFT JOIN LATERAL (
        SELECT
            max(option_value) FILTER (WHERE option_name = 'autovacuum_vacuum_threshold')::float8 AS vacuum_threshold,
            max(option_value) FILTER (
                WHERE option_name = 'autovacuum_vacuum_scale_factor'
            )::float8 AS vacuum_scale_factor,
            max(option_value) FILTER (WHERE option_name = 'autovacuum_enabled')::bool AS enabled
        FROM pg_options_to_table(c.reloptions)
    ) AS o ON true
    LEFT JOIN pg_stat_progress_vacuum AS p ON p.relid = s.relid
    WHERE s.n_live_tup + s.n_dead_tup >= %(min_rows)s
)
SELECT
    *,
    dead_rows / greatest(autovacuum_at, 1) AS past_autovacuum
FROM tables
ORDER BY past_autovacuum DESC, dead_rows DESC
LIMIT %(limit)s
"""


def dead_rows(db: Database | None = None, *, min_rows: int = 10_000, limit: int = 20) -> pd.DataFrame:
    """Tables of `min_rows` rows or more (live and dead), those whose dead rows are furthest past their autovacuum
    trigger first: schema, table, live_rows, dead_rows, autovacuum_at (the dead rows at which autovacuum starts on
    it), autovacuum_on, vacuuming (the phase of a VACUUM running on it now, else None), last_autovacuum,
    last_vacuum, past_autovacuum (dead_rows / autovacuum_at). Row counts are the statistics' estimates, as
    autovacuum reads them. Small tables are left out: a few dead rows there cost nothing."""
    return database_or_default(db).frame(DEAD_ROWS, {"min_rows": int(min_rows), "limit": int(limit)})


def dead_rows_finding(tables: pd.DataFrame) -> Finding:
    """The table whose dead rows are furthest past the point where autovacuum starts on it, and why it has not run:
    switched off for the table (or the server: said even below the point), running now, or last run when."""
    check = "postgres.dead_rows"
    if tables.empty:
        return unjudged(check, Severity.OK, "no table large enough to judge")
    worst = tables.iloc[0]
    past = float(worst["past_autovacuum"])
    message = (
        f"{worst['schema']}.{worst['table']}: {int(worst['dead_rows']):,} dead rows beside "
        f"{int(worst['live_rows']):,} live, {past:.1f}x the {int(worst['autovacuum_at']):,} at which autovacuum "
        f"starts on it (kept under {threshold(check).warning:g}x){_why_not_vacuumed(worst)}"
    )
    return judge(check, round(past, 2), message, evidence=tables)


def _why_not_vacuumed(table: pd.Series) -> str:
    """Why autovacuum has not cleaned the table, when it is due (or can never be)."""
    if not bool(table["autovacuum_on"]):
        return "; autovacuum is off for it (the table's autovacuum_enabled or the server's autovacuum)"
    if isinstance(table["vacuuming"], str) and table["vacuuming"]:
        return f"; a VACUUM is running on it ({table['vacuuming']})"
    if float(table["past_autovacuum"]) < 1:
        return ""
    last = table["last_autovacuum"]
    if pd.isna(last):  # NaT, not None, once another row has a time: `or` would keep it
        return "; no autovacuum of it since the statistics were reset"
    at = pd.Timestamp(last)  # in the session's TimeZone, which need not be UTC
    return f"; last autovacuum {at.tz_convert('UTC') if at.tzinfo else at:%Y-%m-%d %H:%M} UTC"
