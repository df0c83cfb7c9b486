"""The store: opened from a StoreUrl, its schema made current on first use, transactions that hold a named lock.

Opened per use (a run writes a handful of rows): `connect()` returns a connection of the sqlite3 interface
(`backends`), the schema checked (and migrated, under the migration lock) once per process for PostgreSQL and at
every open for SQLite (a file can be replaced underneath). A store that did not answer is not asked again for
DOWN_FOR_S: a run with an unreachable store pays the connect timeout once, not once per snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imsnb.errors import ImsnbError, StoreError
from imsnb.state import schema
from imsnb.state.backends import (
    one_line,
    postgres_begin_locked,
    postgres_begin_read,
    postgres_connect,
    sqlite_begin_locked,
    sqlite_begin_read,
    sqlite_connect,
)
from imsnb.state.url import (
    POSTGRES,
    SQLITE,
    StoreUrl,
    check_not_target,
    configured_store,
    parse_store_url,
    sqlite_store,
)

DOWN_FOR_S = 60.0
MIGRATE_LOCK = "schema"
MIGRATE_WAIT_S = 60.0

_ready: set[str] = set()  # PostgreSQL stores whose schema this process found current
_down: dict[str, tuple[float, str]] = {}  # store name -> (until when not to ask, why)


class Store:
    """One store. Never raises when made; what cannot be used raises StoreError when used."""

    def __init__(self, url: StoreUrl | None = None, *, problem: str | None = None) -> None:
        self.url = url
        self.problem = problem  # why no usable URL was configured (said by every use)

    @property
    def name(self) -> str:
        return self.url.name if self.url is not None else "imsnb's store"

    @property
    def dialect(self) -> str:
        return self.url.dialect if self.url is not None else SQLITE

    @property
    def path(self) -> Path | None:
        return self.url.path if self.url is not None else None

    @property
    def shared(self) -> bool:
        return self.url is not None and self.url.shared

    def exists(self) -> bool:
        """False only for a SQLite file not made yet (reads then find nothing without creating it)."""
        return self.url is None or self.url.dialect != SQLITE or bool(self.path and self.path.exists())

    def connect(self) -> Any:
        """A connection with the schema current; StoreError when the store cannot be used."""
        conn = self._open()
        try:
            if self.name not in _ready and not self._current(conn):
                self._make_current(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def locked(self, lock: str, *, wait_s: float) -> Iterator[Any]:
        """One transaction holding the named lock (SQLite: the file; PostgreSQL: an advisory lock); committed when
        the block ends well, rolled back when it raises, released either way."""
        conn = self.connect()
        try:
            (sqlite_begin_locked if self.dialect == SQLITE else postgres_begin_locked)(conn, lock, wait_s=wait_s)
            with conn:
                yield conn
        finally:
            conn.close()

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """One read transaction: every read inside sees the store as of one moment (SQLite: a deferred transaction
        holding its read lock; PostgreSQL: REPEATABLE READ), so a writer's transaction is seen wholly or not at all.
        Rolled back at the end (nothing is written)."""
        conn = self.connect()
        try:
            (sqlite_begin_read if self.dialect == SQLITE else postgres_begin_read)(conn)
            yield conn
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()

    def version(self) -> int:
        """The schema version the store holds (0: none yet), read without creating anything."""
        if not self.exists():
            return 0
        conn = self._open()
        try:
            if not conn.execute(schema.HAS_VERSION_TABLE[self.dialect]).fetchone()[0]:
                return 0
            return int(conn.execute(schema.CURRENT_VERSION_SQL).fetchone()[0])
        finally:
            conn.close()

    def migrate(self) -> tuple[int, int]:
        """Apply the migrations the store lacks, under the migration lock; (version before, version after)."""
        conn = self._open()
        try:
            return self._make_current(conn)
        finally:
            conn.close()

    # ------------------------------------------------------------------------------------------------------------

    def _open(self) -> Any:
        if self.url is None:
            raise StoreError(self.problem or "no store configured")
        down = _down.get(self.name)
        if down is not None and down[0] > time.monotonic():
            raise StoreError(f"{down[1]} (not asked again for {DOWN_FOR_S:g} s)")
        if self.dialect == SQLITE:
            assert self.path is not None
            return sqlite_connect(self.path)
        try:
            check_not_target(self.url)
        except ImsnbError as exc:
            raise StoreError(str(exc)) from None
        try:
            return postgres_connect(self.url.conninfo, self.name)
        except StoreError as exc:
            _down[self.name] = (time.monotonic() + DOWN_FOR_S, str(exc))
            raise

    def _make_current(self, conn: Any) -> tuple[int, int]:
        """The schema made current in one locked transaction (re-read under the lock: another worker may have
        migrated meanwhile); StoreError for a store newer than this imsnb."""
        dialect = self.dialect
        try:
            begin = sqlite_begin_locked if dialect == SQLITE else postgres_begin_locked
            begin(conn, MIGRATE_LOCK, wait_s=MIGRATE_WAIT_S)
            with conn:
                conn.execute(schema.VERSION_TABLE[dialect])
                before = int(conn.execute(schema.CURRENT_VERSION_SQL).fetchone()[0])
                if before > schema.LATEST:
                    raise StoreError(
                        f"store {self.name} has schema version {before}, newer than this imsnb knows "
                        f"({schema.LATEST}): upgrade imsnb on this worker"
                    )
                for migration in schema.pending(before):
                    for statement in migration.statements[dialect]:
                        conn.execute(statement)
                    conn.execute(
                        schema.RECORD_VERSION,
                        {"version": migration.version, "name": migration.name, "applied_at": time.time()},
                    )
        except StoreError:
            raise
        except Exception as exc:  # noqa: BLE001 - sqlite3/psycopg errors: a read-only file, no CREATE right, ...
            raise StoreError(f"store {self.name}: schema not made current: {one_line(exc)}") from None
        if dialect == POSTGRES:
            _ready.add(self.name)
        return before, max(before, schema.LATEST)

    def _current(self, conn: Any) -> bool:
        """Whether the schema is current, read without a lock (the common case: nothing to migrate). A SQLite
        file is looked at on every open (it can be replaced underneath); PostgreSQL once per process."""
        try:
            if not conn.execute(schema.HAS_VERSION_TABLE[self.dialect]).fetchone()[0]:
                return False
            current = int(conn.execute(schema.CURRENT_VERSION_SQL).fetchone()[0]) == schema.LATEST
        except StoreError:
            raise
        except Exception:  # noqa: BLE001 - anything unexpected: the locked path says what
            return False
        finally:
            if self.dialect == POSTGRES and not conn.raw.closed:
                conn.rollback()  # end the read's transaction before a locked one begins
        if current and self.dialect == POSTGRES:
            _ready.add(self.name)
        return current


def open_store(where: Path | str | StoreUrl | None = None) -> Store:
    """The store at `where` (a StoreUrl, a sqlite:// or postgresql:// URL, or a SQLite path), else the configured
    one (`url.configured_store`). Never raises: a URL that cannot be used makes a Store whose every use says why."""

    try:
        if isinstance(where, StoreUrl):
            return Store(where)
        if where is None:
            return Store(configured_store())
        text = str(where)
        if text.split(":", 1)[0].lower() in ("sqlite", "postgresql", "postgres") and "://" in text:
            return Store(parse_store_url(text, origin="the store URL"))
        return Store(sqlite_store(Path(where)))
    except ImsnbError as exc:
        return Store(None, problem=str(exc))
