"""Guarantees 2 and 3: a migration's ACCESS EXCLUSIVE lock and an exhausted max_connections do not hang the
diagnostics; each is reported. The module's own sandbox takes the abuse (small max_connections)."""

from __future__ import annotations

import threading

import psycopg
import pytest
from helpers import checks_at_or_above, finding, read_summary
from injectors import timed_run

from imsnb.sandbox import Sandbox

POSTGRES_SECTIONS = {
    "postgres.reachable",
    "postgres.connections_used",
    "postgres.long_running",
    "postgres.slow_queries",
    "postgres.blocked_queries",
    "postgres.idle_in_transaction",
    "postgres.cache_hit_ratio",
    "postgres.xid_age",
    "postgres.replication_lag",
}
WAITING_APP = "ims-waiting-reader"


@pytest.fixture(scope="module")
def small_sandbox():
    with Sandbox("healthy", max_connections=12) as sandbox:
        sandbox.stop_load()  # a quiet server: these tests count its sessions and lock waiters exactly
        yield sandbox


@pytest.fixture
def migration_lock(small_sandbox):
    """A migration holds ACCESS EXCLUSIVE on `orders` in an open transaction; an app read queues behind it."""
    migration = small_sandbox.postgres.connect("ims-migrate")
    migration.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    migration.execute("ALTER TABLE orders ADD COLUMN note text")

    def read() -> None:
        try:
            with small_sandbox.postgres.connect(WAITING_APP, autocommit=True) as conn:
                conn.execute("SELECT count(*) FROM orders")
        except psycopg.Error:
            pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    yield migration
    migration.rollback()
    migration.close()
    reader.join(timeout=10)


def test_a_migration_lock_does_not_hang_db_performance(small_sandbox, on, tmp_path, migration_lock):
    on(small_sandbox)
    result, _ = timed_run("db_performance", tmp_path, "INC-LOCK")
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    found = {f["check"]: f for f in summary["findings"]}
    assert set(found) >= POSTGRES_SECTIONS, POSTGRES_SECTIONS - set(found)
    assert found["postgres.reachable"]["severity"] == "OK"
    # the queued reader is found, and the migration named as its blocker
    assert "postgres.blocked_queries" in checks_at_or_above(summary, "WARNING")
    (waiting,) = found["postgres.blocked_queries"]["evidence"]
    assert waiting["query"] == "SELECT count(*) FROM orders"
    assert waiting["blocking_query"] == "ALTER TABLE orders ADD COLUMN note text"
    stuck = [f for f in found.values() if "could not complete" in f["message"] and "lock timeout" not in f["message"]]
    assert not stuck, stuck


def test_a_lock_on_a_catalogue_view_is_reported_after_lock_timeout(small_sandbox, on, tmp_path):
    """A migration of pg_stat_statements itself (ALTER EXTENSION ... UPDATE): the slow-statement section gives up
    after lock_timeout and says so; every other section still runs."""
    on(small_sandbox)
    with small_sandbox.postgres.admin("ims") as admin:
        admin.execute("BEGIN")
        admin.execute("LOCK TABLE pg_stat_statements IN ACCESS EXCLUSIVE MODE")
        result, seconds = timed_run("db_performance", tmp_path, "INC-LOCK2")
        admin.execute("ROLLBACK")
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    slow = finding(summary, "postgres.slow_queries")
    assert slow["severity"] == "WARNING" and "lock timeout" in slow["message"], slow
    assert finding(summary, "postgres.connections_used")["severity"] in ("OK", "WARNING", "ERROR", "CRITICAL")
    assert finding(summary, "postgres.reachable")["severity"] == "OK"


def fill(connect, held: list[psycopg.Connection]) -> None:
    while True:
        try:
            held.append(connect())
        except psycopg.OperationalError:
            return


@pytest.fixture
def held_connections():
    held: list[psycopg.Connection] = []
    yield held
    for conn in held:
        conn.close()


@pytest.mark.parametrize("slots", ["ordinary", "all"])
def test_exhausted_max_connections_is_reported_not_hung(small_sandbox, on, tmp_path, held_connections, slots):
    """The app fills every ordinary slot (and then, for `all`, a superuser the reserved ones too)."""
    on(small_sandbox)
    fill(small_sandbox.postgres.connect, held_connections)
    if slots == "all":
        fill(lambda: small_sandbox.postgres.admin("ims"), held_connections)
        assert len(held_connections) == small_sandbox.postgres.max_connections
    result, _ = timed_run("db_performance", tmp_path, "INC-FULL")
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    reach = finding(summary, "postgres.reachable")
    assert reach["severity"] == "CRITICAL" and "too many clients" in reach["message"], reach
    assert result.exit_code == 1
