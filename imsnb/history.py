"""The snapshot history: counter snapshots, baselines and plans in imsnb's store, with bounded retention.

One row per target, source and time. A snapshot holds counters only (no query text, no literals, nothing secret),
zlib-compressed JSON: whole (a keyframe) or the rows that changed since an earlier one, rebuilt exactly on reading
(`history_chains`: the history grows with what changes, not with time x statements; snapshots older than a day are
downsampled to one per 15 minutes). Where: the store `imsnb.state` opens (IMSNB_STATE_URL, a team's PostgreSQL or
a SQLite file), else IMSNB_HISTORY, else `outputs/.history.sqlite` in the repository; the tables are
`imsnb.state.schema`'s, the queries below are shared by both dialects. Kept for IMSNB_HISTORY_DAYS (default 14)
and at most IMSNB_HISTORY_MAX_MB (default 200) of snapshot data; every write prunes. Baselines are a table of
their own: never pruned nor downsampled.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imsnb import history_chains
from imsnb.errors import ImsnbError
from imsnb.history_chains import Chains
from imsnb.snapshot_rows import Rebuilt, normal, pack_whole, unpack
from imsnb.state import Store, StoreUrl, open_store
from imsnb.state.url import sqlite_default

DEFAULT_DAYS = 14.0
DEFAULT_MAX_MB = 200.0
HISTORY_LOCK = "history"  # writers one at a time: a new snapshot's base, downsampling and pruning see one chain
WRITE_WAIT_S = 30.0

# The last snapshot this process wrote per (store, target, source), rebuilt: `imsnb record --every` stores the next
# one against it without reading its chain again (used only while it is still the one stored before the next: the
# same id, time and size; a store made anew at the same path reuses ids).
_last_written: dict[tuple[str, str, str], tuple[int, float, int, Rebuilt]] = {}

INSERT_SNAPSHOT = """
INSERT INTO snapshots (target, source, taken_at, taken_by, epoch, base_id, data)
VALUES (:target, :source, :taken_at, :taken_by, :epoch, :base_id, :data)
RETURNING id
"""
# The snapshot a new one is stored against: the latest taken at or before it (ties: the one stored first).
BASE_FOR = """
SELECT id, taken_at, length(data)
FROM snapshots
WHERE target = :target AND source = :source AND taken_at <= :taken_at
ORDER BY taken_at DESC, id DESC
LIMIT 1
"""
NEAREST_SNAPSHOT = """
SELECT id, target, source, taken_at, taken_by, epoch, base_id, data
FROM snapshots
WHERE target = :target AND source = :source AND taken_at BETWEEN :earliest AND :latest
ORDER BY abs(taken_at - :wanted), taken_at
LIMIT 1
"""
STORED_BETWEEN = """
SELECT id, taken_at, epoch
FROM snapshots
WHERE target = :target AND source = :source AND taken_at BETWEEN :earliest AND :latest
ORDER BY taken_at
LIMIT :limit
"""
NEWEST_BETWEEN = """
SELECT id, target, source, taken_at, taken_by, epoch, base_id, data
FROM snapshots
WHERE target = :target AND source = :source AND taken_at BETWEEN :earliest AND :latest
ORDER BY taken_at DESC
LIMIT :limit
"""
SNAPSHOT_BY_ID = """
SELECT id, target, source, taken_at, taken_by, epoch, base_id, data
FROM snapshots
WHERE id = :id
"""
COUNT_ROWS = "SELECT count(*) FROM snapshots"
UPSERT_BASELINE = """
INSERT INTO baselines (target, source, saved_at, taken_by, period, data)
VALUES (:target, :source, :saved_at, :taken_by, :period, :data)
ON CONFLICT (target, source) DO UPDATE SET
    saved_at = excluded.saved_at, taken_by = excluded.taken_by, period = excluded.period, data = excluded.data
"""
SELECT_BASELINE = """
SELECT saved_at, taken_by, period, data
FROM baselines
WHERE target = :target AND source = :source
"""
# Plans: one row per shape a statement's plan took, first and last seen; a record that finds the same shape again
# moves last_seen only, so the table grows with plan changes, not with time.
LATEST_PLAN = """
SELECT id, plan_hash
FROM plans
WHERE target = :target AND queryid = :queryid
ORDER BY first_seen DESC
LIMIT 1
"""
INSERT_PLAN = """
INSERT INTO plans (target, queryid, plan_hash, first_seen, last_seen, taken_by, shape)
VALUES (:target, :queryid, :plan_hash, :seen, :seen, :taken_by, :shape)
"""
TOUCH_PLAN = "UPDATE plans SET last_seen = CASE WHEN last_seen > :seen THEN last_seen ELSE :seen END WHERE id = :id"
SELECT_PLANS = """
SELECT queryid, plan_hash, first_seen, last_seen, taken_by, shape
FROM plans
WHERE target = :target AND queryid = :queryid AND first_seen <= :until
ORDER BY first_seen
"""
PRUNE_PLANS_BY_AGE = "DELETE FROM plans WHERE last_seen < :oldest"


@dataclass
class Snapshot:
    """Cumulative counters of one source on one target at one time. `epoch` changes on a restart or stats reset."""

    target: str
    source: str
    taken_at: datetime
    taken_by: str
    epoch: str
    data: Any

    def to_row(self, *, whole: bool = True) -> dict[str, Any]:
        """The snapshot stored whole (a keyframe), as every snapshot was before schema version 3 (`whole=False`:
        without its data)."""
        return {
            "target": self.target,
            "source": self.source,
            "taken_at": self.taken_at.timestamp(),
            "taken_by": self.taken_by,
            "epoch": self.epoch,
            "base_id": None,
            "data": pack_whole(json.dumps(self.data, separators=(",", ":"), default=str).encode()) if whole else None,
        }


@dataclass(frozen=True)
class Stored:
    """A stored snapshot's identity without its counters: enough to choose one before reading it (`History.load`)."""

    id: int
    taken_at: datetime
    epoch: str


@dataclass
class Baseline:
    target: str
    source: str
    saved_at: datetime
    taken_by: str
    period: dict[str, Any]
    data: Any


@dataclass
class StoredPlan:
    """One shape a statement's plan took on a target: when it was first and last seen, and by whom."""

    queryid: str
    plan_hash: str
    first_seen: datetime
    last_seen: datetime
    taken_by: str
    shape: dict[str, Any]


def history_path() -> Path:
    """IMSNB_HISTORY, else outputs/.history.sqlite next to the notebooks (the archive's folder): the SQLite store
    when no IMSNB_STATE_URL names one."""

    return sqlite_default()


def retention() -> tuple[timedelta, int]:
    """(how long snapshots are kept, how many bytes of snapshot data at most), from the environment."""
    try:
        days = float(os.environ.get("IMSNB_HISTORY_DAYS") or DEFAULT_DAYS)
        max_mb = float(os.environ.get("IMSNB_HISTORY_MAX_MB") or DEFAULT_MAX_MB)
    except ValueError:
        raise ImsnbError("IMSNB_HISTORY_DAYS and IMSNB_HISTORY_MAX_MB must be numbers, e.g. 14 and 200") from None
    if days <= 0 or max_mb <= 0:
        raise ImsnbError("IMSNB_HISTORY_DAYS and IMSNB_HISTORY_MAX_MB must be positive")
    return timedelta(days=days), int(max_mb * 2**20)


class History:
    """The history in a store. Opened per use (a run writes a handful of rows); safe for several runs and workers
    at once (each write one transaction).

    `where`: a SQLite path, a store URL (sqlite:///PATH, postgresql://...) or a StoreUrl; default: the configured
    store (`imsnb.state.configured_store`). Never raises when made: a store that cannot be used raises StoreError
    (naming it without credentials) when used."""

    def __init__(self, where: Path | str | StoreUrl | None = None):
        self.store: Store = open_store(where)
        self.path: Path | None = self.store.path  # the SQLite file (None for PostgreSQL)
        self._reader: Any = None  # the connection of an open `reading()` block

    @property
    def name(self) -> str:
        """The store, for messages: its path, or postgresql://host:port/database (never a user or password)."""
        return self.store.name

    def _connect(self):
        return self.store.connect()

    def add(self, *snapshots: Snapshot, now: datetime | None = None) -> None:
        """Store snapshots, each as the rows that changed since the one stored before it (or whole: a keyframe,
        `history_chains.encode`); then downsample what is older than a day and prune what is past retention (age,
        then size). One transaction under the history lock. `now`: the time retention counts from (default: now;
        a benchmark writing days of snapshots passes each one's time)."""
        keep_for, max_bytes = retention()
        now = now or datetime.now(UTC)
        with self.store.locked(HISTORY_LOCK, wait_s=WRITE_WAIT_S) as conn:
            chains = Chains(conn)
            for snapshot in snapshots:
                self._write(conn, chains, snapshot)
            for target, source in dict.fromkeys((s.target, s.source) for s in snapshots):
                history_chains.downsample(conn, chains, target, source, now)
            history_chains.prune(conn, chains, oldest=now - keep_for, max_bytes=max_bytes)
            conn.execute(PRUNE_PLANS_BY_AGE, {"oldest": (now - keep_for).timestamp()})

    def _write(self, conn: Any, chains: Chains, snapshot: Snapshot) -> None:
        data, text = normal(snapshot.data)
        row = {**snapshot.to_row(whole=False), "data": None}
        series = (self.name, snapshot.target, snapshot.source)
        found = conn.execute(BASE_FOR, row).fetchone()
        base: Rebuilt | None = None
        if found is not None:
            cached = _last_written.get(series)
            if cached is not None and cached[:3] == tuple(found):
                base = cached[3]
            else:
                base = chains.get(found[0])
        as_changes, blob, rebuilt = history_chains.encode(data, base, text)
        row |= {"base_id": found[0] if as_changes else None, "data": blob}
        new_id = conn.execute(INSERT_SNAPSHOT, row).fetchone()[0]
        chains.remember(new_id, rebuilt)
        _last_written[series] = (new_id, row["taken_at"], len(blob), rebuilt)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """One read transaction for the reads inside the block (`stored` then `load`, say): a compaction running
        meanwhile is seen wholly or not at all."""
        if self._reader is not None or not self.store.exists():
            yield
            return
        with self.store.reading() as conn:
            self._reader = conn
            try:
                yield
            finally:
                self._reader = None

    @contextmanager
    def _read(self) -> Iterator[Any]:
        if self._reader is not None:
            yield self._reader
            return
        with self.store.reading() as conn:
            yield conn

    def _rebuilt(self, conn: Any, rows: list[tuple]) -> list[tuple[Stored, Snapshot]]:
        """Rows (id, target, source, taken_at, taken_by, epoch, base_id, data) with their counters: a keyframe's
        as stored, a delta's rebuilt from its chain (a snapshot pruned meanwhile is left out)."""
        chains = Chains(conn)
        out = []
        for row_id, target, source, taken_at, taken_by, epoch, base_id, blob in rows:
            if base_id is None:
                data = unpack(blob)
            else:
                rebuilt = chains.get(row_id)
                if rebuilt is None:
                    continue
                data = rebuilt.data
            at = datetime.fromtimestamp(taken_at, UTC)
            out.append((Stored(row_id, at, epoch), Snapshot(target, source, at, taken_by, epoch, data)))
        return out

    def nearest(
        self, target: str, source: str, wanted: datetime, *, earliest: datetime, latest: datetime
    ) -> Snapshot | None:
        """The stored snapshot nearest to `wanted`, taken between `earliest` and `latest`; None when there is none."""
        if not self.store.exists():
            return None
        params = _between(target, source, earliest, latest, wanted=wanted.timestamp())
        with self._read() as conn:
            found = self._rebuilt(conn, conn.execute(NEAREST_SNAPSHOT, params).fetchall())
        return found[0][1] if found else None

    def stored(
        self, target: str, source: str, *, earliest: datetime, latest: datetime, limit: int = 100_000
    ) -> list[Stored]:
        """The snapshots stored between `earliest` and `latest`, oldest first, without their counters: the window
        rule (`imsnb.sampling.start`) picks among them by time and epoch, then reads only the one it uses."""
        if not self.store.exists():
            return []
        params = _between(target, source, earliest, latest, limit=limit)
        with self._read() as conn:
            rows = conn.execute(STORED_BETWEEN, params).fetchall()
        return [Stored(row_id, datetime.fromtimestamp(taken_at, UTC), epoch) for row_id, taken_at, epoch in rows]

    def newest(
        self, target: str, source: str, *, earliest: datetime, latest: datetime, limit: int
    ) -> list[tuple[Stored, Snapshot]]:
        """Up to `limit` snapshots stored between `earliest` and `latest`, the newest ones, oldest first, counters
        included, in one read (Redis's are small; a reset shows only by comparing them one after the other)."""
        if not self.store.exists():
            return []
        params = _between(target, source, earliest, latest, limit=limit)
        with self._read() as conn:
            rows = conn.execute(NEWEST_BETWEEN, params).fetchall()
            return self._rebuilt(conn, list(reversed(rows)))

    def load(self, stored: Stored) -> Snapshot | None:
        """The snapshot `stored` names, counters included (None when retention pruned it meanwhile)."""
        if not self.store.exists():
            return None
        with self._read() as conn:
            found = self._rebuilt(conn, conn.execute(SNAPSHOT_BY_ID, {"id": stored.id}).fetchall())
        return found[0][1] if found else None

    def count(self) -> int:
        if not self.store.exists():
            return 0
        with self._connect() as conn:
            rows = conn.execute(COUNT_ROWS).fetchone()[0]
        conn.close()
        return int(rows)

    def save_baseline(self, target: str, source: str, data: Any, *, taken_by: str, period: dict[str, Any]) -> None:
        with self._connect() as conn:
            conn.execute(
                UPSERT_BASELINE,
                {
                    "target": target,
                    "source": source,
                    "saved_at": datetime.now(UTC).timestamp(),
                    "taken_by": taken_by,
                    "period": json.dumps(period),
                    "data": zlib.compress(json.dumps(data, default=str).encode(), 6),
                },
            )
        conn.close()

    def baseline(self, target: str, source: str) -> Baseline | None:
        if not self.store.exists():
            return None
        with self._connect() as conn:
            row = conn.execute(SELECT_BASELINE, {"target": target, "source": source}).fetchone()
        conn.close()
        if row is None:
            return None
        saved_at, taken_by, period, data = row
        saved = datetime.fromtimestamp(saved_at, UTC)
        return Baseline(target, source, saved, taken_by, json.loads(period), _unpack(data))

    def add_plans(
        self, target: str, plans: dict[str, tuple[str, dict[str, Any]]], *, taken_at: datetime, taken_by: str
    ) -> int:
        """Store each statement's plan shape ({queryid: (plan hash, shape)}) only where it differs from the last one
        stored for that statement; an unchanged shape moves its last_seen. Returns how many new shapes were stored."""
        added = 0
        with self._connect() as conn:
            for queryid, (plan_hash, shape) in plans.items():
                latest = conn.execute(LATEST_PLAN, {"target": target, "queryid": str(queryid)}).fetchone()
                if latest is not None and latest[1] == plan_hash:
                    conn.execute(TOUCH_PLAN, {"id": latest[0], "seen": taken_at.timestamp()})
                    continue
                conn.execute(
                    INSERT_PLAN,
                    {
                        "target": target,
                        "queryid": str(queryid),
                        "plan_hash": plan_hash,
                        "seen": taken_at.timestamp(),
                        "taken_by": taken_by,
                        "shape": zlib.compress(json.dumps(shape, default=str).encode(), 6),
                    },
                )
                added += 1
        conn.close()
        return added

    def plans(self, target: str, queryid: str, *, until: datetime | None = None) -> list[StoredPlan]:
        """The shapes stored for one statement, oldest first (first seen at or before `until`, default: all)."""
        if not self.store.exists():
            return []
        until_ts = (until or datetime.now(UTC) + timedelta(days=1)).timestamp()
        with self._connect() as conn:
            rows = conn.execute(SELECT_PLANS, {"target": target, "queryid": str(queryid), "until": until_ts}).fetchall()
        conn.close()
        return [
            StoredPlan(
                queryid,
                plan_hash,
                datetime.fromtimestamp(first, UTC),
                datetime.fromtimestamp(last, UTC),
                taken_by,
                _unpack(shape),
            )
            for queryid, plan_hash, first, last, taken_by, shape in rows
        ]


def _between(target: str, source: str, earliest: datetime, latest: datetime, **more: Any) -> dict[str, Any]:
    """The query parameters of a read between two times."""
    return {"target": target, "source": source, "earliest": earliest.timestamp(), "latest": latest.timestamp(), **more}


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob).decode())
