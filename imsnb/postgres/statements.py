"""pg_stat_statements: the slowest statements by total or mean time (PostgreSQL 12 and 13+ column names)."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import psycopg

from imsnb.errors import NotAvailable
from imsnb.findings import Finding, Severity, judge, threshold, unjudged
from imsnb.period import Period
from imsnb.postgres.literals import excerpt, masked
from imsnb.postgres.session import Database, database_or_default
from imsnb.postgres.trail import trail_text
from imsnb.session import one_line

__all__ = [
    "ENABLE_STATEMENTS",
    "HIDDEN_STATEMENTS_ATTR",
    "STATEMENT_TIME_COLUMNS",
    "STATEMENTS_COLUMNS",
    "STATEMENTS_EXTENSION",
    "STATEMENTS_TEMPLATE",
    "slow_queries",
    "slow_queries_finding",
    "slowest_statements",
    "statement_time_columns",
    "statements",
]

# Where a sampled statements frame carries other roles' statements it could not tell apart (no queryid, no text for
# a role without pg_read_all_stats): {"calls", "total_ms"} over the period, or None when not countable
# (imsnb.sampling.postgres.statement_delta).
HIDDEN_STATEMENTS_ATTR = "imsnb.hidden_statements"

STATEMENTS_COLUMNS = """
SELECT attname
FROM pg_attribute
WHERE attrelid = to_regclass('pg_stat_statements')
    AND attname IN ('total_exec_time', 'total_time', 'toplevel')
"""

STATEMENTS_EXTENSION = """
SELECT extversion
FROM pg_extension
WHERE extname = 'pg_stat_statements'
"""

# -- the runbook's "identify slow queries", less imsnb's own statements (tagged by the session: postgres.session.TAG);
# {total}/{mean}/{order} are filled from STATEMENT_TIME_COLUMNS only
STATEMENTS_TEMPLATE = """
SELECT
    s.queryid::text AS queryid,
    d.datname AS database,
    r.rolname AS user,
    s.calls,
    s.{total}::float8 AS total_ms,
    s.{mean}::float8 AS mean_ms,
    s.rows,
    (s.shared_blks_hit::float8 / nullif(s.shared_blks_hit + s.shared_blks_read, 0)) AS hit_ratio,
    s.query
FROM pg_stat_statements AS s
LEFT JOIN pg_database AS d ON d.oid = s.dbid
LEFT JOIN pg_roles AS r ON r.oid = s.userid
WHERE s.{mean} >= %(min_mean_ms)s
    AND s.calls >= %(min_calls)s
    AND s.query NOT LIKE '/* imsnb */%%'
ORDER BY s.{order} DESC
LIMIT %(limit)s
"""
STATEMENT_TIME_COLUMNS = {
    "total_exec_time": {"total": "total_exec_time", "mean": "mean_exec_time"},  # PostgreSQL 13+
    "total_time": {"total": "total_time", "mean": "mean_time"},  # PostgreSQL 12 and older
}

ENABLE_STATEMENTS = (
    "Enable it: add pg_stat_statements to shared_preload_libraries, restart, then "
    "CREATE EXTENSION pg_stat_statements in this database"
)
# From pg_settings, which has no row for a setting the role may not read (shared_preload_libraries needs
# pg_read_all_settings): NULL then, where current_setting() would raise.
PRELOADED = """
SELECT 'pg_stat_statements' = ANY(regexp_split_to_array(setting, '\\s*,\\s*')) AS preloaded
FROM pg_settings
WHERE name = 'shared_preload_libraries'
"""


def statement_time_columns(db: Database) -> dict[str, str]:
    """The names of the total and mean time columns on this server (13+ or 12-), and `toplevel`: the expression
    telling a statement sent by a client from one run inside another (pg_stat_statements 1.9+, PostgreSQL 14; `true`
    before). NotAvailable (with how to enable it) when pg_stat_statements is not installed in this database."""
    if db.scalar(STATEMENTS_EXTENSION) is None:
        hint = ENABLE_STATEMENTS
        preloaded = db.scalar(PRELOADED)
        if preloaded:  # loaded at start already: no restart needed
            hint = f"It is preloaded already (no restart needed): CREATE EXTENSION pg_stat_statements in {db.label}"
        elif preloaded is None:  # this role may not read shared_preload_libraries
            hint = (
                "Whether it is preloaded could not be checked (reading shared_preload_libraries needs "
                f"pg_read_all_settings). {ENABLE_STATEMENTS}"
            )
        raise NotAvailable("pg_stat_statements is not installed in this database", hint)
    columns = set(db.frame(STATEMENTS_COLUMNS)["attname"])
    names = STATEMENT_TIME_COLUMNS["total_exec_time" if "total_exec_time" in columns else "total_time"]
    return {**names, "toplevel": "s.toplevel" if "toplevel" in columns else "true"}


def statements(
    db: Database | None = None, *, min_mean_ms: float = 0, min_calls: int = 1, limit: int = 10, by: str = "total"
) -> pd.DataFrame:
    """pg_stat_statements by total (or `by="mean"`) time, PostgreSQL 12 or 13+ column names, literals masked.

    Raises NotAvailable (with how to enable it) when the extension is not installed or not preloaded.
    """
    db = database_or_default(db)
    names = statement_time_columns(db)
    if by not in ("total", "mean"):
        raise ValueError(f"statements(by={by!r}): use 'total' or 'mean'")
    sql = STATEMENTS_TEMPLATE.format(**names, order=names[by])
    try:
        frame = db.frame(sql, {"min_mean_ms": float(min_mean_ms), "min_calls": int(min_calls), "limit": int(limit)})
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        raise NotAvailable(f"pg_stat_statements is not loaded ({one_line(exc)})", ENABLE_STATEMENTS) from None
    return masked(frame, "query")


def slow_queries(db: Database | None = None, *, min_mean_ms: float | None = None, limit: int = 10) -> pd.DataFrame:
    """The runbook's slow queries: mean time over `min_mean_ms` (default the catalogue's 100 ms), by total time."""
    if min_mean_ms is None:
        min_mean_ms = threshold("postgres.slow_queries").warning
    return statements(db, min_mean_ms=min_mean_ms, limit=limit)


def slowest_statements(db: Database | None = None, *, limit: int = 5) -> pd.DataFrame:
    """The runbook's API-timeout check: statements by mean time (`ORDER BY mean_time DESC LIMIT 5`)."""
    return statements(db, limit=limit, by="mean")


def slow_queries_finding(
    slow: pd.DataFrame,
    min_mean_ms: float | None = None,
    *,
    period: Period | None = None,
    trail: pd.DataFrame | None = None,
) -> Finding:
    """Any statement in `slow` (already filtered at `min_mean_ms`, the threshold shown) is at least a WARNING; slower
    ones escalate on the catalogue's levels. The slowest statement is named with its baseline mean (a
    `baseline_mean_ms` column, `Sample.statements`) and the tables it read (`trail`, `Sample.trail`).

    `period`: the span the means cover (a sample's deltas); None for pg_stat_statements' lifetime means."""
    limit = replace(threshold("postgres.slow_queries"), warning=min_mean_ms) if min_mean_ms is not None else None
    min_mean_ms = (limit or threshold("postgres.slow_queries")).warning
    hidden = slow.attrs.get(HIDDEN_STATEMENTS_ATTR, {"calls": 0})
    mean = hidden["total_ms"] / hidden["calls"] if hidden and hidden["calls"] > 0 else None
    if slow.empty:
        if mean is not None and mean >= min_mean_ms:
            return judge(  # a mean of many statements at the level: one of them at least is above it
                "postgres.slow_queries", round(mean, 1),
                f"at least one of other roles' statements averages ≥ {min_mean_ms:g} ms{_hidden_text(hidden)}",
                floor=Severity.WARNING, limit=limit, period=period,
            )  # fmt: skip
        return unjudged(
            "postgres.slow_queries", Severity.OK,
            f"no statement averages {min_mean_ms:g} ms or more{_hidden_text(hidden)}", limit=limit, value=0,
            period=period,
        )  # fmt: skip
    worst = slow.sort_values("mean_ms", ascending=False).iloc[0]
    baseline = worst.get("baseline_mean_ms")
    baseline = f" (baseline {baseline:.1f} ms)" if baseline is not None and pd.notna(baseline) else ""
    tables = trail_text(trail, worst["queryid"])
    shown = ("queryid", "calls", "mean_ms", "before_mean_ms", "baseline_mean_ms", "total_ms", "query")
    return judge(
        "postgres.slow_queries",
        round(float(worst["mean_ms"]), 1),
        f"{len(slow)} statement(s) average ≥ {min_mean_ms:g} ms; slowest {worst['mean_ms']:.0f} ms mean over "
        f"{int(worst['calls'])} calls{baseline}: {excerpt(worst['query'])}"
        + (f". Tables it read: {tables}" if tables else "")
        + _hidden_text(hidden),
        evidence=slow[[c for c in shown if c in slow]],
        floor=Severity.WARNING,
        limit=limit,
        period=period,
    )


def _hidden_text(hidden: dict[str, float] | None) -> str:
    """What the sample could not tell apart: other roles' statements, whose ids and text this role may not read."""
    grant = "their ids and text are hidden from this role (GRANT pg_read_all_stats)"
    if hidden is None:
        return f"; other roles' statements could not be counted over the period: {grant}"
    if not hidden["calls"]:
        return ""
    mean = hidden["total_ms"] / hidden["calls"]
    return (
        f"; {int(hidden['calls']):,} calls of other roles' statements ({hidden['total_ms']:,.0f} ms, {mean:,.1f} ms "
        f"mean) could not be told apart: {grant}"
    )
