"""Connections to the store, one interface for both dialects: sqlite3's (`execute(sql, params)` returning a cursor
with fetchone/fetchall, `executemany`, `with conn:` commits or rolls back, `close()`).

The queries are written once, with sqlite3's named parameters (`:name`); for PostgreSQL they are translated to
psycopg's (`%(name)s`) once each. A failure to connect or to talk to the store is a StoreError naming the store
without credentials (psycopg's own messages name the host and user, never the password).

Locks (`begin_locked`): SQLite takes the whole file (`BEGIN IMMEDIATE`: one writer at a time, readers go on);
PostgreSQL takes a transaction-scoped advisory lock named by a number derived from the lock's name
(`pg_advisory_xact_lock`), released by the commit, so the tables stay free for every other writer.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sqlite3
from pathlib import Path
from typing import Any

from imsnb.errors import StoreError

BUSY_TIMEOUT_S = 30.0  # SQLite: how long a writer waits for another (a page sent under the notification lock)
CONNECT_TIMEOUT_S = 5  # PostgreSQL: a store that does not answer costs a run this, once (`store.DOWN_FOR_S`)
STATEMENT_TIMEOUT_MS = 60_000
APPLICATION_NAME = "imsnb/state"

ADVISORY_LOCK = "SELECT pg_advisory_xact_lock(:key)"
SET_LOCK_TIMEOUT = "SELECT set_config('lock_timeout', :timeout, true)"  # true: for this transaction only


def store_errors() -> tuple[type[BaseException], ...]:
    """What a store's use can raise beyond StoreError: the drivers' own errors (a locked or corrupt file, a missing
    privilege on a table)."""
    # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
    import psycopg

    return StoreError, sqlite3.Error, psycopg.Error


_NAMED = re.compile(r"(?<![:\w]):(?!:)([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=256)
def pyformat(sql: str) -> str:
    """sqlite3's `:name` parameters as psycopg's `%(name)s` (a literal % doubled; `::type` casts left alone)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


def lock_key(name: str) -> int:
    """A stable signed 64-bit number for an advisory lock's name."""
    return int.from_bytes(hashlib.sha256(f"imsnb:{name}".encode()).digest()[:8], "big", signed=True)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# ---------------------------------------------------------------- SQLite


def sqlite_connect(path: Path, *, timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """The SQLite file, created with its folder when missing."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, timeout=timeout_s)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"store {path} cannot be opened: {one_line(exc)}") from None


def sqlite_begin_locked(conn: sqlite3.Connection, name: str, *, wait_s: float) -> None:
    """The whole file, for writing, until commit (readers are not held)."""
    conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
    conn.execute("BEGIN IMMEDIATE")


def sqlite_begin_read(conn: sqlite3.Connection) -> None:
    """A read transaction: the first read takes the file's read lock (or WAL snapshot), held until it ends."""
    conn.execute("BEGIN")


# ---------------------------------------------------------------- PostgreSQL


class PostgresConnection:
    """A psycopg connection that speaks sqlite3's interface (named `:name` parameters) and turns psycopg's
    operational errors into StoreError naming the store."""

    dialect = "postgresql"

    def __init__(self, raw: Any, name: str) -> None:
        # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
        import psycopg

        self.raw = raw
        self.name = name
        self._operational = psycopg.OperationalError  # imported once per connection, not once per statement

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return self.raw.execute(pyformat(sql), params)
        except self._operational as exc:
            raise StoreError(f"store {self.name}: {one_line(exc)}") from None

    def executemany(self, sql: str, rows: list[dict[str, Any]]) -> Any:
        cursor = self.raw.cursor()
        try:
            cursor.executemany(pyformat(sql), rows)
        except self._operational as exc:
            raise StoreError(f"store {self.name}: {one_line(exc)}") from None
        return cursor

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PostgresConnection:
        return self

    def __exit__(self, kind: Any, value: Any, tb: Any) -> None:
        """As sqlite3: commit when the block ended well, roll back when it raised; the connection stays open."""
        if self.raw.closed:
            return
        if kind is None:
            self.raw.commit()
        else:
            self.raw.rollback()


def postgres_connect(conninfo: dict[str, str], name: str) -> PostgresConnection:
    """A connection to the store with bounded waits: connect, every statement; named imsnb/state on the server."""
    # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
    import psycopg

    settings = dict(conninfo)
    settings.setdefault("connect_timeout", str(CONNECT_TIMEOUT_S))
    settings.setdefault("application_name", APPLICATION_NAME)
    options = settings.get("options", "")
    settings["options"] = f"{options} -c statement_timeout={STATEMENT_TIMEOUT_MS}".strip()
    try:
        raw = psycopg.connect(**settings)
    except psycopg.Error as exc:
        raise StoreError(f"store {name} unreachable: {one_line(exc)}") from None
    return PostgresConnection(raw, name)


def postgres_begin_read(conn: PostgresConnection) -> None:
    """The next transaction REPEATABLE READ: every statement in it sees the snapshot its first one saw."""
    # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
    import psycopg

    if conn.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.raw.rollback()
    conn.raw.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ


def postgres_begin_locked(conn: PostgresConnection, name: str, *, wait_s: float) -> None:
    """The named advisory lock for this transaction, waiting at most `wait_s` (then StoreError)."""
    # lazy: psycopg (~1 s to import) only for a PostgreSQL target or store; SQLite and the CLI skip it
    import psycopg

    try:
        conn.raw.execute(pyformat(SET_LOCK_TIMEOUT), {"timeout": f"{int(wait_s * 1000)}ms"})
        conn.raw.execute(pyformat(ADVISORY_LOCK), {"key": lock_key(name)})
    except psycopg.errors.LockNotAvailable:
        conn.raw.rollback()
        held = f"the {name} lock was held by another worker for over {wait_s:g} s"
        raise StoreError(f"store {conn.name}: {held}") from None
    except psycopg.OperationalError as exc:
        raise StoreError(f"store {conn.name}: {one_line(exc)}") from None
