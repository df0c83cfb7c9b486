"""The history stored as the rows that changed (schema version 3): the same answers as whole snapshots, on SQLite
and on a real PostgreSQL store, downsampling after a day that keeps the "latest at or before T" answer, retention
that leaves every chain whole, baselines never pruned, and a read transaction that a compaction cannot tear."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from store_server import new_store, rows

from imsnb import history_chains, postgres, sampling
from imsnb.history import History, Snapshot
from imsnb.sampling.deltas import PG_STATEMENTS
from imsnb.sampling.postgres import statement_delta
from imsnb.sandbox.postgres import APP_DATABASE, PostgresServer

TARGET = "postgres db.internal:5432/app"
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def statements(rnd: random.Random, count: int) -> list[list]:
    return [[str(rnd.getrandbits(62)), "app", "u", 0.0, 0.0, 0.0, 0.0, 0.0, True] for _ in range(count)]


def simulate(history: History, minutes: int, *, count: int = 60, seed: int = 7) -> dict[datetime, list[list]]:
    """`minutes` snapshots a minute apart ending now, written as `imsnb record` writes them (a quarter of the
    statements moving each minute, one evicted and one new now and then, a stats reset two thirds in); returns
    every snapshot's whole data by time: what the old format would have stored."""
    rnd = random.Random(seed)
    data = statements(rnd, count)
    epoch = "2026-11-01T00:00:00+00:00|2026-11-01T00:00:00+00:00"
    written = {}
    start = NOW - timedelta(minutes=minutes - 1)
    for minute in range(minutes):
        at = start + timedelta(minutes=minute)
        for row in rnd.sample(data, count // 4):
            row[3] += float(rnd.randint(1, 9))
            row[4] += rnd.random() * 10
        if minute % 7 == 3:  # pg_stat_statements.max evicts one, a new statement comes
            data.pop(rnd.randrange(len(data)))
            data.append(statements(rnd, 1)[0])
        if minute == minutes * 2 // 3:
            epoch = f"2026-11-01T00:00:00+00:00|{at.isoformat()}"
            for row in data:
                row[3:8] = [0.0] * 5
        snapshot = Snapshot(TARGET, PG_STATEMENTS, at, "tests", epoch, [list(r) for r in data])
        history.add(snapshot, now=at)
        written[at] = [list(r) for r in data]
    return written


def as_set(data: list[list]) -> list[str]:
    return sorted(map(repr, data))


def check_answers(history: History, written: dict[datetime, list[list]]) -> list:
    """Every stored snapshot rebuilt equals what was written then, and a window starting at any minute gets the
    same statement deltas from the sparse store as from whole snapshots of the same times."""
    stored = history.stored(TARGET, PG_STATEMENTS, earliest=NOW - timedelta(days=30), latest=NOW + timedelta(hours=1))
    assert stored, "nothing stored"
    for ref in stored:
        assert as_set(history.load(ref).data) == as_set(written[ref.taken_at]), ref
    latest = max(written)
    after = Snapshot(TARGET, PG_STATEMENTS, latest, "tests", "", written[latest])
    for wanted in list(written)[::17]:
        before = [r for r in stored if r.taken_at <= wanted]
        if not before:
            continue
        sparse = history.load(before[-1])
        whole = Snapshot(
            TARGET, PG_STATEMENTS, before[-1].taken_at, "tests", sparse.epoch, written[before[-1].taken_at]
        )
        after.epoch = sparse.epoch  # the same counters: the deltas are compared, not the reset rule
        got, expected = statement_delta(sparse, after)[0], statement_delta(whole, after)[0]
        order = ["queryid", "database", "user"]
        pd.testing.assert_frame_equal(
            got.sort_values(order).reset_index(drop=True), expected.sort_values(order).reset_index(drop=True)
        )
    return stored


def layout(history: History) -> tuple[int, int]:
    """(snapshots stored whole, snapshots stored as changes)."""
    conn = history.store.connect()
    try:
        whole, changes = conn.execute(
            "SELECT sum(CASE WHEN base_id IS NULL THEN 1 ELSE 0 END), sum(CASE WHEN base_id IS NULL THEN 0 ELSE 1 END) "
            "FROM snapshots"
        ).fetchone()
    finally:
        conn.close()
    return int(whole or 0), int(changes or 0)


@pytest.fixture
def two_hours(monkeypatch):
    """Full resolution for 2 h instead of 24 (the same code, fewer snapshots to write)."""
    monkeypatch.setattr(history_chains, "TIERS", ((timedelta(hours=2), timedelta(minutes=15)),))


@pytest.mark.parametrize("dialect", ["sqlite", pytest.param("postgresql", marks=pytest.mark.servers)])
def test_sparse_snapshots_answer_as_whole_ones_and_older_ones_are_one_per_15_min(
    dialect, request, tmp_path, monkeypatch
):
    monkeypatch.setattr(history_chains, "TIERS", ((timedelta(minutes=30), timedelta(minutes=15)),))  # not 24 h
    history = History(tmp_path / "h.sqlite" if dialect == "sqlite" else new_store(request.getfixturevalue("pg")))
    minutes = 30 + 160  # full resolution, and 2 h 40 min beyond it downsampled
    written = simulate(history, minutes)
    stored = check_answers(history, written)
    ((full_for, width),) = history_chains.TIERS
    every = width.total_seconds()
    edge = (NOW - full_for).timestamp() // every * every  # downsampled before this bucket
    recent = [r for r in stored if r.taken_at.timestamp() >= edge]
    older = [r for r in stored if r.taken_at.timestamp() < edge]
    assert len(recent) >= 30, "the last 30 min at full resolution"
    buckets = {int(r.taken_at.timestamp() // every) for r in older}
    # one a bucket, and in the stats reset's bucket (in the older part here) also the last snapshot before the reset,
    # unless the reset came at the bucket's first minute (then that one is the previous bucket's last)
    reset_at = NOW - timedelta(minutes=minutes - 1) + timedelta(minutes=minutes * 2 // 3)
    assert reset_at.timestamp() < edge, "the reset falls in the downsampled part"
    extra = 1 if reset_at.timestamp() % every else 0
    assert len(older) == len(buckets) + extra and 10 <= len(buckets) <= 12, [r.taken_at for r in older]
    whole, changes = layout(history)
    assert changes > 3 * whole, (whole, changes)


def test_older_still_is_one_per_hour_and_every_kept_snapshot_answers_as_written(tmp_path, monkeypatch):
    """Three tiers as over 14 days, in hours: every minute for the last hour, one per 15 min for two more, then one
    an hour (what keeps 14 days of a busy server under the cap, bench/history_growth.py)."""
    quarter, hour = timedelta(minutes=15), timedelta(hours=1)
    monkeypatch.setattr(history_chains, "TIERS", ((timedelta(hours=1), quarter), (timedelta(hours=3), hour)))
    history = History(tmp_path / "h.sqlite")
    written = simulate(history, 6 * 60)
    stored = check_answers(history, written)

    def edge(age: timedelta, width: timedelta) -> float:
        return (NOW - age).timestamp() // width.total_seconds() * width.total_seconds()

    coarse, fine = edge(timedelta(hours=3), hour), edge(timedelta(hours=1), quarter)
    times = [at.timestamp() for at in written]  # a snapshot every minute: every bucket of the span has some
    hourly = [r.taken_at.timestamp() for r in stored if r.taken_at.timestamp() < coarse]
    quarterly = [r.taken_at.timestamp() for r in stored if coarse <= r.taken_at.timestamp() < fine]
    hours = {int(t // 3600) for t in times if t < coarse}
    assert {int(t // 3600) for t in hourly} == hours and len(hourly) == len(hours) >= 2, hourly
    quarters = {int(t // 900) for t in times if coarse <= t < fine}
    assert {int(t // 900) for t in quarterly} == quarters and len(quarters) >= 8, quarterly
    assert len(quarterly) - len(quarters) <= 1, "one a bucket (two in the reset's: the last before it stays)"
    assert len([r for r in stored if r.taken_at.timestamp() >= fine]) >= 60


@pytest.mark.servers
def test_a_real_servers_statements_stored_sparse_give_the_deltas_whole_snapshots_give(pg, tmp_path):
    history = History(tmp_path / "real.sqlite")
    env = pg.env()
    settings = {"host": env["DB_HOST"], "port": env["DB_PORT"], "user": env["DB_USER"], "dbname": APP_DATABASE}
    taken = []
    database = postgres.Database("tests", settings={**settings, "password": env["DB_PASSWORD"]})
    with database as db, pg.connect("app", autocommit=True) as app:
        for round_ in range(8):
            for i in range(round_ * 3):  # new statements each round; some old ones run again
                app.execute("SELECT " + " + ".join(["1"] * (i + 2)) + f" + {round_}")
            app.execute("SELECT count(*) FROM pg_class")
            snapshot = sampling.postgres_snapshot(db, PG_STATEMENTS, "tests")
            snapshot.taken_at = NOW - timedelta(minutes=8 - round_)
            taken.append(snapshot)
            history.add(snapshot)
    refs = history.stored(taken[0].target, PG_STATEMENTS, earliest=NOW - timedelta(hours=1), latest=NOW)
    assert [r.taken_at for r in refs] == [s.taken_at for s in taken]
    whole, changes = layout(history)
    assert whole >= 1 and changes >= 5, "later snapshots stored as the statements that moved"
    for ref, snapshot in zip(refs, taken, strict=True):
        loaded = history.load(ref)
        assert as_set(loaded.data) == as_set(snapshot.data)
        got = statement_delta(loaded, taken[-1])[0].sort_values("queryid").reset_index(drop=True)
        expected = statement_delta(snapshot, taken[-1])[0].sort_values("queryid").reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected)


def test_the_cap_and_age_prune_whole_chains_and_never_a_baseline(tmp_path, monkeypatch, two_hours):
    history = History(tmp_path / "h.sqlite")
    history.save_baseline(TARGET, PG_STATEMENTS, {"mean_ms": 4.2}, taken_by="tests", period={"basis": "sample"})
    monkeypatch.setenv("IMSNB_HISTORY_DAYS", "0.2")  # 4.8 h
    written = simulate(history, 6 * 60, count=40, seed=3)
    stored = check_answers(history, written)
    assert NOW - timedelta(hours=4.8) <= stored[0].taken_at <= NOW - timedelta(hours=4.5), "pruned by age"
    monkeypatch.setenv("IMSNB_HISTORY_MAX_MB", "0.02")  # ~20 KB: an hour or so of these snapshots
    later = NOW + timedelta(minutes=1)
    data = [[*row[:3], row[3] + 1.0, *row[4:]] for row in written[NOW]]
    history.add(Snapshot(TARGET, PG_STATEMENTS, later, "tests", stored[-1].epoch, data), now=later)
    written[later] = data
    stored = check_answers(history, written)
    assert stored[0].taken_at > NOW - timedelta(hours=2), "the cap pruned the oldest"
    assert history.baseline(TARGET, PG_STATEMENTS).data == {"mean_ms": 4.2}
    whole, _ = layout(history)
    assert whole >= 1


@pytest.mark.servers
def test_a_read_transaction_sees_its_snapshot_while_a_compaction_drops_it(pg):
    url = new_store(pg)
    history = History(url)
    rnd = random.Random(5)
    data = statements(rnd, 30)
    start = datetime.fromtimestamp((NOW - timedelta(hours=30)).timestamp() // 900 * 900, UTC)  # a bucket's start
    for minute in range(0, 40):
        for row in rnd.sample(data, 10):
            row[3] += 1.0
        history.add(Snapshot(TARGET, PG_STATEMENTS, start + timedelta(minutes=minute), "t", "e", data), now=start)
    expected = [list(r) for r in data]
    with history.reading():
        refs = history.stored(TARGET, PG_STATEMENTS, earliest=start, latest=NOW)
        assert len(refs) == 40
        History(url).add(Snapshot(TARGET, PG_STATEMENTS, NOW, "t", "e", data))  # downsamples the 30 h old ones
        assert rows(pg, url, "SELECT count(*) FROM snapshots") == [(4,)], "3 buckets kept, and the new one"
        before = history.load(refs[-2])  # dropped by the compaction: still there for this transaction
        assert before is not None and before.taken_at == refs[-2].taken_at
        assert as_set(history.load(refs[-1]).data) == as_set(expected)
    assert history.load(refs[-2]) is None
    assert as_set(history.load(refs[-1]).data) == as_set(expected), "the bucket's last, rewritten, same counters"


def test_a_window_four_days_back_starts_from_the_hourly_snapshot_before_it(tmp_path):
    """Past three days the history keeps the last snapshot of each hour: a window starting at 10:30 four days ago
    starts from the one kept at 09:59 (its slack grows with the spacing), not from 10:59, which would leave its first
    half hour out; a 15-minute window there (10:50-11:05) is not stretched to 09:59: it starts at 10:59."""
    from imsnb.sampling.start import window_start
    from imsnb.window import Window

    history = History(tmp_path / "h.sqlite")
    epoch = "2026-11-01T00:00:00+00:00|2026-11-01T00:00:00+00:00"
    day = (NOW - timedelta(days=4)).replace(hour=10, minute=30)
    kept = [day.replace(minute=59) + timedelta(hours=h) for h in (-2, -1, 0, 1, 2)]  # 08:59 ... 12:59
    for i, at in enumerate(kept):
        history.add(Snapshot(TARGET, PG_STATEMENTS, at, "imsnb record", epoch, [["1", "app", "app", i]]), now=at)
    now = Snapshot(TARGET, PG_STATEMENTS, NOW, "tests", epoch, [["1", "app", "app", 9]])
    latest = NOW - timedelta(seconds=1)
    chosen, _ = window_start(Window(day, day + timedelta(hours=2)), now, history, older_than=latest)
    assert chosen is not None and chosen.basis == "history" and chosen.start == kept[1], chosen
    quarter = Window(day + timedelta(minutes=20), day + timedelta(minutes=35))  # 10:50-11:05
    short, _ = window_start(quarter, now, history, older_than=latest)
    assert short is not None and short.start == kept[2], "a 15-min window: the slack stays 15 min, the first inside"
    assert history_chains.kept_every(timedelta(days=4)) == timedelta(hours=1)
    assert history_chains.kept_every(timedelta(hours=30)) == timedelta(minutes=15)
    assert history_chains.kept_every(timedelta(hours=2)) == timedelta(0)
