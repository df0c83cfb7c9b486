"""imsnb.postgres.vacuum against a private PostgreSQL: tables autovacuum left behind, each judged against its own
autovacuum trigger (the table's storage parameters, else the server's), and the judge's wording without a server."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import wait_until

from imsnb import postgres
from imsnb.findings import Severity
from imsnb.sandbox.postgres import PostgresServer

# carts: the server's settings (autovacuum at 50 + 20% of 20,000 rows = 4,050 dead rows); orders: its own
# (100 + 1% of 20,000 = 300). Autovacuum is off for both, so the dead rows stay until the test reads them.
TABLES = """
CREATE TABLE carts (id int PRIMARY KEY) WITH (autovacuum_enabled = off);
CREATE TABLE orders (id int PRIMARY KEY) WITH (
    autovacuum_enabled = off, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 100
);
CREATE TABLE notes (id int PRIMARY KEY);
INSERT INTO carts SELECT generate_series(1, 20000);
INSERT INTO orders SELECT generate_series(1, 20000);
INSERT INTO notes SELECT generate_series(1, 500);
ANALYZE carts, orders, notes;
DELETE FROM carts WHERE id <= 12000;
DELETE FROM orders WHERE id <= 900;
"""


@pytest.fixture(scope="module")
def server():
    server = PostgresServer().start()
    with server.connect("ims-migrate", autocommit=True) as conn:
        conn.execute(TABLES)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def db(server):
    settings = {"host": "127.0.0.1", "port": str(server.port), "user": "ims", "dbname": "ims"}
    with postgres.Database("tests", settings={**settings, "password": server.password}) as session:
        yield session


def dead_rows_flushed(db) -> pd.DataFrame:
    """The tables once the deleting backend's statistics reached pg_stat_user_tables."""

    def flushed() -> list[pd.DataFrame]:
        tables = postgres.dead_rows(db)
        return [tables] if tables["dead_rows"].sum() >= 12_900 else []

    return wait_until(flushed, what="the deletes' dead rows in pg_stat_user_tables")[0]


@pytest.mark.servers
def test_each_table_is_judged_against_its_own_autovacuum_trigger(db):
    tables = dead_rows_flushed(db)
    columns = ["table", "live_rows", "dead_rows", "autovacuum_at", "autovacuum_on", "past_autovacuum"]
    assert tables[columns].to_dict("records") == [
        {"table": "orders", "live_rows": 19100, "dead_rows": 900, "autovacuum_at": 300, "autovacuum_on": False,
         "past_autovacuum": 3.0},
        {"table": "carts", "live_rows": 8000, "dead_rows": 12000, "autovacuum_at": 4050, "autovacuum_on": False,
         "past_autovacuum": 12000 / 4050},
    ], "notes (500 rows) is too small to judge; orders' own settings put it first"  # fmt: skip
    finding = postgres.dead_rows_finding(tables)
    assert (finding.severity, finding.value, finding.unit) == (Severity.WARNING, 3.0, "x")
    assert finding.component == "database"
    assert finding.message == (
        "public.orders: 900 dead rows beside 19,100 live, 3.0x the 300 at which autovacuum starts on it (kept under "
        "2x); autovacuum is off for it (the table's autovacuum_enabled or the server's autovacuum)"
    )


@pytest.mark.servers
def test_after_a_vacuum_by_hand_the_table_reads_clean(server, db):
    """The fix the finding points to, proven on the same reading: VACUUM carts, and its dead rows are gone while
    orders (not vacuumed) is still judged."""
    dead_rows_flushed(db)
    with server.connect("ims-migrate", autocommit=True) as conn:
        conn.execute("VACUUM carts")
    tables = postgres.dead_rows(db, min_rows=1_000).set_index("table")  # carts now holds 8,000 rows
    assert tables.loc["carts", "dead_rows"] == 0 and pd.notna(tables.loc["carts", "last_vacuum"])
    assert postgres.dead_rows_finding(tables.reset_index()).message.startswith("public.orders: 900 dead rows")


def _table(name: str, past: float, **extra) -> dict:
    return {
        "schema": "public",
        "table": name,
        "live_rows": 10_000,
        "dead_rows": int(past * 2_050),
        "autovacuum_at": 2_050,
        "autovacuum_on": True,
        "vacuuming": None,
        "last_autovacuum": None,
        "past_autovacuum": past,
        **extra,
    }


OFF = "autovacuum_enabled or the server's autovacuum)"


def test_the_finding_says_why_autovacuum_has_not_cleaned_the_table():
    at = pd.Timestamp("2026-12-01 03:04:05", tz="UTC")
    cases = [
        (_table("carts", 6.0, vacuuming="scanning heap"), Severity.ERROR, "; a VACUUM is running on it (scanning heap)"),  # noqa: E501
        (_table("carts", 2.5), Severity.WARNING, "; no autovacuum of it since the statistics were reset"),
        (_table("carts", 1.5, last_autovacuum=at), Severity.OK, "; last autovacuum 2026-12-01 03:04 UTC"),
        (_table("carts", 1.5, last_autovacuum=at.tz_convert("Asia/Tokyo")), Severity.OK, "03:04 UTC"),  # server's TZ
        (_table("carts", 0.5, last_autovacuum=at), Severity.OK, "starts on it (kept under 2x)"),
        (_table("carts", 0.5, autovacuum_on=False), Severity.OK, "; autovacuum is off for it (the table's " + OFF),
    ]  # fmt: skip
    for row, severity, says in cases:
        finding = postgres.dead_rows_finding(pd.DataFrame([row]))
        assert finding.severity == severity and finding.message.endswith(says), finding.message


def test_never_autovacuumed_is_said_beside_a_table_that_was():
    """Once one table has a last_autovacuum, the column is datetime64 and another's None is NaT (which is true)."""
    at = pd.Timestamp("2026-12-01 03:04:05", tz="UTC")
    tables = pd.DataFrame([_table("carts", 3.0), _table("orders", 1.0, last_autovacuum=at)])
    assert postgres.dead_rows_finding(tables).message.endswith("no autovacuum of it since the statistics were reset")


def test_no_table_large_enough_is_ok_and_says_so():
    finding = postgres.dead_rows_finding(pd.DataFrame(columns=list(_table("carts", 1.0))))
    assert (finding.severity, finding.message, finding.threshold) == (Severity.OK, "no table large enough to judge", 2)
