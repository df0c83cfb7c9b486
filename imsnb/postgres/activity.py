"""What sessions are doing: statements running long, sessions idle inside an open transaction."""

from __future__ import annotations

import pandas as pd

from imsnb.findings import Finding, Severity, judge, threshold
from imsnb.postgres.connections import HIDDEN_BACKEND
from imsnb.postgres.literals import excerpt, masked
from imsnb.postgres.locks import LOCK_WAITS
from imsnb.postgres.session import Database, database_or_default

__all__ = [
    "HIDDEN_SESSIONS",
    "IDLE_IN_TRANSACTION",
    "RUNNING_QUERIES",
    "hidden_text",
    "idle_in_transaction",
    "idle_in_transaction_finding",
    "long_running_finding",
    "long_running_queries",
    "running_queries",
]

# Other roles' client sessions whose state this role may not see (no pg_read_all_stats): pid, user and database
# only (connections.HIDDEN_BACKEND: CONNECTIONS_BY_STATE counts them as "hidden"). A session of theirs running long
# or idle in a transaction cannot be seen, so an OK here says how many it could not look at.
HIDDEN_SESSIONS = f"""
SELECT count(*)::int AS hidden
FROM pg_stat_activity
WHERE {HIDDEN_BACKEND}
"""
HIDDEN_ATTR = "imsnb.hidden_sessions"  # where a session frame carries that count (pandas `DataFrame.attrs`)

# Ages are taken at clock_timestamp(), not now(): now() is when imsnb's statement started, before it read
# pg_stat_activity, so a session that changed state in between (every few microseconds under load) would have a
# negative age and fall out of a ">= 0 s" filter, while connections_by_state counted it.
# -- from PgHero's running_queries, with the wait event and the transaction's age
RUNNING_QUERIES = """
SELECT
    pid,
    usename AS user,
    application_name AS application,
    client_addr::text AS client,
    state,
    extract(epoch FROM clock_timestamp() - query_start)::float8 AS duration_s,
    extract(epoch FROM clock_timestamp() - xact_start)::float8 AS xact_age_s,
    wait_event_type,
    wait_event,
    backend_start,
    query_start,
    query
FROM pg_stat_activity
WHERE backend_type = 'client backend'
    AND state <> 'idle'
    AND state NOT LIKE 'idle in transaction%%'
    AND pid <> pg_backend_pid()
    AND clock_timestamp() - query_start >= make_interval(secs => %(min_duration_s)s)
ORDER BY query_start
LIMIT %(limit)s
"""


def running_queries(db: Database | None = None, *, min_duration_s: float = 0, limit: int = 100) -> pd.DataFrame:
    """Active statements (not idle, not idle in transaction) other than this session's, oldest first."""
    db = database_or_default(db)
    frame = db.frame(RUNNING_QUERIES, {"min_duration_s": float(min_duration_s), "limit": int(limit)})
    return _with_hidden(db, masked(frame, "query"))


def long_running_queries(db: Database | None = None, *, min_duration_s: float = 60, limit: int = 100) -> pd.DataFrame:
    """Statements running for at least `min_duration_s` seconds."""
    return running_queries(db, min_duration_s=min_duration_s, limit=limit)


def long_running_finding(running: pd.DataFrame, min_duration_s: float | None = None) -> Finding:
    limit = threshold("postgres.long_running")
    min_duration_s = limit.warning if min_duration_s is None else min_duration_s
    long = running[running["duration_s"] >= min_duration_s] if not running.empty else running
    if long.empty:
        return Finding.ok(
            "postgres.long_running",
            f"no statement has run for {min_duration_s:g} s or more{hidden_text(running)}",
            value=0,
            threshold=min_duration_s,
            unit="s",
        )
    longest = long.iloc[long["duration_s"].argmax()]
    return judge(
        "postgres.long_running",
        round(float(longest["duration_s"]), 1),
        f"{len(long)} statement(s) running ≥ {min_duration_s:g} s; longest pid {longest['pid']} "
        f"{longest['duration_s']:.0f} s: {excerpt(longest['query'])}",
        evidence=long[["pid", "user", "duration_s", "wait_event_type", "query"]],
        floor=Severity.WARNING,
    )


IDLE_IN_TRANSACTION = (
    LOCK_WAITS
    + """
SELECT
    activity.pid,
    activity.usename AS user,
    activity.application_name AS application,
    activity.client_addr::text AS client,
    activity.state,
    extract(epoch FROM clock_timestamp() - activity.xact_start)::float8 AS xact_age_s,
    extract(epoch FROM clock_timestamp() - activity.state_change)::float8 AS idle_s,
    (SELECT count(*) FROM waits WHERE waits.blocking_pid = activity.pid)::int AS blocking,
    activity.backend_start,
    activity.query_start,
    activity.query AS last_query
FROM pg_stat_activity AS activity
WHERE activity.state LIKE 'idle in transaction%%'
    AND clock_timestamp() - activity.state_change >= make_interval(secs => %(min_idle_s)s)
ORDER BY blocking DESC, xact_age_s DESC
LIMIT %(limit)s
"""
)


def idle_in_transaction(db: Database | None = None, *, min_idle_s: float = 0, limit: int = 100) -> pd.DataFrame:
    """Sessions idle inside an open transaction, with how many sessions each one blocks."""
    db = database_or_default(db)
    frame = db.frame(IDLE_IN_TRANSACTION, {"min_idle_s": float(min_idle_s), "limit": int(limit)})
    return _with_hidden(db, masked(frame, "last_query"))


def _with_hidden(db: Database, frame: pd.DataFrame) -> pd.DataFrame:
    frame.attrs[HIDDEN_ATTR] = int(db.scalar(HIDDEN_SESSIONS) or 0)
    return frame


def hidden_text(frame: pd.DataFrame) -> str:
    """'; 12 sessions of other roles are hidden from this role (GRANT pg_monitor: postgres.visibility)', or ''."""
    hidden = int(frame.attrs.get(HIDDEN_ATTR, 0))
    if not hidden:
        return ""
    return f"; {hidden} session(s) of other roles are hidden from this role (GRANT pg_monitor: postgres.visibility)"


def idle_in_transaction_finding(idle: pd.DataFrame, min_age_s: float | None = None) -> Finding:
    """A session idle in a transaction that blocks others is at least WARNING at any age; others past min_age_s."""
    limit = threshold("postgres.idle_in_transaction")
    min_age_s = limit.warning if min_age_s is None else min_age_s
    if idle.empty:
        return Finding.ok(
            "postgres.idle_in_transaction",
            f"no session is idle in a transaction{hidden_text(idle)}",
            value=0,
            threshold=min_age_s,
            unit="s",
        )
    blocking = idle[idle["blocking"] > 0]
    old = idle[idle["xact_age_s"] >= min_age_s]
    flagged = idle[(idle["blocking"] > 0) | (idle["xact_age_s"] >= min_age_s)]
    oldest = float(idle["xact_age_s"].max())
    if flagged.empty:
        return Finding.ok(
            "postgres.idle_in_transaction",
            f"{len(idle)} session(s) idle in transaction, none blocking, oldest {oldest:.0f} s{hidden_text(idle)}",
            value=round(oldest, 1),
            threshold=min_age_s,
            unit="s",
        )
    return judge(
        "postgres.idle_in_transaction",
        round(oldest, 1),
        f"{len(flagged)} session(s) idle in transaction: {len(blocking)} blocking others "
        f"(pids {sorted(blocking['pid'].tolist())}), {len(old)} older than {min_age_s:g} s; oldest {oldest:.0f} s",
        evidence=flagged[["pid", "user", "application", "xact_age_s", "idle_s", "blocking", "last_query"]],
        floor=Severity.WARNING,
    )
