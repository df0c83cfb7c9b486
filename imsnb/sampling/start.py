"""Where an incident window's counter numbers start: the window rule, in order.

1. The statistics started inside the window (a restart that lost them or a reset, `counters_since`; for Redis also a
   CONFIG RESETSTAT seen between stored snapshots): their totals since that start are the window's figures, and a
   stored snapshot from before that start is void.
2. Else the latest stored snapshot at or before the window's start (at most `slack` earlier) gives the delta.
3. Else the earliest stored snapshot inside the window; `uncovered_note` says how much of the window it leaves out.
4. Else nothing stored stands for the window: the run's own sample stands alone (`Sample.delta`), and
   `uncovered_note` says how much of the window is not covered and how to cover it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imsnb.history import History, Snapshot, Stored
from imsnb.history_chains import kept_every
from imsnb.period import duration
from imsnb.sampling.cache import counters_went_down
from imsnb.sampling.deltas import REDIS_INFO, counters_since, epoch_reset_note, epoch_start, same_epoch
from imsnb.window import Window

__all__ = [
    "Start",
    "window_start",
]

SLACK_MIN = timedelta(seconds=90)  # `imsnb record` every minute (from cron, with its jitter) leaves one this close
SLACK_MAX = timedelta(minutes=15)
# Statistics that start this close to the server's start started with it: pg_stat_statements stamps its start while
# the server sets up, just before pg_postmaster_start_time() (measured: 4 ms); a new cluster stamps its shared
# statistics at initdb (0.9 s before); after a crash they are discarded as it starts (4 ms after). A reset needs a
# session, so comes later.
SET_UP = timedelta(seconds=5)
STARTING = timedelta(seconds=1)
MAX_REDIS_SCAN = 1440  # stored Redis snapshots read to find a CONFIG RESETSTAT (a day of `imsnb record` a minute)
RECORD_ADVICE = "run `imsnb record` every minute (cron) to cover windows"


@dataclass(frozen=True)
class Start:
    """Where a window's numbers start. `before` is subtracted from the snapshot taken now; None with rule 1 (the
    counters' own start is the zero). `start` is where the period begins; `basis` is "window" (rule 1) or
    "history" (rules 2 and 3)."""

    before: Snapshot | None
    start: datetime
    basis: str
    note: str


def slack(window: Window, now: datetime) -> timedelta:
    """How long before the window's start a stored snapshot may have been taken and still stand for it (rule 2): a
    quarter of the window, SLACK_MIN to SLACK_MAX; where the history keeps snapshots further apart at the start's
    age (`now` - start: one per 15 min past a day, one an hour past three days, `history_chains.kept_every`), as far
    as that spacing reaches, but never more than the window's own length (the period at most doubles)."""
    base = min(SLACK_MAX, max(SLACK_MIN, timedelta(seconds=window.seconds / 4)))
    kept = kept_every(now - window.start)
    return max(base, min(kept + SLACK_MIN, timedelta(seconds=window.seconds))) if kept else base


def window_start(
    window: Window,
    after: Snapshot,
    history: History,
    *,
    older_than: datetime,
    first: Snapshot | None = None,
    live: bool = True,
) -> tuple[Start | None, str]:
    """Rules 1 to 3 for `after` (the snapshot taken now): where the window's numbers start, or None when only the
    run's own sample is left; and a note on a stored snapshot found void ("" when none was).

    `older_than`: stored snapshots taken from then on are this run's own (or concurrent runs'), not history.
    `first`: this run's first snapshot (a Redis reset between the last stored one and it voids them all).
    `live`: the window reaches to now; a window that ended long ago is not what counters since a start inside it
    cover (they run to now), so rule 1 is not applied to it."""
    since = counters_since(after)
    if live and since is not None and since >= window.start:
        return Start(None, since, "window", started_note(after, since)), ""
    with history.reading():  # the stored snapshots listed and the one read: one view, whatever compaction runs
        return _from_history(window, after, history, older_than=older_than, first=first, live=live)


def _from_history(
    window: Window, after: Snapshot, history: History, *, older_than: datetime, first: Snapshot | None, live: bool
) -> tuple[Start | None, str]:
    """Rules 2 and 3 (and Redis's CONFIG RESETSTAT seen between stored snapshots)."""
    earliest = window.start - slack(window, older_than)  # the age as of this run's first snapshot: one answer
    loaded: dict[int, Snapshot] = {}
    if after.source == REDIS_INFO:  # small: read with their counters, to find a CONFIG RESETSTAT between them
        found = history.newest(after.target, after.source, earliest=earliest, latest=older_than, limit=MAX_REDIS_SCAN)
        refs, loaded = [ref for ref, _ in found], {ref.id: snap for ref, snap in found}
        if len(found) == MAX_REDIS_SCAN and refs[0].taken_at > window.start:  # they stop short of the start: add it
            before = history.stored(after.target, after.source, earliest=earliest, latest=window.start)
            snapshot = history.load(before[-1]) if before else None
            if snapshot is not None:  # a reset between it and the newest shows as counters going down between them
                refs, loaded = [before[-1], *refs], {**loaded, before[-1].id: snapshot}
    else:
        refs = history.stored(after.target, after.source, earliest=earliest, latest=older_than)
    same = [r for r in refs if same_epoch(r.epoch, after.epoch)]
    void = _void_note(refs, same, after)
    if after.source == REDIS_INFO and same:
        same, reset = _after_last_reset(same, loaded, first, after)
        if reset is not None:
            reset_from, reset_by = reset
            if live and reset_from >= window.start:
                return Start(None, reset_from, "window", _resetstat_note(reset_from, reset_by)), ""
            void = f"stored snapshots up to {reset_from:%H:%M:%S} UTC predate a CONFIG RESETSTAT: not subtracted"
    at_or_before = [r for r in same if r.taken_at <= window.start]
    # after the end of a window that ended long ago, a snapshot covers none of it (a live one reaches to now)
    inside = [r for r in same if window.start < r.taken_at and (live or r.taken_at < window.end)]
    for ref in ([at_or_before[-1]] if at_or_before else []) + inside[:1]:
        stored = loaded.get(ref.id) or history.load(ref)
        if stored is not None:
            note = f"from a snapshot taken by {stored.taken_by} at {stored.taken_at:%H:%M:%S} UTC"
            return Start(stored, stored.taken_at, "history", note), void
    return None, void


def started_note(after: Snapshot, since: datetime) -> str:
    """'statistics started 16:44:31 UTC (the server started), inside the window: totals since then'."""
    server = None if after.source == REDIS_INFO else epoch_start(after.epoch.split("|")[0])
    if after.source == REDIS_INFO:
        why = " (Redis started)"
    elif server is None or since < server - SET_UP:
        why = ""  # well before this server's start: a new cluster's set-up, or an earlier start that lost them
    else:
        why = " (the server started)" if since <= server + STARTING else " (a statistics reset)"
    return f"statistics started {_clock(since, after.taken_at)} UTC{why}, inside the window: totals since then"


def uncovered_note(window: Window, covered_s: float, what: str) -> str:
    """'the sample covers 10 s of the 15 min window; 14 min 50 s not covered; run `imsnb record` ...', or "" when
    the period covers the window."""
    missing = window.seconds - covered_s
    if missing < 1:
        return ""
    return (
        f"the {what} covers {duration(covered_s)} of the {duration(window.seconds)} window; "
        f"{duration(missing)} not covered; {RECORD_ADVICE}"
    )


def _resetstat_note(reset_from: datetime, reset_by: datetime) -> str:
    return (
        f"statistics started between {reset_from:%H:%M:%S} and {reset_by:%H:%M:%S} UTC (a CONFIG RESETSTAT: the "
        "counters went down), inside the window: totals since then"
    )


def _void_note(refs: list[Stored], same: list[Stored], after: Snapshot) -> str:
    """The latest stored snapshot of another restart/reset, when it is newer than every usable one."""
    others = [r for r in refs if r not in same]
    if not others or (same and same[-1].taken_at > others[-1].taken_at):
        return ""
    latest = others[-1]
    shadow = Snapshot(after.target, after.source, latest.taken_at, "", latest.epoch, None)
    return (
        f"the stored snapshot of {latest.taken_at:%H:%M:%S} UTC predates a restart or reset "
        f"({epoch_reset_note(shadow, after)}): not subtracted"
    )


def _after_last_reset(
    same: list[Stored], loaded: dict[int, Snapshot], first: Snapshot | None, after: Snapshot
) -> tuple[list[Stored], tuple[datetime, datetime] | None]:
    """Redis: the stored snapshots taken after the last CONFIG RESETSTAT, and between which two snapshots that reset
    happened (None when the counters never went down). A reset shows only as counters going down from one snapshot
    to the next, so consecutive ones are compared: the stored ones, then this run's first and the one taken now."""
    chain: list[tuple[Stored | None, Snapshot]] = [(ref, loaded[ref.id]) for ref in same]
    chain += [(None, s) for s in (first, after) if s is not None]
    for i in range(len(chain) - 2, -1, -1):
        (_, earlier), (_, later) = chain[i], chain[i + 1]
        if counters_went_down(earlier, later):
            kept = [ref for ref, _ in chain[i + 1 :] if ref is not None]
            return kept, (earlier.taken_at, later.taken_at)
    return same, None


def _clock(at: datetime, now: datetime) -> str:
    return f"{at:%H:%M:%S}" if at.astimezone(UTC).date() == now.astimezone(UTC).date() else f"{at:%Y-%m-%d %H:%M:%S}"
