"""The PostgreSQL session: read-only, bounded, opened on first use, its failure remembered; the default session."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from decimal import Decimal
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql as pgsql

from imsnb import config
from imsnb.errors import NotConfigured, Unreachable
from imsnb.session import LazySession, one_line

__all__ = [
    "CLIENT_GRACE_S",
    "CONNECT_TIMEOUT_S",
    "LOCK_TIMEOUT_MS",
    "STATEMENT_TIMEOUT_MS",
    "Database",
    "database_or_default",
    "default_database",
]

STATEMENT_TIMEOUT_MS = 5000
LOCK_TIMEOUT_MS = 1000
CONNECT_TIMEOUT_S = 5
CLIENT_GRACE_S = 5  # how long past statement_timeout the client waits before giving the server up

# Every statement imsnb sends starts with this comment. pg_stat_statements keeps it in the text it stores for an
# entry imsnb created (its own catalogue reads, its PREPARE of an application's statement), so imsnb can tell its
# own footprint from the application's and leave it out of what it judges (imsnb.sampling.postgres.OWN_STATEMENTS).
TAG = "/* imsnb */"

# pg_stat_statements may be installed in a schema of its own (CREATE EXTENSION ... SCHEMA "Ext Schema"): that schema
# is appended to the session's search_path (after the application's, so no name of theirs resolves elsewhere), and
# every read of pg_stat_statements, pg_stat_statements_info and the pg_stat_statements() function finds it there.
# regnamespace::text quotes the name as SQL needs it.
STATEMENTS_SEARCH_PATH = """
SELECT set_config('search_path', current_setting('search_path') || ', ' || e.extnamespace::regnamespace::text, false)
FROM pg_extension AS e
JOIN pg_namespace AS n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
    AND n.nspname <> ALL(current_schemas(true))
"""


def tagged(sql: str | pgsql.Composable) -> str | pgsql.Composable:
    """`sql` with imsnb's leading comment (once: an already tagged text is left as is)."""
    if isinstance(sql, str):
        return sql if sql.lstrip().startswith(TAG) else f"{TAG} {sql.lstrip()}"
    return pgsql.Composed([pgsql.SQL(f"{TAG} "), sql])


class Database(LazySession):
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
        super().__init__()
        self.label = config.postgres_label() if settings is None else _settings_label(settings)

    def connection(self) -> psycopg.Connection:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self.raise_if_failed()
        if self._settings is None:
            try:
                config.postgres_configured()  # no PG*/DB_* at all: INFO "postgres.configured", never a page
            except NotConfigured as exc:
                raise self.fail(exc) from None
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
            raise self.fail(Unreachable(f"database {self.label}", _connect_error(exc))) from None
        info = self._conn.info
        self.label = f"{info.host}:{info.port}/{info.dbname} as {info.user}"
        try:  # bounded like every statement: a server that froze since the connect is unreachable, not a hang
            self._bounded(lambda cur: cur.execute(tagged(STATEMENTS_SEARCH_PATH)))
        except psycopg.Error:
            pass  # the statement checks say what they cannot read, each in its own section
        return self._conn

    def frame(self, sql: str | pgsql.Composable, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Run one catalogue query; a DataFrame built from the cursor (numerics as float, never Decimal).

        statement_timeout is enforced by the server; a server that stops answering (frozen, link gone quiet)
        would block the client forever, so the query runs in a worker thread and is abandoned, and the session
        declared unreachable, `CLIENT_GRACE_S` after the statement timeout.
        """

        def fetch(cur: psycopg.Cursor) -> tuple[list[str], list[tuple]]:
            cur.execute(tagged(sql), params or {})
            return [c.name for c in cur.description], cur.fetchall()

        columns, rows = self._bounded(fetch)
        data = [[float(v) if isinstance(v, Decimal) else v for v in row] for row in rows]
        return pd.DataFrame(data, columns=columns)

    def execute(self, sql: str | pgsql.Composable) -> None:
        """Run one statement that returns no rows (`SET`, `PREPARE`, `DEALLOCATE`) on this session's connection, so
        a sequence of them shares the session's state; bounded like `frame`. The text is sent as is: no parameters
        are bound (a `%` in it is not a placeholder)."""
        self._bounded(lambda cur: cur.execute(tagged(sql)))

    def _bounded(self, work: Callable[[psycopg.Cursor], Any]) -> Any:
        """`work(cursor)` in the worker thread, given up `CLIENT_GRACE_S` after the statement timeout."""
        conn = self.connection()

        def run() -> Any:
            with conn.cursor() as cur:
                return work(cur)

        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imsnb-postgres")
        future = self._worker.submit(run)
        limit = self.statement_timeout_ms / 1000 + CLIENT_GRACE_S
        try:
            return future.result(timeout=limit)
        except FutureTimeout:
            self._abandon()
            raise self.fail(Unreachable(f"database {self.label}", f"no answer within {limit:g} s")) from None
        except psycopg.OperationalError as exc:
            if conn.closed or conn.broken:
                self._conn = None
                raise self.fail(Unreachable(f"database {self.label}", one_line(exc))) from None
            raise

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
    text = one_line(exc)
    if "remaining connection slots are reserved" in text:
        text += " (too many clients: max_connections is exhausted for roles that are not superusers)"
    return text


def default_database() -> Database:
    """The session used when a diagnostic is called without one (interactive use)."""
    return Database.default()


def database_or_default(db: Database | None = None) -> Database:
    """`db`, or the interactive default session when None (what every fetcher does with its `db` argument)."""
    return Database.or_default(db)
