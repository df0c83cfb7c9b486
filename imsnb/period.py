"""What span a number covers: `Period(start, end, basis)`, carried by every counter-based finding.

The basis says how the span was measured:
- `sample`: two snapshots taken by this run (the setup cell, then the section), `sample_s` apart; with a window, the
  note says how much of it the sample leaves out;
- `history`: a snapshot from the history store (taken by an earlier run or `imsnb record`) and one taken now; the
  note says how much of the window it leaves out when the stored snapshot lies inside the window;
- `window`: the window's own figures. A time series over the incident window (CloudWatch, Prometheus): the span the
  query asked for, carried by the frame the query returned (`tag` / `frame_period`) to the judges that read it. Or
  counters whose statistics started inside the window (a restart that lost them, a reset): their totals since then
  are all the window holds, from that start (the note says when and why);
- `since restart`: a counter's lifetime total, since the server started or its statistics were reset. Context, not
  the basis of an alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BASES = ("sample", "history", "window", "since restart")
SHORT_BASES = {"sample": "sampled", "history": "from history", "window": "window"}
RECENT_S = 600  # a span that ended this close to now is "the last ..." in `Period.short`


@dataclass(frozen=True)
class Period:
    start: datetime | None
    end: datetime
    basis: str
    note: str = ""  # e.g. "from a snapshot taken by health_check", "a restart between the snapshots"

    def __post_init__(self) -> None:
        if self.basis not in BASES:
            raise ValueError(f"period basis {self.basis!r} is not one of {BASES}")

    @property
    def seconds(self) -> float | None:
        return None if self.start is None else (self.end - self.start).total_seconds()

    @property
    def lifetime(self) -> bool:
        return self.basis == "since restart"

    def label(self) -> str:
        """'sample 20:17:03–20:17:13 UTC (10 s)', 'since restart 2026-10-20 03:00 UTC (40.1 d)'."""
        if self.start is None:
            text = f"{self.basis} (start unknown) to {self.end:%H:%M:%S} UTC"
        elif self.lifetime:
            text = f"since restart/reset {self.start:%Y-%m-%d %H:%M} UTC ({_span(self.seconds)})"
        elif self.start.date() == self.end.date():
            text = f"{self.basis} {self.start:%H:%M:%S}–{self.end:%H:%M:%S} UTC ({_span(self.seconds)})"
        else:
            text = f"{self.basis} {self.start:%Y-%m-%d %H:%M}–{self.end:%Y-%m-%d %H:%M} UTC ({_span(self.seconds)})"
        return f"{text}, {self.note}" if self.note else text

    def short(self, now: datetime | None = None) -> str:
        """A glance for a table or a terminal line: 'last 46 s, from history', 'last 10 s, sampled', 'last 60 min,
        window', 'since restart, 40.1 d'; a span that ended more than RECENT_S before `now` (default: the clock)
        says when it ended instead of "last". `label()` has the times and the note."""
        span = _span(self.seconds)
        if self.lifetime:
            return f"since restart, {span}" if self.start is not None else "since restart"
        how = SHORT_BASES[self.basis]
        if self.start is None:
            return f"{how}, to {self.end:%H:%M} UTC"
        now = now or datetime.now(UTC)
        if abs((now - self.end).total_seconds()) <= RECENT_S:
            return f"last {span}, {how}"
        return f"{span} to {self.end:%Y-%m-%d %H:%M} UTC, {how}"

    def __str__(self) -> str:
        return self.label()

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": None if self.start is None else self.start.isoformat(timespec="seconds"),
            "to": self.end.isoformat(timespec="seconds"),
            "basis": self.basis,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Period | None:
        if not data:
            return None
        start = datetime.fromisoformat(data["from"]) if data.get("from") else None
        return cls(start, datetime.fromisoformat(data["to"]), data["basis"], data.get("note") or "")


FRAME_ATTR = "imsnb.period"  # where a queried frame carries its period (pandas `DataFrame.attrs`)


def tag(frame: Any, period: Period) -> Any:
    """`frame` (a DataFrame) marked with the period its query covered; returned for chaining. Filters, sorts and
    column changes keep the mark (pandas copies `attrs`); a new frame built from it does not, so pass it on."""
    frame.attrs[FRAME_ATTR] = period
    return frame


def frame_period(frame: Any) -> Period | None:
    """The period a queried frame covers (`tag`), or None for a frame that carries none."""
    found = getattr(frame, "attrs", {}).get(FRAME_ATTR)
    return found if isinstance(found, Period) else None


def since(start: datetime | None, end: datetime | None = None, note: str = "") -> Period:
    """A lifetime counter's period: since `start` (the restart or stats reset) until now."""
    return Period(start, end or datetime.now(UTC), "since restart", note)


def duration(seconds: float) -> str:
    """A span as a reader says it, to the second below an hour: '10 s', '14 min 50 s', '2 h 5 min', '3 d 4 h'."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    if whole < 86400:
        hours, rest = divmod(whole, 3600)
        return f"{hours} h {rest // 60} min" if rest // 60 else f"{hours} h"
    days, rest = divmod(whole, 86400)
    return f"{days} d {rest // 3600} h" if rest // 3600 else f"{days} d"


def _span(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
