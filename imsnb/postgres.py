"""PostgreSQL diagnostics: each function returns a DataFrame (or a number) named for what it holds.

Every session is read-only and bounded (see `Database`); catalogue queries borrow from PgHero and the runbook.
Query text shown anywhere has its literals replaced by `?` (`mask_literals`).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
from pglast.parser import ParseError, scan
from psycopg import sql as pgsql

from imsnb import config
from imsnb.errors import NotAvailable, NotConfigured, Unreachable
from imsnb.findings import Finding, Severity, judge, threshold

STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 1000
CONNECT_TIMEOUT_S = 5
CLIENT_GRACE_S = 5  # how long past statement_timeout the client waits before giving the server up
XID_LIMIT = 2**31

# --- SQL -------------------------------------------------------------------------------------------------------

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

CONNECTIONS_BY_STATE = """
SELECT
    coalesce(state, 'unknown') AS state,
    count(*)::int AS connections
FROM pg_stat_activity
WHERE backend_type = 'client backend'
GROUP BY 1
ORDER BY 2 DESC, 1
"""

# -- from PgHero's running_queries, with the wait event and the transaction's age
RUNNING_QUERIES = """
SELECT
    pid,
    usename AS user,
    application_name AS application,
    client_addr::text AS client,
    state,
    extract(epoch FROM now() - query_start)::float8 AS duration_s,
    extract(epoch FROM now() - xact_start)::float8 AS xact_age_s,
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
    AND now() - query_start >= make_interval(secs => %(min_duration_s)s)
ORDER BY query_start
LIMIT %(limit)s
"""

# Lock waits only: pg_blocking_pids is called for sessions waiting on a lock, not for every backend.
BLOCKED_QUERIES = """
WITH waits AS (
    SELECT pid, unnest(pg_blocking_pids(pid)) AS blocking_pid
    FROM pg_stat_activity
    WHERE wait_event_type = 'Lock'
)
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

IDLE_IN_TRANSACTION = """
WITH waits AS (
    SELECT pid, unnest(pg_blocking_pids(pid)) AS blocking_pid
    FROM pg_stat_activity
    WHERE wait_event_type = 'Lock'
)
SELECT
    activity.pid,
    activity.usename AS user,
    activity.application_name AS application,
    activity.client_addr::text AS client,
    activity.state,
    extract(epoch FROM now() - activity.xact_start)::float8 AS xact_age_s,
    extract(epoch FROM now() - activity.state_change)::float8 AS idle_s,
    (SELECT count(*) FROM waits WHERE waits.blocking_pid = activity.pid)::int AS blocking,
    activity.backend_start,
    activity.query_start,
    activity.query AS last_query
FROM pg_stat_activity AS activity
WHERE activity.state LIKE 'idle in transaction%%'
    AND now() - activity.state_change >= make_interval(secs => %(min_idle_s)s)
ORDER BY blocking DESC, xact_age_s DESC
LIMIT %(limit)s
"""

STATEMENTS_COLUMNS = """
SELECT attname
FROM pg_attribute
WHERE attrelid = to_regclass('pg_stat_statements')
    AND attname IN ('total_exec_time', 'total_time')
"""

STATEMENTS_EXTENSION = """
SELECT extversion
FROM pg_extension
WHERE extname = 'pg_stat_statements'
"""

# -- the runbook's "identify slow queries"; {total}/{mean}/{order} are filled from STATEMENT_TIME_COLUMNS only
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
ORDER BY s.{order} DESC
LIMIT %(limit)s
"""
STATEMENT_TIME_COLUMNS = {
    "total_exec_time": {"total": "total_exec_time", "mean": "mean_exec_time"},  # PostgreSQL 13+
    "total_time": {"total": "total_time", "mean": "mean_time"},  # PostgreSQL 12 and older
}

CACHE_HIT_RATIO = """
SELECT
    datname AS database,
    blks_hit,
    blks_read,
    (blks_hit::float8 / nullif(blks_hit + blks_read, 0)) AS hit_ratio
FROM pg_stat_database
WHERE datname IS NOT NULL
    AND datname NOT IN ('template0', 'template1')
ORDER BY blks_hit + blks_read DESC
LIMIT %(limit)s
"""

DATABASE_SIZES = """
SELECT
    database,
    size_bytes,
    pg_size_pretty(size_bytes) AS size
FROM (
    SELECT datname AS database, pg_database_size(datname)::bigint AS size_bytes
    FROM pg_database
    WHERE datallowconn
) AS sizes
ORDER BY size_bytes DESC
LIMIT %(limit)s
"""

# -- from PgHero's transaction_id_danger
TRANSACTION_ID_AGE = """
SELECT
    datname AS database,
    age(datfrozenxid)::bigint AS xid_age,
    (age(datfrozenxid)::float8 / %(xid_limit)s) AS wraparound_ratio,
    current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age
FROM pg_database
ORDER BY xid_age DESC
LIMIT %(limit)s
"""

REPLICATION_LAG_PRIMARY = """
SELECT
    'primary' AS role,
    application_name AS replica,
    client_addr::text AS client,
    state,
    coalesce(extract(epoch FROM replay_lag), 0)::float8 AS lag_s,
    pg_wal_lsn_diff(sent_lsn, replay_lsn)::float8 AS lag_bytes
FROM pg_stat_replication
ORDER BY lag_s DESC
"""

REPLICATION_LAG_REPLICA = """
SELECT
    'replica' AS role,
    coalesce(nullif(current_setting('cluster_name'), ''), 'this server') AS replica,
    NULL::text AS client,
    'streaming' AS state,
    CASE
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())
    END::float8 AS lag_s,
    pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS lag_bytes
"""

# --- literals ---------------------------------------------------------------------------------------------------

# PostgreSQL's own lexer (libpg_query, through pglast) names every token; these are the ones whose text is data.
_LITERAL_TOKENS = frozenset({"SCONST", "USCONST", "BCONST", "XCONST", "ICONST", "FCONST"})
_NUMERIC_TOKENS = frozenset({"ICONST", "FCONST"})
_COMMENT_MASKS = {"C_COMMENT": "/* ? */", "SQL_COMMENT": "-- ?"}


def mask_literals(sql: str | None) -> str | None:
    """Query text with every literal (string, bit, hex, numeric, dollar-quoted) and comment replaced by `?`.

    Tokens come from PostgreSQL's own lexer (libpg_query via pglast, PostgreSQL 18's grammar), so quoted
    identifiers ("o'brien") are kept, nested comments and `4_000`, `0xFF`, `.5` are literals as the server sees
    them, and `$1` placeholders stay. Text the lexer refuses from some point on (cut off at
    track_activity_query_size, junk after a number) is masked from that point; a word glued to a number (a lexer
    older than PostgreSQL 16 reads `0xFF` as `0` and `xFF`) is masked with it; a plain string holding a backslash
    masks everything after it (with standard_conforming_strings off it would end elsewhere); anything else the
    lexer skips masks the whole statement.
    """
    if sql is None:
        return None
    try:
        tokens, stop = scan(sql), len(sql)
    except ParseError as exc:
        stop = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
        try:
            tokens = scan(sql[:stop]) if 0 < stop < len(sql) else []
        except ParseError:
            return "?"
    out: list[str] = []
    position, after_number = 0, False
    for index, token in enumerate(tokens):
        gap = sql[position : token.start]
        if gap.strip():  # the lexer skipped something that is not white space: show nothing
            return "?"
        text = sql[token.start : token.end + 1]
        position = token.end + 1
        if after_number and not gap and (text[:1].isalnum() or text[:1] == "_"):
            continue  # glued to the number before it: part of the same masked literal
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token.name == "NCHAR" and len(text) == 1 and following is not None and following.start == position:
            out.append(gap)  # N'...': the prefix goes with the literal
            continue
        out.append(gap)
        if token.name == "SCONST" and text[:1] == "'" and "\\" in text:
            return "".join(out) + "?"
        out.append(_COMMENT_MASKS.get(token.name) or ("?" if token.name in _LITERAL_TOKENS else text))
        after_number = token.name in _NUMERIC_TOKENS
    rest = sql[position:]
    if stop == len(sql):
        return "".join(out) + rest if not rest.strip() else "?"
    return "".join(out) + rest[: len(rest) - len(rest.lstrip())] + "?"


# Row counts for verification: the table name is an identifier, never text pasted into SQL.
ROW_COUNT = pgsql.SQL("SELECT count(*) AS row_count FROM {table}")


# --- the session --------------------------------------------------------------------------------------------------


class Database:
    """One read-only, bounded PostgreSQL session per run, opened on first use.

    Settings come from `imsnb.config` (DB_* variables) and libpq's own PG* variables. A failed connection is
    remembered, so later diagnostics fail at once with the same `Unreachable` instead of waiting again.
    """

    def __init__(
        self,
        application: str = "imsnb",
        *,
        statement_timeout_ms: int = STATEMENT_TIMEOUT_MS,
        lock_timeout_ms: int = LOCK_TIMEOUT_MS,
        connect_timeout_s: int = CONNECT_TIMEOUT_S,
        settings: dict[str, str] | None = None,
    ):
        self.application = application if application.startswith("imsnb") else f"imsnb/{application}"
        self.statement_timeout_ms = statement_timeout_ms
        self.lock_timeout_ms = lock_timeout_ms
        self.connect_timeout_s = connect_timeout_s
        self._settings = settings
        self._conn: psycopg.Connection | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._failure: Unreachable | NotConfigured | None = None
        self.label = config.postgres_label() if settings is None else _settings_label(settings)

    def connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        if self._failure is not None:
            raise self._failure
        if self._settings is None:
            try:
                config.postgres_configured()  # no PG*/DB_* at all: INFO "postgres.configured", never a page
            except NotConfigured as exc:
                self._failure = exc
                raise
        settings = self._settings if self._settings is not None else config.postgres_settings()
        options = (
            "-c default_transaction_read_only=on"
            f" -c statement_timeout={int(self.statement_timeout_ms)}"
            f" -c lock_timeout={int(self.lock_timeout_ms)}"
        )
        try:
            self._conn = psycopg.connect(
                **settings,
                connect_timeout=self.connect_timeout_s,
                application_name=self.application,
                options=options,
                autocommit=True,
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
        except psycopg.Error as exc:
            self._failure = Unreachable(f"database {self.label}", _connect_error(exc))
            raise self._failure from None
        info = self._conn.info
        self.label = f"{info.host}:{info.port}/{info.dbname} as {info.user}"
        return self._conn

    def frame(self, sql: str | pgsql.Composable, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run one catalogue query; a DataFrame built from the cursor (numerics as float, never Decimal).

        statement_timeout is enforced by the server; a server that stops answering (frozen, link gone quiet)
        would block the client forever, so the query runs in a worker thread and is abandoned, and the session
        declared unreachable, `CLIENT_GRACE_S` after the statement timeout.
        """
        conn = self.connection()

        def fetch() -> tuple[list[str], list[tuple]]:
            with conn.cursor() as cur:
                cur.execute(sql, params or {})
                return [c.name for c in cur.description], cur.fetchall()

        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imsnb-postgres")
        future = self._worker.submit(fetch)
        limit = self.statement_timeout_ms / 1000 + CLIENT_GRACE_S
        try:
            columns, rows = future.result(timeout=limit)
        except FutureTimeout:
            self._abandon()
            self._failure = Unreachable(f"database {self.label}", f"no answer within {limit:g} s")
            raise self._failure from None
        except psycopg.OperationalError as exc:
            if conn.closed or conn.broken:
                self._conn = None
                self._failure = Unreachable(f"database {self.label}", _one_line(exc))
                raise self._failure from None
            raise
        data = [[float(v) if isinstance(v, Decimal) else v for v in row] for row in rows]
        return pd.DataFrame(data, columns=columns)

    def scalar(self, sql: str | pgsql.Composable, params: dict[str, Any] | None = None) -> Any:
        frame = self.frame(sql, params)
        return None if frame.empty else frame.iat[0, 0]

    def _abandon(self) -> None:
        """Leave a hung query behind: its thread may stay blocked, this session is done with it."""
        conn, self._conn = self._conn, None
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.shutdown(wait=False, cancel_futures=True)
        if conn is not None:
            threading.Thread(target=_close_quietly, args=(conn,), daemon=True).start()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _settings_label(settings: dict[str, str]) -> str:
    return (
        f"{settings.get('host', 'localhost')}:{settings.get('port', '5432')}/{settings.get('dbname', '?')}"
        f" as {settings.get('user', '?')}"
    )


def _close_quietly(conn: psycopg.Connection) -> None:
    try:
        conn.cancel_safe(timeout=2)
        conn.close()
    except Exception:  # noqa: BLE001 - best effort on a connection already given up
        pass


def _connect_error(exc: BaseException) -> str:
    """Why a connection was refused; saturation says so in the same words whichever role hit it."""
    text = _one_line(exc)
    if "remaining connection slots are reserved" in text:
        text += " (too many clients: max_connections is exhausted for roles that are not superusers)"
    return text


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


_default: Database | None = None


def default_database() -> Database:
    """The session used when a diagnostic is called without one (interactive use)."""
    global _default
    if _default is None:
        _default = Database("imsnb/interactive")
    return _default


def _db(db: Database | None) -> Database:
    return db if db is not None else default_database()


def _masked(frame: pd.DataFrame, *columns: str) -> pd.DataFrame:
    for column in columns:
        if column in frame:
            frame[column] = frame[column].map(mask_literals)
    return frame


# --- diagnostics -------------------------------------------------------------------------------------------------


def server_info(db: Database | None = None) -> dict[str, Any]:
    """Version, database, user, whether it is a replica, uptime."""
    return _db(db).frame(SERVER_INFO).iloc[0].to_dict()


def max_connections(db: Database | None = None) -> int:
    return int(_db(db).scalar(MAX_CONNECTIONS))


def connections_by_state(db: Database | None = None) -> pd.DataFrame:
    """Client connections per state (active, idle, idle in transaction, ...): columns state, connections."""
    return _db(db).frame(CONNECTIONS_BY_STATE)


def running_queries(db: Database | None = None, *, min_duration_s: float = 0, limit: int = 100) -> pd.DataFrame:
    """Active statements (not idle, not idle in transaction) other than this session's, oldest first."""
    frame = _db(db).frame(RUNNING_QUERIES, {"min_duration_s": float(min_duration_s), "limit": int(limit)})
    return _masked(frame, "query")


def long_running_queries(db: Database | None = None, *, min_duration_s: float = 60, limit: int = 100) -> pd.DataFrame:
    """Statements running for at least `min_duration_s` seconds."""
    return running_queries(db, min_duration_s=min_duration_s, limit=limit)


def blocked_queries(db: Database | None = None, *, limit: int = 100) -> pd.DataFrame:
    """One row per (waiting session, session it waits for), from pg_blocking_pids, longest wait first."""
    return _masked(_db(db).frame(BLOCKED_QUERIES, {"limit": int(limit)}), "query", "blocking_query")


def idle_in_transaction(db: Database | None = None, *, min_idle_s: float = 0, limit: int = 100) -> pd.DataFrame:
    """Sessions idle inside an open transaction, with how many sessions each one blocks."""
    frame = _db(db).frame(IDLE_IN_TRANSACTION, {"min_idle_s": float(min_idle_s), "limit": int(limit)})
    return _masked(frame, "last_query")


def statements(
    db: Database | None = None, *, min_mean_ms: float = 0, min_calls: int = 1, limit: int = 10, by: str = "total"
) -> pd.DataFrame:
    """pg_stat_statements by total (or `by="mean"`) time, PostgreSQL 12 or 13+ column names, literals masked.

    Raises NotAvailable (with how to enable it) when the extension is not installed or not preloaded.
    """
    db = _db(db)
    hint = (
        "Enable it: add pg_stat_statements to shared_preload_libraries, restart, then "
        "CREATE EXTENSION pg_stat_statements in this database"
    )
    if db.scalar(STATEMENTS_EXTENSION) is None:
        raise NotAvailable("pg_stat_statements is not installed in this database", hint)
    columns = set(db.frame(STATEMENTS_COLUMNS)["attname"])
    names = STATEMENT_TIME_COLUMNS["total_exec_time" if "total_exec_time" in columns else "total_time"]
    if by not in ("total", "mean"):
        raise ValueError(f"statements(by={by!r}): use 'total' or 'mean'")
    sql = STATEMENTS_TEMPLATE.format(**names, order=names[by])
    try:
        frame = db.frame(sql, {"min_mean_ms": float(min_mean_ms), "min_calls": int(min_calls), "limit": int(limit)})
    except psycopg.errors.ObjectNotInPrerequisiteState as exc:
        raise NotAvailable(f"pg_stat_statements is not loaded ({_one_line(exc)})", hint) from None
    return _masked(frame, "query")


def slow_queries(db: Database | None = None, *, min_mean_ms: float | None = None, limit: int = 10) -> pd.DataFrame:
    """The runbook's slow queries: mean time over `min_mean_ms` (default the catalogue's 100 ms), by total time."""
    if min_mean_ms is None:
        min_mean_ms = threshold("postgres.slow_queries").warning
    return statements(db, min_mean_ms=min_mean_ms, limit=limit)


def slowest_statements(db: Database | None = None, *, limit: int = 5) -> pd.DataFrame:
    """The runbook's API-timeout check: statements by mean time (`ORDER BY mean_time DESC LIMIT 5`)."""
    return statements(db, limit=limit, by="mean")


def cache_hit_ratio(db: Database | None = None, *, limit: int = 20) -> pd.DataFrame:
    """Shared-buffer hit ratio per database (blks_hit / (blks_hit + blks_read))."""
    return _db(db).frame(CACHE_HIT_RATIO, {"limit": int(limit)})


def database_sizes(db: Database | None = None, *, limit: int = 20) -> pd.DataFrame:
    return _db(db).frame(DATABASE_SIZES, {"limit": int(limit)})


def transaction_id_age(db: Database | None = None, *, limit: int = 20) -> pd.DataFrame:
    """Age of each database's oldest unfrozen transaction ID, and how far that is toward wraparound (2^31)."""
    return _db(db).frame(TRANSACTION_ID_AGE, {"xid_limit": XID_LIMIT, "limit": int(limit)})


def replication_lag(db: Database | None = None) -> pd.DataFrame:
    """On a primary: one row per attached replica (pg_stat_replication). On a replica: its own replay delay."""
    db = _db(db)
    in_recovery = bool(db.scalar("SELECT pg_is_in_recovery()"))
    return db.frame(REPLICATION_LAG_REPLICA if in_recovery else REPLICATION_LAG_PRIMARY)


# --- findings ---------------------------------------------------------------------------------------------------


def reachable_finding(db: Database | None = None) -> Finding:
    """OK with the server's version and the connect time, or CRITICAL with the error (never raises)."""
    db = _db(db)
    started = time.monotonic()
    try:
        info = server_info(db)
    except Unreachable as exc:
        return Finding("postgres.reachable", "database", Severity.CRITICAL, message=str(exc))
    except NotConfigured as exc:
        return Finding("postgres.configured", "database", Severity.INFO, message=f"{exc}: skipped")
    elapsed_ms = (time.monotonic() - started) * 1000
    role = "replica" if info["in_recovery"] else "primary"
    return Finding(
        "postgres.reachable",
        "database",
        Severity.OK,
        round(elapsed_ms, 1),
        None,
        "ms",
        f"connected to {db.label}: PostgreSQL {info['version']} ({role}) in {elapsed_ms:.0f} ms",
    )


def connections_finding(by_state: pd.DataFrame, max_conn: int) -> Finding:
    used = int(by_state["connections"].sum()) if not by_state.empty else 0
    ratio = used / max_conn if max_conn else 0.0
    states = ", ".join(f"{r.state} {r.connections}" for r in by_state.itertuples())
    return judge(
        "postgres.connections_used",
        "database",
        round(ratio, 4),
        f"{used} of {max_conn} connections in use ({ratio:.0%}): {states or 'none'}",
        evidence=by_state,
    )


def slow_queries_finding(slow: pd.DataFrame, min_mean_ms: float | None = None) -> Finding:
    """Any statement in `slow` (already filtered at `min_mean_ms`) is at least a WARNING; slower ones escalate."""
    limit = threshold("postgres.slow_queries")
    min_mean_ms = limit.warning if min_mean_ms is None else min_mean_ms
    if slow.empty:
        return Finding(
            "postgres.slow_queries",
            "database",
            Severity.OK,
            0,
            min_mean_ms,
            "ms",
            f"no statement averages {min_mean_ms:g} ms or more",
        )
    worst = slow.sort_values("mean_ms", ascending=False).iloc[0]
    finding = judge(
        "postgres.slow_queries",
        "database",
        round(float(worst["mean_ms"]), 1),
        f"{len(slow)} statement(s) average ≥ {min_mean_ms:g} ms; slowest {worst['mean_ms']:.0f} ms mean "
        f"over {int(worst['calls'])} calls: {_excerpt(worst['query'])}",
        evidence=slow[["queryid", "calls", "mean_ms", "total_ms", "query"]],
    )
    finding.threshold = min_mean_ms
    finding.severity = max(finding.severity, Severity.WARNING)
    return finding


def blocked_queries_finding(blocked: pd.DataFrame) -> Finding:
    """Any session waiting on a lock is at least a WARNING; longer waits escalate by the catalogue."""
    if blocked.empty:
        return Finding("postgres.blocked_queries", "database", Severity.OK, 0, None, "s", "no session waits on a lock")
    longest = float(blocked["waiting_s"].max())
    finding = judge(
        "postgres.blocked_queries",
        "database",
        round(longest, 1),
        f"{blocked['pid'].nunique()} session(s) wait on locks held by {sorted(set(blocked['blocking_pid']))}; "
        f"longest wait {longest:.0f} s",
        evidence=blocked[["pid", "waiting_s", "blocking_pid", "blocking_state", "query", "blocking_query"]],
    )
    finding.severity = max(finding.severity, Severity.WARNING)
    return finding


def long_running_finding(running: pd.DataFrame, min_duration_s: float | None = None) -> Finding:
    limit = threshold("postgres.long_running")
    min_duration_s = limit.warning if min_duration_s is None else min_duration_s
    long = running[running["duration_s"] >= min_duration_s] if not running.empty else running
    if long.empty:
        return Finding(
            "postgres.long_running",
            "database",
            Severity.OK,
            0,
            min_duration_s,
            "s",
            f"no statement has run for {min_duration_s:g} s or more",
        )
    longest = long.iloc[long["duration_s"].argmax()]
    finding = judge(
        "postgres.long_running",
        "database",
        round(float(longest["duration_s"]), 1),
        f"{len(long)} statement(s) running ≥ {min_duration_s:g} s; longest pid {longest['pid']} "
        f"{longest['duration_s']:.0f} s: {_excerpt(longest['query'])}",
        evidence=long[["pid", "user", "duration_s", "wait_event_type", "query"]],
    )
    finding.severity = max(finding.severity, Severity.WARNING)
    return finding


def idle_in_transaction_finding(idle: pd.DataFrame, min_age_s: float | None = None) -> Finding:
    """A session idle in a transaction that blocks others is at least WARNING at any age; others past min_age_s."""
    limit = threshold("postgres.idle_in_transaction")
    min_age_s = limit.warning if min_age_s is None else min_age_s
    if idle.empty:
        return Finding(
            "postgres.idle_in_transaction",
            "database",
            Severity.OK,
            0,
            min_age_s,
            "s",
            "no session is idle in a transaction",
        )
    blocking = idle[idle["blocking"] > 0]
    old = idle[idle["xact_age_s"] >= min_age_s]
    flagged = idle[(idle["blocking"] > 0) | (idle["xact_age_s"] >= min_age_s)]
    oldest = float(idle["xact_age_s"].max())
    if flagged.empty:
        return Finding(
            "postgres.idle_in_transaction",
            "database",
            Severity.OK,
            round(oldest, 1),
            min_age_s,
            "s",
            f"{len(idle)} session(s) idle in transaction, none blocking, oldest {oldest:.0f} s",
        )
    finding = judge(
        "postgres.idle_in_transaction",
        "database",
        round(oldest, 1),
        f"{len(flagged)} session(s) idle in transaction: {len(blocking)} blocking others "
        f"(pids {sorted(blocking['pid'].tolist())}), {len(old)} older than {min_age_s:g} s; oldest {oldest:.0f} s",
        evidence=flagged[["pid", "user", "application", "xact_age_s", "idle_s", "blocking", "last_query"]],
    )
    finding.severity = max(finding.severity, Severity.WARNING)
    return finding


def replication_lag_finding(lag: pd.DataFrame) -> Finding:
    if lag.empty:
        return Finding(
            "postgres.replication_lag",
            "database",
            Severity.OK,
            None,
            10.0,
            "s",
            "no replica is attached to this primary",
        )
    worst = lag.iloc[lag["lag_s"].argmax()]
    return judge(
        "postgres.replication_lag",
        "database",
        round(float(worst["lag_s"]), 2),
        f"{worst['role']} {worst['replica']}: replay lag {worst['lag_s']:.1f} s",
        evidence=lag,
    )


def cache_hit_finding(hits: pd.DataFrame, min_blocks: int = 10_000) -> Finding:
    """Judged only for databases with enough traffic (`min_blocks` buffer accesses) to mean anything."""
    busy = hits[(hits["blks_hit"] + hits["blks_read"]) >= min_blocks]
    if busy.empty:
        return Finding(
            "postgres.cache_hit_ratio",
            "database",
            Severity.OK,
            None,
            0.99,
            "ratio",
            f"too little traffic to judge (under {min_blocks} buffer accesses)",
        )
    worst = busy.iloc[busy["hit_ratio"].argmin()]
    finding = judge(
        "postgres.cache_hit_ratio",
        "database",
        round(float(worst["hit_ratio"]), 4),
        f"buffer cache hit ratio of {worst['database']}: {worst['hit_ratio']:.2%}",
        evidence=busy,
    )
    if finding.severity == Severity.WARNING:
        finding.severity = Severity.INFO  # under PgHero's 99% is worth knowing, not an alert
    return finding


def xid_age_finding(ages: pd.DataFrame) -> Finding:
    worst = ages.iloc[ages["wraparound_ratio"].argmax()]
    return judge(
        "postgres.xid_age",
        "database",
        round(float(worst["wraparound_ratio"]), 4),
        f"{worst['database']}: {int(worst['xid_age']):,} transactions since the oldest freeze "
        f"({worst['wraparound_ratio']:.1%} of the way to wraparound)",
    )


def _excerpt(text: Any, width: int = 120) -> str:
    one_line = " ".join(str(text or "").split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


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
            count = _db(db).scalar(ROW_COUNT.format(table=pgsql.Identifier(*parts)))
            rows.append({"table": name, "rows": int(count), "error": None})
        except Unreachable:
            raise
        except psycopg.Error as exc:
            rows.append({"table": name, "rows": None, "error": _one_line(exc)})
    return pd.DataFrame(rows, columns=["table", "rows", "error"])


def row_count_findings(counts: pd.DataFrame, expected: dict[str, int], *, tolerance: float = 0.0) -> list[Finding]:
    """One finding per table: OK when its count is within `tolerance` (a fraction) of the expected count, ERROR when
    it differs or could not be counted."""
    found = []
    for row in counts.itertuples():
        want = expected.get(row.table)
        if row.rows is None or pd.isna(row.rows):
            message = f"{row.table}: {row.error}"
            found.append(Finding("postgres.row_count", "database", Severity.ERROR, None, want, "rows", message))
            continue
        if want is None:
            message, severity = f"{row.table}: {int(row.rows):,} rows (no expectation given)", Severity.INFO
        elif abs(row.rows - want) <= tolerance * want:
            message, severity = f"{row.table}: {int(row.rows):,} rows as expected", Severity.OK
        else:
            message = f"{row.table}: {int(row.rows):,} rows, expected {int(want):,}"
            severity = Severity.ERROR
        found.append(Finding("postgres.row_count", "database", severity, int(row.rows), want, "rows", message))
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


def database_or_default(db: Database | None = None) -> Database:
    """`db`, or the interactive default session when None: the public name for other modules (actions)."""
    return _db(db)
