"""The snapshot history: counter snapshots and baselines in an embedded SQLite store, with bounded retention.

One row per target, source and time. A snapshot holds counters only (no query text, no literals, nothing secret),
zlib-compressed JSON. Where: IMSNB_HISTORY, else `outputs/.history.sqlite` in the repository. Kept for
IMSNB_HISTORY_DAYS (default 14) and at most IMSNB_HISTORY_MAX_MB (default 200) of snapshot data; every write prunes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imsnb.errors import ImsnbError

DEFAULT_DAYS = 14.0
DEFAULT_MAX_MB = 200.0
BUSY_TIMEOUT_S = 5.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    taken_at REAL NOT NULL,
    taken_by TEXT NOT NULL,
    epoch TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_target ON snapshots (target, source, taken_at);
CREATE TABLE IF NOT EXISTS baselines (
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    saved_at REAL NOT NULL,
    taken_by TEXT NOT NULL,
    period TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (target, source)
);
"""
INSERT_SNAPSHOT = """
INSERT INTO snapshots (target, source, taken_at, taken_by, epoch, data)
VALUES (:target, :source, :taken_at, :taken_by, :epoch, :data)
"""
NEAREST_SNAPSHOT = """
SELECT target, source, taken_at, taken_by, epoch, data
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
SELECT id, target, source, taken_at, taken_by, epoch, data
FROM snapshots
WHERE target = :target AND source = :source AND taken_at BETWEEN :earliest AND :latest
ORDER BY taken_at DESC
LIMIT :limit
"""
SNAPSHOT_BY_ID = """
SELECT target, source, taken_at, taken_by, epoch, data
FROM snapshots
WHERE id = :id
"""
PRUNE_BY_AGE = "DELETE FROM snapshots WHERE taken_at < :oldest"
STORED_BYTES = "SELECT coalesce(sum(length(data)), 0) FROM snapshots"
PRUNE_OLDEST = "DELETE FROM snapshots WHERE id IN (SELECT id FROM snapshots ORDER BY taken_at LIMIT :rows)"
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


@dataclass
class Snapshot:
    """Cumulative counters of one source on one target at one time. `epoch` changes on a restart or stats reset."""

    target: str
    source: str
    taken_at: datetime
    taken_by: str
    epoch: str
    data: Any

    def to_row(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "source": self.source,
            "taken_at": self.taken_at.timestamp(),
            "taken_by": self.taken_by,
            "epoch": self.epoch,
            "data": zlib.compress(json.dumps(self.data, separators=(",", ":"), default=str).encode(), 6),
        }

    @classmethod
    def from_row(cls, row: tuple) -> Snapshot:
        target, source, taken_at, taken_by, epoch, data = row
        return cls(target, source, datetime.fromtimestamp(taken_at, UTC), taken_by, epoch, _unpack(data))


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


def history_path() -> Path:
    """IMSNB_HISTORY, else outputs/.history.sqlite next to the notebooks (the archive's folder)."""
    default = Path(__file__).resolve().parent.parent / "outputs" / ".history.sqlite"
    return Path(os.environ.get("IMSNB_HISTORY") or default)


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
    """The store. Opened per use (a run writes a handful of rows); safe for several runs at once (SQLite locking)."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else history_path()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        conn.executescript(SCHEMA)
        return conn

    def add(self, *snapshots: Snapshot) -> None:
        """Store snapshots, then prune what is past retention (age, then size)."""
        keep_for, max_bytes = retention()
        with self._connect() as conn:
            conn.executemany(INSERT_SNAPSHOT, [s.to_row() for s in snapshots])
            conn.execute(PRUNE_BY_AGE, {"oldest": (datetime.now(UTC) - keep_for).timestamp()})
            rows = conn.execute(COUNT_ROWS).fetchone()[0]
            while rows > 1 and conn.execute(STORED_BYTES).fetchone()[0] > max_bytes:  # the oldest tenth at a time
                conn.execute(PRUNE_OLDEST, {"rows": max(1, rows // 10)})
                rows = conn.execute(COUNT_ROWS).fetchone()[0]
        conn.close()

    def nearest(
        self, target: str, source: str, wanted: datetime, *, earliest: datetime, latest: datetime
    ) -> Snapshot | None:
        """The stored snapshot nearest to `wanted`, taken between `earliest` and `latest`; None when there is none."""
        if not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute(
                NEAREST_SNAPSHOT,
                {
                    "target": target,
                    "source": source,
                    "wanted": wanted.timestamp(),
                    "earliest": earliest.timestamp(),
                    "latest": latest.timestamp(),
                },
            ).fetchone()
        conn.close()
        return None if row is None else Snapshot.from_row(row)

    def stored(
        self, target: str, source: str, *, earliest: datetime, latest: datetime, limit: int = 100_000
    ) -> list[Stored]:
        """The snapshots stored between `earliest` and `latest`, oldest first, without their counters: the window
        rule (`imsnb.sampling.start`) picks among them by time and epoch, then reads only the one it uses."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                STORED_BETWEEN,
                {
                    "target": target,
                    "source": source,
                    "earliest": earliest.timestamp(),
                    "latest": latest.timestamp(),
                    "limit": limit,
                },
            ).fetchall()
        conn.close()
        return [Stored(row_id, datetime.fromtimestamp(taken_at, UTC), epoch) for row_id, taken_at, epoch in rows]

    def newest(
        self, target: str, source: str, *, earliest: datetime, latest: datetime, limit: int
    ) -> list[tuple[Stored, Snapshot]]:
        """Up to `limit` snapshots stored between `earliest` and `latest`, the newest ones, oldest first, counters
        included, in one read (Redis's are small; a reset shows only by comparing them one after the other)."""
        if not self.path.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                NEWEST_BETWEEN,
                {
                    "target": target,
                    "source": source,
                    "earliest": earliest.timestamp(),
                    "latest": latest.timestamp(),
                    "limit": limit,
                },
            ).fetchall()
        conn.close()
        found = [(row[0], Snapshot.from_row(row[1:])) for row in reversed(rows)]
        return [(Stored(row_id, snap.taken_at, snap.epoch), snap) for row_id, snap in found]

    def load(self, stored: Stored) -> Snapshot | None:
        """The snapshot `stored` names, counters included (None when retention pruned it meanwhile)."""
        with self._connect() as conn:
            row = conn.execute(SNAPSHOT_BY_ID, {"id": stored.id}).fetchone()
        conn.close()
        return None if row is None else Snapshot.from_row(row)

    def count(self) -> int:
        if not self.path.exists():
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
        if not self.path.exists():
            return None
        with self._connect() as conn:
            row = conn.execute(SELECT_BASELINE, {"target": target, "source": source}).fetchone()
        conn.close()
        if row is None:
            return None
        saved_at, taken_by, period, data = row
        saved = datetime.fromtimestamp(saved_at, UTC)
        return Baseline(target, source, saved, taken_by, json.loads(period), _unpack(data))


def _unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob).decode())
