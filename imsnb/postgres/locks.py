"""Sessions waiting on a lock, and the sessions they wait for (pg_blocking_pids)."""

from __future__ import annotations

import pandas as pd

from imsnb.findings import Finding, Severity, judge, unjudged
from imsnb.postgres.literals import masked
from imsnb.postgres.session import Database, database_or_default

__all__ = [
    "BLOCKED_QUERIES",
    "blocked_queries",
    "blocked_queries_finding",
]

# Lock waits only, read from pg_locks: every role sees every lock there (pg_stat_activity hides another role's wait
# event without pg_read_all_stats), and pg_blocking_pids is called for waiting sessions only, not for every backend.
# waitstart (PostgreSQL 14+; read through to_jsonb so 13 and older get NULL) times the wait whatever the role sees.
LOCK_WAITS = """
WITH waiting AS (
    SELECT
        l.pid,
        min((to_jsonb(l) ->> 'waitstart')::timestamptz) AS waitstart
    FROM pg_locks AS l
    WHERE NOT l.granted
        AND l.pid IS NOT NULL
    GROUP BY l.pid
),
waits AS (
    SELECT pid, waitstart, unnest(pg_blocking_pids(pid)) AS blocking_pid
    FROM waiting
)
"""

# The sessions' details from pg_stat_activity where the role may see them (NULL where it may not, or with
# track_activities off); the wait's start from pg_locks, else the waiting statement's start.
BLOCKED_QUERIES = (
    LOCK_WAITS
    + """
SELECT
    waits.pid,
    blocked.usename AS user,
    blocked.application_name AS application,
    greatest(extract(epoch FROM now() - coalesce(waits.waitstart, blocked.query_start)), 0)::float8 AS waiting_s,
    blocked.wait_event AS lock_type,
    blocked.query,
    waits.blocking_pid,
    blocking.usename AS blocking_user,
    blocking.application_name AS blocking_application,
    blocking.state AS blocking_state,
    extract(epoch FROM now() - blocking.xact_start)::float8 AS blocking_xact_age_s,
    blocking.query AS blocking_query
FROM waits
LEFT JOIN pg_stat_activity AS blocked ON blocked.pid = waits.pid
LEFT JOIN pg_stat_activity AS blocking ON blocking.pid = waits.blocking_pid
ORDER BY waiting_s DESC NULLS LAST, waits.pid
LIMIT %(limit)s
"""
)


def blocked_queries(db: Database | None = None, *, limit: int = 100) -> pd.DataFrame:
    """One row per (waiting session, session it waits for), from pg_blocking_pids, longest wait first."""
    return masked(database_or_default(db).frame(BLOCKED_QUERIES, {"limit": int(limit)}), "query", "blocking_query")


def blocked_queries_finding(blocked: pd.DataFrame) -> Finding:
    """Any session waiting on a lock is at least a WARNING; longer waits escalate by the catalogue. A wait whose start
    is unknown (track_activities off before PostgreSQL 14) is a WARNING saying so."""
    if blocked.empty:
        return Finding.ok("postgres.blocked_queries", "no session waits on a lock", value=0, unit="s")
    longest = float(blocked["waiting_s"].max())  # NaN when no wait's start is known
    holders = [
        str(pid) if pid else "a prepared transaction (pg_prepared_xacts)"
        for pid in sorted(set(blocked["blocking_pid"]))
    ]
    message = f"{blocked['pid'].nunique()} session(s) wait on locks held by [{', '.join(holders)}]; "
    evidence = blocked[["pid", "waiting_s", "blocking_pid", "blocking_state", "query", "blocking_query"]]
    if pd.isna(longest):
        return unjudged(
            "postgres.blocked_queries", Severity.WARNING, message + "how long they have waited is unknown",
            evidence=evidence,
        )  # fmt: skip
    return judge(
        "postgres.blocked_queries",
        round(longest, 1),
        message + f"longest wait {longest:.0f} s",
        evidence=evidence,
        floor=Severity.WARNING,
    )
