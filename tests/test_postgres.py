"""imsnb.postgres against real PostgreSQL clusters started by the sandbox."""

from __future__ import annotations

import time

import psycopg
import pytest

from imsnb import postgres
from imsnb.errors import NotAvailable, Unreachable
from imsnb.findings import Findings, Severity


@pytest.fixture
def db(degraded):
    with postgres.Database("tests", settings=_settings(degraded)) as database:
        yield database


@pytest.fixture
def healthy_db(healthy_sandbox):
    with postgres.Database("tests", settings=_settings(healthy_sandbox)) as database:
        yield database


def _settings(sandbox) -> dict:
    env = sandbox.env()
    return {
        "host": env["DB_HOST"],
        "port": env["DB_PORT"],
        "user": env["DB_USER"],
        "dbname": env["DB_NAME"],
        "password": env["DB_PASSWORD"],
    }


def test_session_is_read_only_and_bounded(db):
    conn = db.connection()
    settings = {
        name: conn.execute(f"SHOW {name}").fetchone()[0]
        for name in ("default_transaction_read_only", "statement_timeout", "lock_timeout", "application_name")
    }
    assert settings == {
        "default_transaction_read_only": "on",
        "statement_timeout": "5s",
        "lock_timeout": "1s",
        "application_name": "imsnb/tests",
    }
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("CREATE TABLE imsnb_must_not_exist (id int)")
    assert conn.autocommit, "an open transaction would make imsnb itself an idle-in-transaction session"


def test_connections_by_state_counts_the_crowd(db, degraded):
    by_state = postgres.connections_by_state(db)
    assert list(by_state.columns) == ["state", "connections"]
    counts = dict(zip(by_state["state"], by_state["connections"], strict=True))
    assert counts["idle in transaction"] == 1
    assert sum(counts.values()) >= 0.8 * degraded.postgres.max_connections
    assert postgres.max_connections(db) == degraded.postgres.max_connections == 30
    finding = postgres.connections_finding(by_state, 30)
    assert finding.severity == Severity.WARNING and 0.8 <= finding.value < 0.9


def test_blocked_queries_name_the_blocker(db):
    blocked = postgres.blocked_queries(db)
    assert {"pid", "waiting_s", "blocking_pid", "blocking_state", "query", "blocking_query"} <= set(blocked.columns)
    assert len(blocked) == 1
    row = blocked.iloc[0]
    assert row["application"] == "ims-worker" and row["blocking_application"] == "ims-backend"
    assert row["blocking_state"] == "idle in transaction"
    assert row["query"] == "UPDATE orders SET status = ? WHERE id = ?"
    assert "jane.doe@example.com" not in row["blocking_query"] and "email = ?" in row["blocking_query"]
    assert postgres.blocked_queries_finding(blocked).severity >= Severity.WARNING


def test_idle_in_transaction_blocking_is_a_warning_at_any_age(db):
    idle = postgres.idle_in_transaction(db)
    assert {"pid", "xact_age_s", "idle_s", "blocking", "last_query"} <= set(idle.columns)
    assert idle.iloc[0]["blocking"] == 1 and idle.iloc[0]["xact_age_s"] < 600
    finding = postgres.idle_in_transaction_finding(idle, min_age_s=3600)
    assert finding.severity == Severity.WARNING
    assert str(idle.iloc[0]["pid"]) in finding.message


def test_idle_in_transaction_not_blocking_is_flagged_only_past_its_age(healthy_db, healthy_sandbox):
    with healthy_sandbox.postgres.connect("lazy-client") as lazy:
        lazy.execute("SELECT 1")  # opens a transaction and leaves it open, blocking nobody
        time.sleep(0.3)
        idle = postgres.idle_in_transaction(healthy_db)
        assert len(idle) == 1 and idle.iloc[0]["blocking"] == 0
        assert postgres.idle_in_transaction_finding(idle, min_age_s=60).severity == Severity.OK
        assert postgres.idle_in_transaction_finding(idle, min_age_s=0.1).severity == Severity.WARNING


def test_slow_queries_use_pg13_columns_and_mask_literals(db):
    slow = postgres.slow_queries(db)
    assert list(slow.columns) == [
        "queryid",
        "database",
        "user",
        "calls",
        "total_ms",
        "mean_ms",
        "rows",
        "hit_ratio",
        "query",
    ]
    # lifetime totals: the live report (3 seeded calls, then about one a second) and the scenario's past
    row = slow[slow["query"].str.contains("LIKE", regex=False)].iloc[0]
    assert row["calls"] >= 3 and row["mean_ms"] >= 290
    assert "pg_sleep" in row["query"] and "example.org" not in row["query"]
    assert postgres.slow_queries_finding(slow).severity == Severity.WARNING
    everything = postgres.statements(db, limit=50)
    assert (everything["mean_ms"] < 100).sum() >= 2, "the fast statements are there too"


def test_pg_stat_statements_missing_is_not_available_with_a_hint(degraded):
    env = degraded.env()
    settings = {
        "host": env["DB_HOST"],
        "port": env["DB_PORT"],
        "user": "ims",
        "dbname": "postgres",
        "password": env["DB_PASSWORD"],
    }
    with postgres.Database("tests", settings=settings) as other:
        with pytest.raises(NotAvailable) as caught:
            postgres.slow_queries(other)
        # the sandbox preloads it (only this database lacks the extension): no restart to tell anyone to do
        assert caught.value.hint.startswith("It is preloaded already (no restart needed): CREATE EXTENSION")
        assert "shared_preload_libraries" in postgres.ENABLE_STATEMENTS
        findings = Findings()
        with findings.section("postgres.slow_queries"):
            postgres.slow_queries(other)
        assert findings[0].severity == Severity.INFO and "CREATE EXTENSION" in findings[0].message


def test_server_health_diagnostics_return_their_columns(db):
    hits = postgres.cache_hit_ratio(db)
    assert list(hits.columns) == ["database", "blks_hit", "blks_read", "hit_ratio"]
    assert 0 < hits.set_index("database").loc["ims", "hit_ratio"] <= 1
    sizes = postgres.database_sizes(db)
    assert "ims" in set(sizes["database"]) and (sizes["size_bytes"] > 1_000_000).all()
    ages = postgres.transaction_id_age(db)
    assert list(ages.columns) == ["database", "xid_age", "wraparound_ratio", "freeze_max_age"]
    assert postgres.xid_age_finding(ages).severity == Severity.OK
    lag = postgres.replication_lag(db)
    assert list(lag.columns) == ["role", "replica", "client", "state", "lag_s", "lag_bytes"] and lag.empty
    assert postgres.replication_lag_finding(lag).severity == Severity.OK


def test_running_queries_exclude_this_session(db):
    running = postgres.running_queries(db)
    assert {"pid", "duration_s", "query", "wait_event_type"} <= set(running.columns)
    own = db.connection().info.backend_pid
    assert own not in set(running["pid"])
    assert "ims-worker" in set(running["application"])  # the blocked UPDATE is active, waiting
    assert postgres.long_running_queries(db, min_duration_s=3600).empty


def test_healthy_cluster_has_nothing_to_report(healthy_db, tmp_path):
    from imsnb import sampling
    from imsnb.history import History

    by_state = postgres.connections_by_state(healthy_db)
    assert postgres.connections_finding(by_state, postgres.max_connections(healthy_db)).severity == Severity.OK
    # judged on a sample of its live traffic, as the notebooks do: the one-off seeding INSERT ... SELECT of the
    # sandbox's set-up is lifetime history (on a busy machine it took over 100 ms, and the lifetime list showed it)
    sample = sampling.Sample(1.0, db=healthy_db, history=History(tmp_path / "h.sqlite"))
    slow = sample.statements(min_mean_ms=100)
    own = slow["query"].str.contains("pg_stat_statements|pg_stat_database|pg_stat_user_tables|pg_postmaster", na=False)
    assert slow[~own].empty, slow  # imsnb's own catalogue reads can be slow on a loaded machine (see the note)
    assert postgres.blocked_queries(healthy_db).empty
    assert postgres.idle_in_transaction(healthy_db).empty


def test_unreachable_is_fast_remembered_and_a_finding():
    database = postgres.Database("tests", settings={"host": "127.0.0.1", "port": "1", "user": "x", "dbname": "x"})
    started = time.monotonic()
    finding = postgres.reachable_finding(database)
    assert finding.severity == Severity.CRITICAL and "refused" in finding.message
    with pytest.raises(Unreachable):
        postgres.connections_by_state(database)
    assert time.monotonic() - started < 5
    findings = Findings()
    for check in ("postgres.connections_used", "postgres.slow_queries"):
        with findings.section(check):
            postgres.connections_by_state(database)
    assert [f.check for f in findings] == ["postgres.reachable"]


@pytest.mark.parametrize(
    ("sql", "masked"),
    [
        ("SELECT * FROM users WHERE email = 'a@b.com' AND id = 42", "SELECT * FROM users WHERE email = ? AND id = ?"),
        ("SELECT 'it''s', E'x\\'y', $$body$$, $t$x$t$ FROM t1", "SELECT ?, ?, ?, ? FROM t1"),
        ("SELECT col2 FROM t WHERE x = $1 AND y > 3.5e2", "SELECT col2 FROM t WHERE x = $1 AND y > ?"),
        ("""SELECT "o'brien" FROM t WHERE pw = 'hunter2secret'""", """SELECT "o'brien" FROM t WHERE pw = ?"""),
        ("SELECT 1 -- don't 'leak'\nFROM t /* it's */", "SELECT ? -- ?\nFROM t /* ? */"),
        ("ALTER ROLE x PASSWORD $$hunter2secret", "ALTER ROLE x PASSWORD ?"),
        ("SELECT $a$ x $$ y $a$, 'z'", "SELECT ?, ?"),
        ("UPDATE t SET note = 'cut off at the track_activity_query_size lim", "UPDATE t SET note = ?"),
        ("SELECT x'1F', e'a\\'b', n'c'", "SELECT ?, ?, ?"),
        (None, None),
    ],
)
def test_mask_literals(sql, masked):
    assert postgres.mask_literals(sql) == masked


def test_a_frozen_server_costs_the_statement_timeout_plus_grace_not_forever(private_sandbox):
    import os
    import signal

    sandbox = private_sandbox("healthy")
    database = postgres.Database("tests", settings=_settings(sandbox), statement_timeout_ms=1000)
    postgres.connections_by_state(database)
    backend = database.connection().info.backend_pid
    os.kill(backend, signal.SIGSTOP)  # this session's server process stops answering
    try:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="no answer within 6 s"):
            postgres.connections_by_state(database)
        with pytest.raises(Unreachable):
            postgres.max_connections(database)
        assert time.monotonic() - started < 15
    finally:
        os.kill(backend, signal.SIGCONT)


def test_statistics_turned_off_is_said_not_read_as_quiet(degraded, db):
    """track_counts off: scans and hit ratios read zero (and autovacuum stops); the visibility check says so. Set for
    one role only (ALTER ROLE ... SET), so the shared sandbox keeps its statistics."""
    import secrets

    from psycopg import sql

    assert postgres.visibility_finding(db).severity == Severity.OK
    role, password = "imsnb_untracked", secrets.token_urlsafe(12)
    with degraded.postgres.admin() as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        admin.execute(sql.SQL("ALTER ROLE {} SET track_counts = off").format(sql.Identifier(role)))
    try:
        env = degraded.env()
        settings = {"host": env["DB_HOST"], "port": env["DB_PORT"], "user": role, "dbname": env["DB_NAME"]}
        with postgres.Database("tests", settings={**settings, "password": password}) as untracked:
            found = postgres.visibility_finding(untracked)
        assert found.severity == Severity.WARNING and found.message.startswith("track_counts is off: table scans")
        assert "GRANT pg_monitor" not in found.message, "this role does see every session"
    finally:
        with degraded.postgres.admin() as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
