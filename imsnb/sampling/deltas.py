"""What every sampled source shares: the source names, two snapshots and the period between them, restarts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from imsnb.findings import Finding, Severity
from imsnb.history import Snapshot
from imsnb.period import Period, since

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


def lifetime_start(snapshot: Snapshot) -> datetime | None:
    """What a snapshot's lifetime counters count from: its epoch's restart or reset time (PostgreSQL), else the
    server's uptime before the snapshot (Redis, whose epoch is its run_id: a CONFIG RESETSTAT since the restart is
    not recorded anywhere, so callers label this start "restart, or a stats reset since")."""
    started = epoch_start(snapshot.epoch)
    uptime = snapshot.data.get("uptime_s") if isinstance(snapshot.data, dict) else None
    if started is None and isinstance(uptime, (int, float)) and uptime > 0:
        started = snapshot.taken_at - timedelta(seconds=uptime)
    return started


def epoch_start(epoch: str) -> datetime | None:
    """The latest of the restart / reset times recorded in an epoch string (what lifetime counters count from)."""
    times = []
    for part in epoch.split("|"):
        try:
            times.append(datetime.fromisoformat(part).astimezone(UTC))
        except ValueError:
            continue
    return max(times) if times else None


def epoch_reset_note(before: Snapshot, after: Snapshot) -> str:
    if before.epoch == after.epoch:
        return ""
    if after.source == REDIS_INFO:
        return f"Redis restarted between {before.taken_at:%H:%M:%S} and {after.taken_at:%H:%M:%S} (new run_id)"
    old, new = before.epoch.split("|"), after.epoch.split("|")
    what = "server restarted" if old[0] != new[0] else "statistics were reset"
    when = epoch_start(after.epoch)
    at = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if when else ""
    return f"{what}{at}, between the snapshots: numbers count from then"


def iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def lifetime_capped(finding: Finding, period: Period, at_most: Severity | str | None = None) -> Finding:
    """A since-restart number alone may still warn (nothing better exists), but the message says so.

    With `at_most` (health_check and triage pass INFO) a since-restart number is context only: never above that
    level, and the message says what it would have been and why it is not a verdict."""
    finding.period = period
    if not period.lifetime:
        return finding
    cap = None if at_most is None else Severity.parse(at_most)
    if cap is not None and finding.severity > cap:
        finding.message += (
            f" (since restart: context only, not a verdict on now; {finding.severity.name} on lifetime totals, "
            f"{cap.name} at most without a sample: set sample_s above 0)"
        )
        finding.severity = cap
    elif finding.severity >= Severity.WARNING:
        finding.message += " (judged on lifetime totals: no sample was available)"
    return finding


def during(period: Period) -> str:
    return f"in the {period.label()}" if not period.lifetime else period.label()
