"""What the history costs over 14 days of `imsnb record` every minute on a busy server (issue 26).

Simulates pg_stat_statements snapshots of S statements, one a minute for D days, a fraction of the statements
moving each minute (chosen at random each minute: the worst case for storing only what moved), written with their
times through `History.add(now=...)`, so downsampling and pruning run as `imsnb record` runs them over the days.
The old format (every snapshot whole) is measured in the same run as the baseline: its bytes per snapshot, and a
store of whole snapshots to read from.

Prints:
  stored    bytes per day of history (by the day the snapshots were taken), the total against the cap, and 14 days
            projected from the days written at each spacing (every minute, 15 min, hourly: --days 5 sees all three)
  write     the median time of one `add` (the store on tmpfs: no fsync measured)
  read      the time to answer a window on day 1 (the oldest: the latest snapshot at or before its start, rebuilt)
            against the same read from whole snapshots (ratio), and that both give the same counters

Usage: .venv/bin/python bench/history_growth.py [--days 14] [--statements 5000] [--moving 0.2] [--same 0]
       (--days 2 --statements 1000 for a quick run)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from imsnb.history import INSERT_SNAPSHOT, History, Snapshot
from imsnb.history_chains import TIERS, kept_every
from imsnb.sampling.deltas import PG_STATEMENTS

TARGET = "postgres bench:5432/app"
CAP_MB = 200
LOOKBACK = max(width for _, width in TIERS) + timedelta(minutes=2)  # the widest bucket's last snapshot, and jitter
BYTES_BY_DAY = """
SELECT
    floor((taken_at - :start) / 86400) AS day,
    count(*),
    sum(length(data)),
    sum(CASE WHEN base_id IS NULL THEN 1 ELSE 0 END)
FROM snapshots
GROUP BY 1
ORDER BY 1
"""


def statements(count: int, rnd: random.Random) -> list[list]:
    """pg_stat_statements rows as `postgres_snapshot` stores them: queryid, database, user, five counters, toplevel."""
    return [[str(rnd.getrandbits(63) - 2**62), "app", "app_user", 0.0, 0.0, 0.0, 0.0, 0.0, True] for _ in range(count)]


def move(rows: list[list], fraction: float, same: float, rnd: random.Random) -> None:
    """`fraction` of the statements move: `same` of them the same ones every minute (the busy ones), the rest
    chosen at random among the others (same=0: all at random each minute, the worst case for storing changes)."""
    moving = int(len(rows) * fraction)
    hot = int(moving * same)
    for row in rows[:hot] + rnd.sample(rows[hot:], moving - hot):
        calls = float(rnd.randint(1, 500))
        row[3] += calls
        row[4] += calls * rnd.uniform(0.05, 40.0)
        row[5] += calls * rnd.randint(0, 20)
        row[6] += calls * rnd.randint(0, 50)
        row[7] += float(rnd.randint(0, 5))


def answer(history: History, at: datetime) -> tuple[float, Snapshot | None]:
    """A window starting at `at`, as the window rule reads it: the stored snapshots listed (as far back as the
    history keeps them apart at that age), the latest at or before `at` read, in one read transaction. (seconds,
    the snapshot)."""
    started = time.perf_counter()
    with history.reading():
        refs = history.stored(TARGET, PG_STATEMENTS, earliest=at - LOOKBACK, latest=at)
        found = history.load(refs[-1]) if refs else None
    return time.perf_counter() - started, found


def fourteen_days(by_day: list[tuple]) -> str:
    """14 days projected from the days written: each day of the 14 at the mean of the measured days kept at the same
    spacing (the newest every minute, then each tier of `TIERS`); "" when a spacing was not measured."""
    measured: dict[timedelta, list[int]] = {}
    for age, (_, _, size, _) in enumerate(reversed(by_day)):  # age 0: the newest day
        measured.setdefault(kept_every(timedelta(days=age + 0.5)), []).append(size)
    widths = [kept_every(timedelta(days=age + 0.5)) for age in range(14)]
    if any(width not in measured for width in widths):
        return ""  # too few days written to see every tier (--days 5 sees all three)
    per_tier = {width: statistics.mean(measured[width]) for width in set(widths)}
    total = sum(per_tier[width] for width in widths)
    spacing = {w: "every minute" if not w else f"one per {w.total_seconds() / 60:g} min" for w in per_tier}
    parts = ", ".join(
        f"{widths.count(w)} day(s) at {per_tier[w] / 1e6:.1f} MB ({spacing[w]})" for w in sorted(per_tier)
    )
    fits = "fits" if total <= CAP_MB * 2**20 else "DOES NOT FIT"
    return f"stored: 14 days projected: {parts}: {total / 1e6:.1f} MB ({fits} the {CAP_MB} MB cap)"


def whole_store(path: Path, snapshots: list[Snapshot]) -> History:
    """The old format: every snapshot stored whole."""
    history = History(path)
    conn = history.store.connect()
    with conn:
        for snapshot in snapshots:
            conn.execute(INSERT_SNAPSHOT, snapshot.to_row()).fetchall()
    conn.close()
    return history


def main(days: float, count: int, moving: float, same: float) -> None:
    rnd = random.Random(26)
    rows = statements(count, rnd)
    minutes = int(days * 1440)
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes)
    # day 1's check: a window starting 12 h into the oldest day (a downsampled bucket's last snapshot answers it)
    check_at = start + timedelta(minutes=min(720, minutes // 2))
    with tempfile.TemporaryDirectory(dir="/dev/shm") as work:
        history = History(Path(work) / "sparse.sqlite")
        writes, whole_sizes, kept = [], [], []
        for minute in range(minutes):
            move(rows, moving, same, rnd)
            at = start + timedelta(minutes=minute)
            snapshot = Snapshot(TARGET, PG_STATEMENTS, at, "bench", "2026-11-01T00:00:00+00:00|None", rows)
            if minute % 60 == 0:
                whole_sizes.append(len(snapshot.to_row()["data"]))
            if at <= check_at and check_at - at < LOOKBACK:
                kept.append(Snapshot(TARGET, PG_STATEMENTS, at, "bench", snapshot.epoch, [list(r) for r in rows]))
            started = time.perf_counter()
            history.add(snapshot, now=at)
            writes.append(time.perf_counter() - started)
            if minute % 1440 == 1439:
                median_ms = statistics.median(writes[-1440:]) * 1000
                print(f"  day {minute // 1440 + 1} written, median add {median_ms:.1f} ms", flush=True)
        conn = history.store.connect()
        by_day = conn.execute(BYTES_BY_DAY, {"start": start.timestamp()}).fetchall()
        conn.close()
        total = sum(b for _, _, b, _ in by_day)
        file_size = history.path.stat().st_size
        whole = statistics.mean(whole_sizes)
        which = "chosen at random each minute" if not same else f"{same:.0%} of them the same every minute"
        print(f"{count:,} statements, {moving:.0%} moving per minute ({which}), {minutes:,} snapshots, {days:g} days")
        print(f"old format: one snapshot {whole / 1024:.1f} KiB whole: {whole * 1440 / 1e6:.1f} MB per day")
        for day, snapshots, size, keyframes in by_day:
            print(f"stored: day {int(day) + 1:>2}: {snapshots:>5} snapshots ({keyframes} whole), {size / 1e6:6.1f} MB")
        print(
            f"stored: {total / 1e6:.1f} MB of snapshot data ({file_size / 1e6:.1f} MB file) for {days:g} days "
            f"against the {CAP_MB} MB cap: {'fits' if total <= CAP_MB * 2**20 else 'DOES NOT FIT'}"
        )
        projection = fourteen_days(by_day)
        if projection:
            print(projection)
        print(f"write:  median add {statistics.median(writes) * 1000:.1f} ms, slowest {max(writes) * 1000:.0f} ms")

        old = whole_store(Path(work) / "whole.sqlite", kept)  # the old format kept every minute
        timings = {"sparse": [], "whole": []}
        answers = {}
        for _ in range(7):
            for name, store in (("sparse", history), ("whole", old)):
                seconds, found = answer(store, check_at)
                timings[name].append(seconds)
                answers[name] = found
        sparse = answers["sparse"]
        full = next((k for k in kept if sparse is not None and k.taken_at == sparse.taken_at), None)
        same = full is not None and sorted(map(repr, sparse.data)) == sorted(map(repr, full.data))
        fast, slow = statistics.median(timings["sparse"]), statistics.median(timings["whole"])
        print(
            f"read:   a window on day 1 ({check_at:%Y-%m-%d %H:%M} UTC): {fast * 1000:.1f} ms rebuilt against "
            f"{slow * 1000:.1f} ms whole, ratio {fast / slow:.2f}x; same counters: {same}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--statements", type=int, default=5_000)
    parser.add_argument("--moving", type=float, default=0.2, help="fraction of statements moving per minute")
    parser.add_argument("--same", type=float, default=0.0, help="of those, the same ones every minute (0: random)")
    args = parser.parse_args()
    main(args.days, args.statements, args.moving, args.same)
