"""Sessions waiting on a lock, and the sessions they wait for (pg_blocking_pids)."""

from __future__ import annotations

import pandas as pd

from imsnb.findings import Finding, Severity, judge
from imsnb.postgres.literals import masked
from imsnb.postgres.session import Database, database_or_default

__all__ = [
    "BLOCKED_QUERIES",
    "blocked_queries",
    "blocked_queries_finding",
]

# Lock waits only: pg_blocking_pids is called for sessions waiting on a lock, not for every backend.
LOCK_WAITS = """
WITH waits AS (
    SELECT pid, unnest(pg_blocking_pids(pid)) AS blocking_pid
    FROM pg_stat_activity
    WHERE wait_event_type = 'Lock'
)
"""

BLOCKED_QUERIES = (
    LOCK_WAITS
    + """
SELECT
    blocked.pid,
    blocked.usename AS user,
    blocked.application_name AS application,
    extract(epoch FROM now() - blocked.query_start)::float8 AS waiting_s,
    blocked.wait_event AS lock_type,
    blocked.query,
    blocking.pid AS blocking_pid,
    blocking.usename AS blocking_user,
    blocking.application_name AS blocking_application,
    blocking.state AS blocking_state,
    extract(epoch FROM now() - blocking.xact_start)::float8 AS blocking_xact_age_s,
    blocking.query AS blocking_query
FROM waits
JOIN pg_stat_activity AS blocked ON blocked.pid = waits.pid
JOIN pg_stat_activity AS blocking ON blocking.pid = waits.blocking_pid
ORDER BY waiting_s DESC NULLS LAST, blocked.pid
LIMIT %(limit)s
"""
)


def blocked_queries(db: Database | None = None, *, limit: int = 100) -> pd.DataFrame:
    """One row per (waiting session, session it waits for), from pg_blocking_pids, longest wait first."""
    return masked(database_or_default(db).frame(BLOCKED_QUERIES, {"limit": int(limit)}), "query", "blocking_query")


def blocked_queries_finding(blocked: pd.DataFrame) -> Finding:
    """Any session waiting on a lock is at least a WARNING; longer waits escalate by the catalogue."""
    if blocked.empty:
        return Finding.ok("postgres.blocked_queries", "no session waits on a lock", value=0, unit="s")
    longest = float(blocked["waiting_s"].max())
    finding = judge(
        "postgres.blocked_queries",
        round(longest, 1),
        f"{blocked['pid'].nunique()} session(s) wait on locks held by {sorted(set(blocked['blocking_pid']))}; "
        f"longest wait {longest:.0f} s",
        evidence=blocked[["pid", "waiting_s", "blocking_pid", "blocking_state", "query", "blocking_query"]],
        floor=Severity.WARNING,
    )
    return finding
