"""imsnb.postgres as a plain login role (no pg_monitor), against a private PostgreSQL whose trouble is another
role's: what such a role can read (every backend's row, pg_locks, pg_stat_statements' timings) is judged, and what it
cannot is said, never an OK it has not seen."""

from __future__ import annotations

import threading

import pandas as pd
import psycopg
import pytest
from helpers import wait_until
from psycopg import sql

from imsnb import postgres, sampling
from imsnb.errors import NotAvailable
from imsnb.findings import Severity
from imsnb.history import History
from imsnb.sandbox.postgres import PostgresServer

pytestmark = pytest.mark.servers

PLAIN_ROLE = "nomon"
QUOTED_ROLE = 'Mon Itor "q"'  # a role name that needs quoting in SQL
IDLE_SESSIONS = 12
WAITERS = 2


@pytest.fixture(scope="module")
def server():
    server = PostgresServer(max_connections=40).start()
    with server.admin("ims") as admin:
        admin.execute("SET pg_stat_statements.track_utility = off")
        for role in (PLAIN_ROLE, QUOTED_ROLE):
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal("pw")))
        admin.execute("CREATE TABLE orders (id int PRIMARY KEY)")
    yield server
    server.stop()


def as_role(server: PostgresServer, role: str = PLAIN_ROLE, dbname: str = "ims") -> postgres.Database:
    password = server.password if role == "ims" else "pw"  # ims: the sandbox's pg_monitor role
    settings = {"host": "127.0.0.1", "port": str(server.port), "user": role, "dbname": dbname, "password": password}
    return postgres.Database("tests", settings=settings)


def superuser(server: PostgresServer, dbname: str = "ims", **kwargs) -> psycopg.Connection:
    return psycopg.connect(host=str(server.dir), port=server.port, user="postgres", dbname=dbname, **kwargs)


@pytest.fixture(scope="module")
def crowd(server):
    """Another role's trouble: idle sessions held open, a superuser idle in a transaction holding a lock on orders,
    two sessions waiting on it. Yields the holder's pid."""
    idle = [superuser(server, autocommit=True) for _ in range(IDLE_SESSIONS)]
    holder = superuser(server)
    holder.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid
    waiters = [superuser(server, autocommit=True) for _ in range(WAITERS)]
    threads = [threading.Thread(target=w.execute, args=("SELECT count(*) FROM orders",), daemon=True) for w in waiters]
    for thread in threads:
        thread.start()
    with superuser(server, autocommit=True) as admin:
        wait_until(
            lambda: admin.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0] == WAITERS,
            what="the two waiters queued on the lock",
        )
    yield holder_pid
    holder.rollback()
    for thread in threads:
        thread.join(timeout=10)
    for conn in [*idle, holder, *waiters]:
        conn.close()


def client_backends(server: PostgresServer) -> int:
    with superuser(server, autocommit=True) as admin:
        clients = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        return admin.execute(clients + " AND pid <> pg_backend_pid()").fetchone()[0]


def test_a_plain_role_counts_every_connection_whatever_it_can_see_of_them(server, crowd):
    with as_role(server) as db:
        by_state = postgres.connections_by_state(db)
        expected = client_backends(server)
        finding = postgres.connections_finding(by_state, postgres.max_connections(db))
    counts = dict(zip(by_state["state"], by_state["connections"], strict=True))
    assert sum(counts.values()) == expected >= IDLE_SESSIONS + 1 + WAITERS + 1, counts
    assert counts["hidden"] == expected - 1, "every session but its own is another role's"
    assert finding.message.startswith(f"{expected} of 40 connections in use")
    assert f"hidden {expected - 1}" in finding.message and "state not visible to this role" in finding.message


def test_a_plain_role_sees_the_sessions_waiting_on_another_roles_lock(server, crowd):
    with as_role(server) as db:
        blocked = postgres.blocked_queries(db)
    assert blocked["pid"].nunique() == WAITERS and set(blocked["blocking_pid"]) == {crowd}
    assert (blocked["waiting_s"] >= 0).all(), "pg_locks' waitstart times the wait the role cannot see in activity"
    finding = postgres.blocked_queries_finding(blocked)
    assert finding.severity >= Severity.WARNING
    assert finding.message.startswith(f"{WAITERS} session(s) wait on locks held by [{crowd}]; longest wait ")
    assert "nan" not in finding.message


def test_a_plain_roles_ok_on_sessions_says_how_many_it_could_not_look_at(server, crowd):
    """The holder sits idle in a transaction, but its state is hidden from a plain role: 'no session is idle in a
    transaction' was an OK it had not seen. It stays OK (the lock wait is judged) and says what it could not see."""
    with as_role(server) as db:
        idle, running = postgres.idle_in_transaction(db), postgres.running_queries(db, min_duration_s=60)
    hidden = client_backends(server)  # the crowd's sessions (the plain role's own is closed by now)
    says = f"; {hidden} session(s) of other roles are hidden from this role (GRANT pg_monitor: postgres.visibility)"
    assert postgres.idle_in_transaction_finding(idle).message == "no session is idle in a transaction" + says
    assert postgres.long_running_finding(running).message.endswith(says)
    with as_role(server, "ims") as db:  # pg_monitor: sees the holder, nothing hidden
        seen = postgres.idle_in_transaction(db)
    assert crowd in set(seen["pid"]) and "hidden" not in postgres.idle_in_transaction_finding(seen).message


def test_a_wait_is_timed_from_pg_locks_with_track_activities_off(server, crowd):
    """track_activities off leaves pg_stat_activity without query_start: the wait is timed from pg_locks' waitstart,
    and where no start is known at all the message says the wait is unknown (never "nan")."""
    with superuser(server, autocommit=True) as admin:
        admin.execute("ALTER SYSTEM SET track_activities = off")
        admin.execute("SELECT pg_reload_conf()")
    try:
        with as_role(server, "ims") as db:  # pg_monitor: sees every row, but the rows say nothing with it off
            wait_until(lambda: db.scalar("SHOW track_activities") == "off", what="track_activities off")
            blocked = postgres.blocked_queries(db)
        assert blocked["pid"].nunique() == WAITERS and blocked["waiting_s"].notna().all()
        message = postgres.blocked_queries_finding(blocked).message
        assert "nan" not in message and "longest wait " in message
        unknown = postgres.blocked_queries_finding(blocked.assign(waiting_s=float("nan")))
        assert unknown.severity == Severity.WARNING and unknown.message == (
            f"{WAITERS} session(s) wait on locks held by [{crowd}]; how long they have waited is unknown"
        )
    finally:
        with superuser(server, autocommit=True) as admin:
            admin.execute("ALTER SYSTEM RESET track_activities")
            admin.execute("SELECT pg_reload_conf()")


def test_a_session_that_went_idle_in_transaction_after_the_read_began_is_listed(server):
    """Under load a session goes idle in a transaction microseconds before imsnb's read of pg_stat_activity but after
    its statement started (now()): connections_by_state counted it while idle_in_transaction, filtering on
    now() - state_change >= 0 s, left it out. Made deterministic here: the reading transaction starts first."""
    with superuser(server) as reader, superuser(server) as idler, superuser(server, autocommit=True) as runner:
        reader.execute("SELECT now()")  # the reading transaction's now(), before either session changes state
        idler.execute("SELECT 1")  # idle in transaction from here
        runner_pid = runner.info.backend_pid
        thread = threading.Thread(target=runner.execute, args=("SELECT pg_sleep(2)",), daemon=True)
        thread.start()
        with superuser(server, autocommit=True) as watcher:  # not the reader: its first read fixes what it sees
            active = "SELECT state = 'active' FROM pg_stat_activity WHERE pid = %s"
            wait_until(lambda: watcher.execute(active, [runner_pid]).fetchone()[0], what="the runner's statement")
        idle = reader.execute(postgres.IDLE_IN_TRANSACTION, {"min_idle_s": 0, "limit": 100}).fetchall()
        running = reader.execute(postgres.RUNNING_QUERIES, {"min_duration_s": 0, "limit": 100}).fetchall()
        assert idler.info.backend_pid in [row[0] for row in idle]
        assert runner_pid in [row[0] for row in running]
        assert all(row[5] >= 0 and row[6] >= 0 for row in idle), "ages never negative"
        reader.rollback()
        idler.rollback()
        thread.join(timeout=10)


def test_a_plain_role_judges_another_roles_slow_statements_without_their_text(server, tmp_path):
    """pg_stat_statements gives a role without pg_read_all_stats every entry's timings, with no queryid and no text.
    Summed, they are no statement: never judged as one (nor regressed, planned or baselined), but counted over the
    sample, and a WARNING when even their mean is slow (one of them at least is), saying why it cannot name it."""
    with as_role(server) as db:
        sample = sampling.Sample(1.0, db=db, history=History(tmp_path / "h.sqlite"), store=False)
        with superuser(server, autocommit=True) as app:
            for _ in range(3):
                app.execute("SELECT pg_sleep(0.15)")
        slow = sample.statements(min_mean_ms=100)
        lifetime = postgres.slow_queries(db)
        finding = postgres.slow_queries_finding(slow, period=sample.period(sampling.PG_STATEMENTS))
    assert slow.empty, "no sum of other roles' statements passes for a statement"
    hidden = slow.attrs[postgres.HIDDEN_STATEMENTS_ATTR]
    assert hidden["calls"] >= 3 and hidden["total_ms"] >= 450, hidden
    assert finding.severity == Severity.WARNING and finding.value >= 100
    assert finding.message.startswith("at least one of other roles' statements averages ≥ 100 ms; ")
    assert "could not be told apart: their ids and text are hidden from this role" in finding.message
    assert (lifetime["user"] == "postgres").any() and (lifetime["mean_ms"] >= 150).any(), lifetime


def test_a_sum_of_many_statements_is_never_a_regression_and_fast_ones_say_what_they_hid():
    """Summed hidden entries: 300 fast calls, then two slow ones would read '8,814x slower' as one statement. They are
    out of the statements frame; below the level, the OK says what it could not tell apart."""
    fast = {"calls": 300.0, "total_ms": 30.0}
    slow = pd.DataFrame(columns=["queryid", "calls", "mean_ms", "total_ms", "query"])
    slow.attrs[postgres.HIDDEN_STATEMENTS_ATTR] = fast
    finding = postgres.slow_queries_finding(slow)
    assert finding.severity == Severity.OK and finding.message.startswith("no statement averages 100 ms or more; 300 ")
    slow.attrs[postgres.HIDDEN_STATEMENTS_ATTR] = None
    assert "other roles' statements could not be counted" in postgres.slow_queries_finding(slow).message


def test_the_grant_to_run_quotes_the_role_name(server):
    with as_role(server, QUOTED_ROLE) as db:
        finding = postgres.visibility_finding(db)
    assert finding.severity == Severity.WARNING
    assert 'GRANT pg_monitor TO "Mon Itor ""q"""; ' in finding.message, finding.message
    assert 'GRANT pg_read_all_data TO "Mon Itor ""q"""' in finding.message, "the plans' grant too"


def test_statements_not_tracked_are_a_visibility_warning(server):
    """pg_stat_statements.track = none records nothing: slow_queries would read OK while 1-second queries run. (Set
    for the database: the sandbox's command line sets track = all, which ALTER SYSTEM cannot override.)"""
    with superuser(server, autocommit=True) as admin:
        admin.execute("ALTER DATABASE ims SET pg_stat_statements.track = 'none'")
    try:
        with as_role(server, "ims") as db:
            assert db.scalar("SHOW pg_stat_statements.track") == "none"
            finding = postgres.visibility_finding(db)
        assert finding.severity == Severity.WARNING
        assert "pg_stat_statements.track is none: no statement is recorded" in finding.message, finding.message
    finally:
        with superuser(server, autocommit=True) as admin:
            admin.execute("ALTER DATABASE ims RESET pg_stat_statements.track")


@pytest.fixture(scope="module")
def databases(server):
    """`elsewhere`: pg_stat_statements in a schema of its own, whose name needs quoting; `bare`: without it."""
    with server.admin() as admin:
        admin.execute("CREATE DATABASE elsewhere")
        admin.execute("CREATE DATABASE bare")
    with superuser(server, "elsewhere", autocommit=True) as admin:
        admin.execute('CREATE SCHEMA "Ext Schema"')
        admin.execute('CREATE EXTENSION pg_stat_statements SCHEMA "Ext Schema"')
        admin.execute('GRANT USAGE ON SCHEMA "Ext Schema" TO ims, nomon')
    return "elsewhere", "bare"


def test_pg_stat_statements_is_read_from_the_schema_it_was_installed_in(server, databases, tmp_path):
    with as_role(server, "ims", "elsewhere") as db:
        sample = sampling.Sample(1.0, db=db, history=History(tmp_path / "h.sqlite"), store=False)
        with superuser(server, "elsewhere", autocommit=True) as app:
            for _ in range(2):
                app.execute("SELECT pg_sleep(0.12)")
        slow = sample.statements(min_mean_ms=100)
        lifetime = postgres.slow_queries(db)
        own = sampling.own_statements(db)
    assert slow["query"].str.contains("pg_sleep").any(), slow
    assert lifetime["query"].str.contains("pg_sleep").any(), lifetime
    assert own, "imsnb's own entries found there too"


def test_a_role_that_cannot_read_the_preload_setting_is_told_the_extension_is_missing(server, databases):
    with as_role(server, PLAIN_ROLE, "bare") as db, pytest.raises(NotAvailable) as raised:
        postgres.slow_queries(db)
    assert str(raised.value).startswith("pg_stat_statements is not installed in this database")
    assert "could not be checked" in raised.value.hint and "pg_read_all_settings" in raised.value.hint


def test_a_wait_behind_a_prepared_transaction_is_named_and_its_missing_text_is_no_crash():
    """A prepared transaction holds its locks with no session (pg_blocking_pids says 0): the LEFT JOIN leaves its
    text NULL, which pandas makes NaN beside another wait's text, and masking it raised TypeError."""
    blocked = pd.DataFrame(
        {
            "pid": [5, 6],
            "waiting_s": [3.0, 2.0],
            "blocking_pid": [0, 77],
            "blocking_state": [None, "idle in transaction"],
            "query": ["SELECT 1", "SELECT 2"],
            "blocking_query": [None, "UPDATE t SET a = 1"],
        }
    )
    masked = postgres.masked(blocked, "query", "blocking_query")
    assert masked["blocking_query"].isna()[0] and masked["blocking_query"][1] == "UPDATE t SET a = ?"
    finding = postgres.blocked_queries_finding(masked)
    assert "held by [a prepared transaction (pg_prepared_xacts), 77]" in finding.message
