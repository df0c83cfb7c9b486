"""What every sampled source shares: the source names, two snapshots and the period between them, restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from imsnb.history import Snapshot
from imsnb.period import Period, since

__all__ = [
    "PG_DATABASE",
    "PG_SOURCES",
    "PG_STATEMENTS",
    "PG_TABLES",
    "REDIS_INFO",
    "Delta",
    "counters_since",
    "period_of",
    "same_counters",
]

PG_STATEMENTS = "pg_stat_statements"
PG_DATABASE = "pg_stat_database"
PG_TABLES = "pg_stat_user_tables"
REDIS_INFO = "redis_info"
PG_SOURCES = (PG_STATEMENTS, PG_DATABASE, PG_TABLES)


@dataclass
class Delta:
    """Two snapshots of one source and what lies between them."""

    before: Snapshot | None  # None: sampling off or the first snapshot failed (lifetime totals)
    after: Snapshot
    period: Period
    reset: str = ""  # "a restart/stats reset between the snapshots: ..." when counters went down

    @property
    def seconds(self) -> float:
        return max(self.period.seconds or 0.0, 1e-9)


def period_of(before: Snapshot | None, after: Snapshot, basis: str, note: str = "") -> Period:
    if before is None:
        return since(lifetime_start(after), after.taken_at, note)
    return Period(before.taken_at, after.taken_at, basis, note)


def counters_since(snapshot: Snapshot) -> datetime | None:
    """When a snapshot's counters certainly count from, or None when the server does not say.

    PostgreSQL: the second part of the epoch (`postgres_snapshot` records there pg_stat_statements_info.stats_reset,
    or for pg_stat_database / pg_stat_user_tables the time cumulative statistics were last discarded or reset). Not
    the postmaster's start: PostgreSQL keeps these counters across a clean restart (measured on 15). Redis: the
    server's start (its uptime before the snapshot); a CONFIG RESETSTAT is recorded nowhere in Redis, only seen as
    counters going down between two snapshots."""
    if snapshot.source == REDIS_INFO:
        uptime = snapshot.data.get("uptime_s") if isinstance(snapshot.data, dict) else None
        if isinstance(uptime, (int, float)) and uptime >= 0:  # whole seconds, rounded down: the earliest it can be
            return snapshot.taken_at - timedelta(seconds=uptime + 1)
        return None
    parts = snapshot.epoch.split("|")
    return _instant(parts[1]) if len(parts) == 2 else None


def lifetime_start(snapshot: Snapshot) -> datetime | None:
    """What a snapshot's lifetime counters count from: `counters_since`, else (PostgreSQL 13 and older, whose
    pg_stat_statements says no reset time) the server's start, the best guess; callers label it "restart/reset"."""
    return counters_since(snapshot) or epoch_start(snapshot.epoch)


def epoch_start(epoch: str) -> datetime | None:
    """The latest of the restart / reset times recorded in an epoch string."""
    times = [t for t in (_instant(part) for part in epoch.split("|")) if t is not None]
    return max(times) if times else None


def _instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def same_counters(before: Snapshot, after: Snapshot) -> bool:
    """Whether `after`'s counters run on from `before`'s (no restart that lost them, no reset between): Redis by
    its run_id; PostgreSQL by the time its counters count from when both snapshots record it (a restart that kept
    them is no reset), else by the whole epoch (restart and reset times)."""
    return same_epoch(before.epoch, after.epoch)


def same_epoch(before: str, after: str) -> bool:
    """`same_counters` on two epoch strings (a stored snapshot's, before reading its counters)."""
    old, new = before.split("|"), after.split("|")
    if len(old) == 2 and len(new) == 2 and _instant(old[1]) is not None and _instant(new[1]) is not None:
        return _instant(old[1]) == _instant(new[1])
    return before == after


def epoch_reset_note(before: Snapshot, after: Snapshot) -> str:
    """'' when the counters run on from `before`; else what restarted or was reset between the snapshots."""
    if same_counters(before, after):
        return ""
    if after.source == REDIS_INFO:
        return f"Redis restarted between {before.taken_at:%H:%M:%S} and {after.taken_at:%H:%M:%S} (new run_id)"
    old, new = before.epoch.split("|"), after.epoch.split("|")
    what = "server restarted" if old[0] != new[0] else "statistics were reset"
    when = lifetime_start(after)
    at = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if when else ""
    return f"{what}{at}, between the snapshots: numbers count from then"


def iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
