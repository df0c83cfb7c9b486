"""Is the server there, and how full is it: server info, reachability, connections by state against max_connections."""

from __future__ import annotations

from typing import Any

import pandas as pd

from imsnb import session
from imsnb.errors import ImsnbError
from imsnb.findings import Finding, Severity, judge
from imsnb.postgres.plans import plan_access_gap
from imsnb.postgres.session import Database, database_or_default

__all__ = [
    "CONNECTIONS_BY_STATE",
    "HIDDEN_BACKEND",
    "MAX_CONNECTIONS",
    "SERVER_INFO",
    "VISIBILITY",
    "connections_by_state",
    "connections_finding",
    "max_connections",
    "reachable_finding",
    "server_info",
    "visibility_finding",
]

SERVER_INFO = """
SELECT
    current_setting('server_version') AS version,
    current_database() AS database,
    current_user AS user,
    pg_is_in_recovery() AS in_recovery,
    extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_s
"""

MAX_CONNECTIONS = """
SELECT setting::int AS max_connections
FROM pg_settings
WHERE name = 'max_connections'
"""

# Without pg_read_all_stats (pg_monitor has it), other roles' sessions show no state, query or wait, their locks no
# query, and their pg_stat_statements rows no queryid; with track_counts or track_activities off the statistics
# views read zero or empty, and with pg_stat_statements.track = none no statement is recorded. Either way the
# diagnostics would read "nothing wrong" for what they cannot see. role_sql: the role's name as SQL (quoted as needed).
VISIBILITY = """
SELECT
    current_user AS role,
    quote_ident(current_user) AS role_sql,
    pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS reads_all_stats,
    current_setting('track_counts')::bool AS track_counts,
    current_setting('track_activities')::bool AS track_activities,
    current_setting('pg_stat_statements.track', true) AS statements_track
"""

# Another role's session, to a role without pg_read_all_stats, shows its pid, user and database but no backend type or
# state: it is counted (it holds a connection all the same) as "hidden". A backend with a user and a database is a
# client (autovacuum and the server's own processes have no user, a physical WAL sender no database). HIDDEN_BACKEND
# is that condition on pg_stat_activity, for every query that counts such sessions.
HIDDEN_BACKEND = "backend_type IS NULL AND usesysid IS NOT NULL AND datid IS NOT NULL"
CONNECTIONS_BY_STATE = f"""
SELECT
    CASE WHEN backend_type IS NULL THEN 'hidden' ELSE coalesce(state, 'unknown') END AS state,
    count(*)::int AS connections
FROM pg_stat_activity
WHERE backend_type = 'client backend'
    OR ({HIDDEN_BACKEND})
GROUP BY 1
ORDER BY 2 DESC, 1
"""


def server_info(db: Database | None = None) -> dict[str, Any]:
    """Version, database, user, whether it is a replica, uptime."""
    return database_or_default(db).frame(SERVER_INFO).iloc[0].to_dict()


def max_connections(db: Database | None = None) -> int:
    return int(database_or_default(db).scalar(MAX_CONNECTIONS))


def connections_by_state(db: Database | None = None) -> pd.DataFrame:
    """Client connections per state (active, idle, idle in transaction, ...): columns state, connections. Other
    roles' sessions whose state this role may not see (no pg_read_all_stats) are counted as state "hidden"."""
    return database_or_default(db).frame(CONNECTIONS_BY_STATE)


def reachable_finding(db: Database | None = None) -> Finding:
    """OK with the server's version and the connect time, or CRITICAL with the error (never raises)."""
    db = database_or_default(db)

    def connected() -> str:
        info = server_info(db)
        role = "replica" if info["in_recovery"] else "primary"
        return f"connected to {db.label}: PostgreSQL {info['version']} ({role})"

    return session.reachable_finding("postgres", connected)


def visibility_finding(db: Database | None = None) -> Finding | None:
    """WARNING when the role imsnb connects as cannot see other roles' sessions and statements (no pg_monitor /
    pg_read_all_stats): every session, lock and statement check would read OK for what it cannot see. INFO when all
    it lacks is the planner's plans (tables it may not read and no `imsnb.explain_generic`), naming the grant or the
    function. OK when it sees everything; None when the server cannot be read at all (`postgres.reachable` says why)."""
    try:
        row = database_or_default(db).frame(VISIBILITY).iloc[0]
    except ImsnbError:
        return None
    hidden = []
    if not bool(row["reads_all_stats"]):
        hidden.append(
            f"role {row['role']} cannot see other roles' session states, queries or statement texts: their sessions "
            f"count as connections and their lock waits and statement times are judged, but a session of theirs "
            f"idle in a transaction or running long cannot be seen; "
            f"GRANT pg_monitor TO {row['role_sql']}"
        )
    for setting, what in (
        ("track_counts", "table scans and hit ratios read zero, and autovacuum cannot run"),
        ("track_activities", "no session shows its state or query"),
    ):
        if not bool(row[setting]):
            hidden.append(f"{setting} is off: {what}; set {setting} = on")
    if row["statements_track"] == "none":
        hidden.append(
            "pg_stat_statements.track is none: no statement is recorded, so none can read slow or regressed; "
            "set pg_stat_statements.track = top"
        )
    # Plans it cannot take make no check read a false OK; they leave the "why" unexplained: INFO, worth knowing.
    unplanned = plan_access_gap(database_or_default(db))
    if not hidden and unplanned is None:
        return Finding.ok("postgres.visibility", f"role {row['role']} sees every session and statement")
    severity = Severity.WARNING if hidden else Severity.INFO
    said = hidden if unplanned is None else [*hidden, unplanned]
    return Finding.of("postgres.visibility", severity, "; ".join(said))


def connections_finding(by_state: pd.DataFrame, max_conn: int) -> Finding:
    used = int(by_state["connections"].sum()) if not by_state.empty else 0
    ratio = used / max_conn if max_conn else 0.0
    states = ", ".join(f"{r.state} {r.connections}" for r in by_state.itertuples())
    hidden = "hidden" in set(by_state["state"])
    hidden = (
        " (hidden: other roles' sessions, state not visible to this role; their parallel workers count too)"
        if hidden
        else ""
    )
    return judge(
        "postgres.connections_used",
        round(ratio, 4),
        f"{used} of {max_conn} connections in use ({ratio:.0%}): {states or 'none'}{hidden}",
        evidence=by_state,
    )
