"""`imsnb record`: counter snapshots (and the plans of the busiest statements) of every configured target into the
history store, between incidents.

Cheap (a few catalogue reads per target and round); a target that does not answer is said and skipped, the loop
goes on. Runs one round (for cron), or every `--every` for `--for` (or until interrupted, for a scheduler).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from imsnb import config
from imsnb.cache import Cache
from imsnb.errors import NotConfigured
from imsnb.history import History, retention
from imsnb.postgres import Database
from imsnb.sampling import PG_SOURCES, postgres_snapshot, record_plans, redis_snapshot
from imsnb.state import check_store
from imsnb.window import parse_duration

TAKEN_BY = "imsnb record"


def postgres_configured() -> bool:
    return bool(config.postgres_settings()) or any(os.environ.get(n) for n in ("PGHOST", "PGDATABASE", "PGSERVICE"))


def redis_configured() -> bool:
    try:
        config.redis_settings()
    except NotConfigured:
        return False
    return True


def record_once(history: History | None = None) -> list[str]:
    """One round: snapshots of every source of every configured target, stored; one line per target."""

    history = history or History()
    lines = []
    if postgres_configured():
        with Database("imsnb/record") as db:
            try:
                snapshots = [postgres_snapshot(db, source, TAKEN_BY) for source in PG_SOURCES]
            except Exception as exc:  # noqa: BLE001 - a recorder outlives an outage
                lines.append(f"postgres {db.label}: not recorded: {_one_line(exc)}")
            else:
                line, written = _written(history, snapshots)
                lines.append(line)
                if written:
                    lines.append(_record_plans(db, history, snapshots[0]))
    if redis_configured():
        with Cache("imsnb/record") as cache:
            try:
                snapshot = redis_snapshot(cache, TAKEN_BY)
            except Exception as exc:  # noqa: BLE001
                lines.append(f"redis {cache.label}: not recorded: {_one_line(exc)}")
            else:
                lines.append(_written(history, [snapshot])[0])
    if not lines:
        lines.append("no target configured: set DB_HOST/PG* and/or REDIS_URL/REDIS_HOST")
    return lines


def _written(history: History, snapshots: list) -> tuple[str, bool]:
    """Store the round's snapshots of one target: the line (how many, or that they were taken but not written, and
    why: an unreachable store; the recorder goes on, the next round tries again) and whether they were written."""
    target = snapshots[0].target
    try:
        history.add(*snapshots)
    except Exception as exc:  # noqa: BLE001 - a recorder outlives its store's outage too
        return f"{target}: {len(snapshots)} snapshot(s) taken but not written ({_one_line(exc)})", False
    return f"{target}: {len(snapshots)} snapshot{'s' if len(snapshots) > 1 else ''}", True


def _record_plans(db, history: History, statements) -> str:
    """The plans of the statements that moved since the last round, kept where their shape changed; a plan that
    cannot be taken (no rights to the tables, say) is a line, never the loss of the round's snapshots."""
    try:
        added = record_plans(db, history, taken_by=TAKEN_BY, statements=statements)
    except Exception as exc:  # noqa: BLE001
        return f"{statements.target}: plans not recorded: {_one_line(exc)}"
    return f"{statements.target}: {added} new plan shape(s)"


def record(
    every_s: float | None = None,
    for_s: float | None = None,
    *,
    history: History | None = None,
    stop: threading.Event | None = None,
    on_round: Callable[[list[str]], None] = lambda lines: None,
) -> int:
    """Rounds every `every_s` for `for_s` seconds (one round when neither is given); returns the rounds taken."""
    stop = stop or threading.Event()
    started = time.monotonic()
    rounds = 0
    while True:
        on_round(record_once(history))
        rounds += 1
        if every_s is None and for_s is None:
            return rounds
        interval = every_s if every_s is not None else 60.0
        if for_s is not None and time.monotonic() - started + interval > for_s:
            return rounds
        if stop.wait(interval):
            return rounds


def record_until_stopped(
    every: str | None,
    duration: str | None,
    *,
    history_path: Path | str | None = None,
    on_round: Callable[[list[str]], None] = lambda lines: None,
) -> tuple[int, str]:
    """`imsnb record`: one round, or rounds every `every` for `duration` (durations such as "60s", "2h"; without
    `duration`, until stopped). Bad durations, a bad IMSNB_HISTORY_DAYS, a bad IMSNB_STATE_URL or one naming the
    diagnosed database are bad input before any round; SIGTERM ends the loop after the round in progress. The
    rounds taken and the store they went into (its name, without credentials)."""

    every_s = parse_duration(every).total_seconds() if every else None
    for_s = parse_duration(duration).total_seconds() if duration else None
    retention()
    history = History(history_path) if history_path else History(check_store())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return record(every_s, for_s, history=history, stop=stop, on_round=on_round), history.name


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
