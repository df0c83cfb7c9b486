"""The window rule on real servers: where an incident window's counter numbers start (imsnb/sampling/start.py).

1. statistics that started inside the window: their totals since then are the window's figures;
2. else a stored snapshot at or before the window's start; 3. else the earliest one inside it;
4. else the run's own sample, saying how much of the window it leaves out.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from imsnb import cache, postgres, sampling
from imsnb.findings import Severity
from imsnb.history import History
from imsnb.period import duration
from imsnb.sampling.deltas import counters_since
from imsnb.sandbox.postgres import PostgresServer, find_bindir
from imsnb.sandbox.redis import RedisServer
from imsnb.window import Window

pytestmark = pytest.mark.servers  # a PostgreSQL and Redis of its own

# A heavy aggregate: over 100 ms a call whatever the machine (the sleep), real work besides (the scan).
HEAVY = "SELECT pg_sleep(0.12), count(*), sum(length(md5(i::text))) FROM generate_series(1, 20000) AS i"
MARKER = "SELECT count(*) FROM pg_class WHERE relname = %(name)s AND relpages >= 0"


def _db(server: PostgresServer) -> postgres.Database:
    env = server.env()
    settings = {
        "host": env["DB_HOST"],
        "port": env["DB_PORT"],
        "user": env["DB_USER"],
        "dbname": env["DB_NAME"],
        "password": env["DB_PASSWORD"],
    }
    return postgres.Database("tests", settings=settings)


def _cache(server: RedisServer) -> cache.Cache:
    return cache.Cache("tests", settings={"host": "127.0.0.1", "port": server.port, "password": server.password})


def _run(server: PostgresServer, statement: str, times: int, params: dict | None = None) -> None:
    with server.connect("ims-backend", autocommit=True) as conn:
        for _ in range(times):
            conn.execute(statement, params)


def _calls(statements, text: str) -> int:
    return int(statements[statements["query"].str.contains(text, regex=False)]["calls"].sum())


@pytest.fixture(scope="module")
def fresh_pg():
    """A PostgreSQL started moments ago, the heavy aggregate run three times before any diagnostic: the issue's
    server that "nobody here set up", started 30 s before `db_performance -p window 15m`."""
    server = PostgresServer().start()
    try:
        _run(server, HEAVY, 3)
        yield server
    finally:
        server.stop()


def test_statistics_started_inside_the_window_are_the_windows_figures(fresh_pg, tmp_path):
    now = datetime.now(UTC)
    with _db(fresh_pg) as db:
        started = db.scalar("SELECT stats_reset FROM pg_stat_statements_info").astimezone(UTC)
        sample = sampling.Sample(
            60.0, db=db, window=Window(now - timedelta(minutes=15), now), history=History(tmp_path / "h.sqlite")
        )
        assert sample.remaining_s() > 50 and sample.remaining_s(sampling.PG_STATEMENTS) == 0, "no wait for a sample"
        slow = sample.statements(limit=10, min_mean_ms=100)
        period = sample.period(sampling.PG_STATEMENTS)
        regressed = sampling.regressions(sample.statements(limit=100))
        databases = sample.period(sampling.PG_DATABASE)
    finding = postgres.slow_queries_finding(slow, 100, period=period)
    assert finding.severity == Severity.WARNING and "generate_series" in finding.message
    assert _calls(slow, "generate_series") == 3, "the three runs before the sample are the window's"
    assert period.basis == "window" and sample.delta(sampling.PG_STATEMENTS).before is None
    assert f"statistics started {started:%H:%M:%S} UTC (the server started), inside the window" in period.note
    assert period.start == started and finding.period == period
    assert finding.message.startswith(f"{len(slow)} statement(s) average ≥ 100 ms; slowest ")
    assert "lifetime totals" not in finding.message, "the window's own figure, not a lifetime number"
    assert finding.to_dict()["period"]["basis"] == "window"
    regression = sampling.statement_regression_finding(regressed, period)
    assert regression.severity == Severity.OK and regression.period == period
    assert regression.message.startswith("no statement runs 5x slower than its baseline (")
    assert databases.basis == "window" and "(the server started)" in databases.note


def test_a_stored_snapshot_at_or_before_the_windows_start_is_preferred(fresh_pg, tmp_path):
    """One stored snapshot just before the window's start, one just after it (nearer the start): the delta runs
    from the one before, so calls made between the two are the window's too."""
    history = History(tmp_path / "h.sqlite")
    name = "at-or-before"
    with _db(fresh_pg) as db:
        before = sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "imsnb record")
        history.add(before)
        _run(fresh_pg, MARKER, 4, {"name": name})
        inside = sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "health_check")
        history.add(inside)
        _run(fresh_pg, MARKER, 2, {"name": name})
        start = before.taken_at + (inside.taken_at - before.taken_at) * 0.9
        time.sleep(0.6)  # a stored snapshot younger than 0.5 s is taken as this run's own, not history
        sample = sampling.Sample(60.0, db=db, window=Window(start, datetime.now(UTC)), history=history)
        assert sample.remaining_s(sampling.PG_STATEMENTS) == 0, "the stored snapshot stands for the start: no wait"
        statements = sample.statements(limit=200)
        period = sample.period(sampling.PG_STATEMENTS)
    assert period.basis == "history" and period.start == before.taken_at
    assert "taken by imsnb record" in period.note and "not covered" not in period.note
    assert _calls(statements, "AND relpages >=") == 6, "the 4 calls before the later stored snapshot count too"


def test_the_earliest_stored_snapshot_inside_the_window_says_what_it_leaves_out(fresh_pg, tmp_path):
    history = History(tmp_path / "h.sqlite")
    with _db(fresh_pg) as db:
        _wait_for_age(db, 1.5)
        start = _stats_start(db) + timedelta(seconds=1)
        window = Window(start, start + timedelta(minutes=15))
        inside = sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "imsnb record")
        history.add(inside)
        _run(fresh_pg, MARKER, 3, {"name": "inside"})
        time.sleep(0.6)
        sample = sampling.Sample(0.5, db=db, window=window, history=history)
        statements = sample.statements(limit=200)
        period = sample.period(sampling.PG_STATEMENTS)
    assert period.basis == "history" and period.start == inside.taken_at
    missing = duration(window.seconds - period.seconds)
    assert f"the history covers {duration(period.seconds)} of the 15 min window; {missing} not covered" in period.note
    assert _calls(statements, "AND relpages >=") >= 3


def test_with_nothing_stored_the_sample_says_how_much_of_the_window_is_not_covered(fresh_pg, tmp_path):
    with _db(fresh_pg) as db:
        _wait_for_age(db, 1.5)
        start = _stats_start(db) + timedelta(seconds=1)  # the statistics started before the window
        window = Window(start, start + timedelta(minutes=15))
        sample = sampling.Sample(0.5, db=db, window=window, history=History(tmp_path / "empty.sqlite"))
        assert sample.remaining_s(sampling.PG_STATEMENTS) > 0, "only the sample stands for the window: it runs out"
        slow = sample.statements(limit=10, min_mean_ms=100)
        period = sample.period(sampling.PG_STATEMENTS)
    assert period.basis == "sample" and slow.empty, "the heavy runs happened before the window: not in it"
    note = re.search(r"the sample covers (.+) of the 15 min window; (.+) not covered; (.+)$", period.note)
    assert note and note[1] == duration(period.seconds) and note[2] == duration(900 - period.seconds)
    assert note[3] == "run `imsnb record` every minute (cron) to cover windows"
    finding = postgres.slow_queries_finding(slow, 100, period=period)
    assert finding.period == period and finding.message == "no statement averages 100 ms or more"
    assert "not covered" in finding.to_dict()["period"]["note"], "said once, with the period it qualifies"


def test_a_stored_snapshot_from_before_a_restart_inside_the_window_is_void(tmp_path):
    """An immediate stop discards pg_stat_database's counters (PostgreSQL 15 stamps the discard in the shared
    statistics' stats_reset): they start again inside the window, and the snapshot stored before is not subtracted.
    pg_stat_statements keeps its counters across that restart (its stats_reset does not move): its stored snapshot
    still stands, where today a new postmaster start time voided it."""
    server = PostgresServer().start()
    history = History(tmp_path / "h.sqlite")
    try:
        _run(server, MARKER, 5, {"name": "before the restart"})
        with _db(server) as db:
            stored = [sampling.postgres_snapshot(db, s, "imsnb record") for s in sampling.PG_SOURCES]
            history.add(*stored)
            reset_before = db.scalar("SELECT stats_reset FROM pg_stat_statements_info")
        window = Window(stored[0].taken_at + timedelta(milliseconds=1), datetime.now(UTC) + timedelta(minutes=15))
        with server.admin("ims") as admin:  # the sandbox commits asynchronously: keep its set-up through the stop
            admin.execute("CHECKPOINT")
        server._run(  # the sandbox's own runner: as the postgres user under root
            find_bindir() / "pg_ctl", "-D", server.datadir, "-m", "immediate", "-w", "-l", server.dir / "log", "restart"
        )
        _run(server, MARKER, 2, {"name": "after the restart"})
        time.sleep(0.6)
        with _db(server) as db:
            restarted = db.scalar("SELECT pg_postmaster_start_time()")
            assert db.scalar("SELECT stats_reset FROM pg_stat_statements_info") == reset_before
            sample = sampling.Sample(0.5, db=db, window=window, history=history)
            databases = sample.delta(sampling.PG_DATABASE)
            frame = sample.databases().set_index("database")
            statements = sample.statements(limit=200)
            kept = sample.delta(sampling.PG_STATEMENTS)
    finally:
        server.stop()
    assert databases.period.basis == "window" and databases.before is None, "the stored one is void"
    assert (
        databases.period.start >= stored[1].taken_at and abs((databases.period.start - restarted).total_seconds()) < 60
    )
    assert "(the server started), inside the window" in databases.period.note
    committed = {row[0]: row[3] for row in databases.after.data}
    assert frame.loc["ims", "xact_commit"] == committed["ims"], "totals since the restart, nothing subtracted"
    assert kept.period.basis == "history" and kept.before.taken_at == stored[0].taken_at
    assert _calls(statements, "AND relpages >=") == 2, "the 2 calls since the stored snapshot, not the 5 before it"


def _stats_start(db: postgres.Database) -> datetime:
    return counters_since(sampling.postgres_snapshot(db, sampling.PG_STATEMENTS))


def _wait_for_age(db: postgres.Database, seconds: float) -> None:
    """Let the server's statistics be `seconds` old, so a window can start after them and before now."""
    age = (datetime.now(UTC) - _stats_start(db)).total_seconds()
    time.sleep(max(0.0, seconds - age))


# -- Redis ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def redis_server():
    server = RedisServer().start()  # ~15 ms: one per test, so a reset in one cannot reach another
    try:
        yield server
    finally:
        server.stop()


def _lookups(server: RedisServer, hits: int, misses: int) -> None:
    client = server.client()
    client.set("session:1", "x")
    pipe = client.pipeline(transaction=False)
    for _ in range(hits):
        pipe.get("session:1")
    for i in range(misses):
        pipe.get(f"session:missing:{i}")
    pipe.execute()


def test_redis_started_inside_the_window_is_judged_on_its_totals(redis_server, tmp_path):
    _lookups(redis_server, hits=20, misses=200)  # a miss storm before the run, nothing during its sample
    now = datetime.now(UTC)
    with _cache(redis_server) as c:
        sample = sampling.Sample(
            0.5, cache=c, window=Window(now - timedelta(minutes=15), now), history=History(tmp_path / "h.sqlite")
        )
        sampled, period = sample.redis(), sample.period(sampling.REDIS_INFO)
    assert (sampled.hits, sampled.misses) == (20, 200) and period.basis == "window"
    assert "(Redis started), inside the window: totals since then" in period.note
    hit = sampling.hit_rate_finding(sampled, period, lifetime_at_most="INFO")
    assert hit.severity >= Severity.WARNING and hit.message.startswith("hit rate 9.1%, 20 hits and 200 misses (")
    assert "since Redis started" not in hit.message and "context only" not in hit.message, "the window's figure"
    assert sampling.evictions_finding(sampled, period).severity == Severity.OK


def test_a_redis_resetstat_inside_the_window_starts_the_windows_figures(redis_server, tmp_path):
    """Redis records no reset time; a stored snapshot inside the window with higher counters than the run's shows
    the CONFIG RESETSTAT came after it: the totals since are the window's, the stored snapshot is void."""
    history = History(tmp_path / "h.sqlite")
    _lookups(redis_server, hits=500, misses=0)  # the lifetime before the reset: all hits
    with _cache(redis_server) as c:
        while int(c.call("info", "server")["uptime_in_seconds"]) < 2:  # the window starts after Redis did
            time.sleep(0.2)
        start = datetime.now(UTC)
        stored = sampling.redis_snapshot(c, "imsnb record")
        history.add(stored)
        redis_server.client().config_resetstat()
        _lookups(redis_server, hits=5, misses=50)
        time.sleep(0.6)
        window = Window(start, start + timedelta(minutes=15))
        sample = sampling.Sample(0.5, cache=c, window=window, history=history)
        sampled, period = sample.redis(), sample.period(sampling.REDIS_INFO)
    assert period.basis == "window" and period.start == stored.taken_at
    assert f"statistics started between {stored.taken_at:%H:%M:%S} and" in period.note
    assert "CONFIG RESETSTAT" in period.note and (sampled.hits, sampled.misses) == (5, 50)
    assert sampling.hit_rate_finding(sampled, period).severity >= Severity.WARNING


def test_spans_read_as_people_say_them():
    assert [duration(s) for s in (0.4, 10, 890, 900, 7500, 3 * 86400 + 4 * 3600 + 59)] == [
        "0 s",
        "10 s",
        "14 min 50 s",
        "15 min",
        "2 h 5 min",
        "3 d 4 h",
    ]


def test_a_restart_that_kept_the_counters_is_no_reset():
    """PostgreSQL's epoch is '<postmaster start>|<when its counters count from>': a new postmaster start with the same
    counters start runs on (a clean restart keeps pg_stat_statements and pg_stat_database); without a counters start
    (PostgreSQL 13's pg_stat_statements) any change is taken as a reset."""
    from imsnb.sampling.deltas import same_epoch

    kept = (
        "2026-12-01T10:00:00+00:00|2026-11-01T09:00:00+00:00",
        "2026-12-02T10:00:00+00:00|2026-11-01T09:00:00+00:00",
    )
    assert same_epoch(*kept)
    assert not same_epoch(
        "2026-12-01T10:00:00+00:00|2026-11-01T09:00:00+00:00", "2026-12-01T10:00:00+00:00|2026-12-02T09:00:00+00:00"
    )
    assert not same_epoch("2026-12-01T10:00:00+00:00|None", "2026-12-02T10:00:00+00:00|None")
    assert same_epoch("run-1", "run-1") and not same_epoch("run-1", "run-2")


class _CountingHistory(History):
    """A History that counts its reads of stored snapshot lists."""

    reads = 0

    def stored(self, *args, **kwargs):
        self.reads += 1
        return super().stored(*args, **kwargs)

    def newest(self, *args, **kwargs):
        self.reads += 1
        return super().newest(*args, **kwargs)


def test_the_start_found_before_the_sample_is_read_once(fresh_pg, tmp_path):
    """The start found from the first snapshot (to skip the wait) is the delta's: the store is read once."""
    history = _CountingHistory(tmp_path / "h.sqlite")
    with _db(fresh_pg) as db:
        stored = sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "imsnb record")
        history.add(stored)
        _run(fresh_pg, MARKER, 3, {"name": "read-once"})
        time.sleep(0.6)
        window = Window(stored.taken_at + timedelta(seconds=0.1), datetime.now(UTC) + timedelta(minutes=5))
        sample = sampling.Sample(60.0, db=db, window=window, history=history)
        sample.statements(limit=200)
        period = sample.period(sampling.PG_STATEMENTS)
    assert period.basis == "history" and period.start == stored.taken_at
    assert history.reads == 1


def test_a_resetstat_after_the_first_snapshot_is_not_hidden_by_the_start_found_before(redis_server, tmp_path):
    """The stored snapshot stood for the window's start when the run began; a CONFIG RESETSTAT between the run's
    two snapshots makes the totals since then the window's figures, not the stored snapshot's delta."""
    history = History(tmp_path / "h.sqlite")
    with _cache(redis_server) as c:
        while int(c.call("info", "server")["uptime_in_seconds"]) < 2:
            time.sleep(0.2)
        start = datetime.now(UTC)
        history.add(sampling.redis_snapshot(c, "imsnb record"))
        _lookups(redis_server, hits=300, misses=0)
        time.sleep(0.6)
        sample = sampling.Sample(30.0, cache=c, window=Window(start, start + timedelta(minutes=15)), history=history)
        assert sample.remaining_s(sampling.REDIS_INFO) == 0, "the stored snapshot stands for the start"
        redis_server.client().config_resetstat()
        _lookups(redis_server, hits=4, misses=40)
        sampled, period = sample.redis(), sample.period(sampling.REDIS_INFO)
    assert period.basis == "window" and "CONFIG RESETSTAT" in period.note
    assert (sampled.hits, sampled.misses) == (4, 40)
