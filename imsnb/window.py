"""Incident time windows: `window="30m"` or explicit `start`/`end` in UTC ISO 8601."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imsnb.errors import BadParameter

_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_WINDOW = timedelta(days=31)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M:%S} – {self.end:%Y-%m-%d %H:%M:%S} UTC"


def parse_duration(text: str) -> timedelta:
    """'30m' -> timedelta(minutes=30). Accepts s, m, h, d; between 1 s and 31 days."""
    if not isinstance(text, str):
        raise BadParameter(f"window must be a string like '30m', '1h' or '2d', not {text!r}")
    match = _DURATION.match(text)
    if not match:
        raise BadParameter(f"window {text!r} is not a duration: use a number and a unit s, m, h or d, e.g. '30m'")
    delta = timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])
    if delta <= timedelta(0) or delta > MAX_WINDOW:
        raise BadParameter(f"window {text!r} is out of range: use between 1s and 31d")
    return delta


def parse_instant(text: str, name: str = "time") -> datetime:
    """An ISO 8601 timestamp; naive means UTC. Returned timezone-aware in UTC."""
    if not isinstance(text, str) or not text.strip():
        raise BadParameter(f"{name} must be an ISO 8601 time like '2026-02-08T15:30:00Z', not {text!r}")
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise BadParameter(f"{name} {text!r} is not an ISO 8601 time: use e.g. '2026-02-08T15:30:00Z'") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def resolve_window(
    window: str | None = "1h", start: str | None = None, end: str | None = None, *, now: datetime | None = None
) -> Window:
    """The incident window: [start, end] if given, else the `window` ending at `end` (default now)."""
    now = now or datetime.now(UTC)
    end_at = parse_instant(end, "end") if end else now
    if start:
        start_at = parse_instant(start, "start")
    else:
        start_at = end_at - parse_duration(window or "1h")
    if start_at >= end_at:
        raise BadParameter(f"start {start_at:%Y-%m-%dT%H:%M:%SZ} is not before end {end_at:%Y-%m-%dT%H:%M:%SZ}")
    if end_at - start_at > MAX_WINDOW:
        raise BadParameter("the window between start and end is longer than 31 days: narrow it")
    return Window(start_at, end_at)
