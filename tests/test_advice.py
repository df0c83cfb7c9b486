"""imsnb.postgres.advice: candidate indexes from the parse tree, kept when the planner (HypoPG) uses them.

A private server with an application's shapes (tests/planner_server.py): the workload runs with literals, as an
application sends it, and pg_stat_statements' rows are what the advice reads. Decoys must get nothing: a
low-selectivity filter, an indexed lookup, a primary-key lookup, a small table, a statement that sleeps.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import psycopg
import pytest
from matplotlib.figure import Figure
from planner_server import session_as, start_planner_server

from imsnb import charts, postgres
from imsnb.findings import Severity, threshold
from imsnb.period import Period
from imsnb.postgres.advice import NOT_VERIFIED, VERIFIED
from imsnb.postgres.candidates import Candidate, index_name
from imsnb.sandbox.postgres import APP_DATABASE

pytestmark = pytest.mark.servers  # a PostgreSQL planner server

# What an application sends (literals) and how pg_stat_statements' text of it starts ($n for the literals).
WORKLOAD = {
    "recent orders": (
        "SELECT id, total FROM orders WHERE customer_id = {n} ORDER BY created_at DESC LIMIT 20",
        "SELECT id, total FROM orders WHERE customer_id = $1",
    ),
    "by email": (
        "SELECT o.id, o.total FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE c.email = 'customer{n}@example.com'",
        "SELECT o.id, o.total FROM orders o JOIN customers c",
    ),
    "statuses": (  # decoy: two thirds of the rows
        "SELECT count(*) FROM orders WHERE status IN ('new', 'paid')",
        "SELECT count(*) FROM orders WHERE status IN",
    ),
    "sku": ("SELECT id, price FROM items WHERE sku = md5('{n}')", "SELECT id, price FROM items"),  # decoy: indexed
    "account": ("SELECT abalance FROM pgbench_accounts WHERE aid = {n}", "SELECT abalance"),  # decoy: primary key
    "history": ("SELECT * FROM pgbench_history WHERE aid = {n}", "SELECT * FROM pgbench_history"),  # decoy: empty
    "sleep": ("SELECT pg_sleep(0.001)", "SELECT pg_sleep("),  # decoy: its time is waiting
}
DECOYS = ("statuses", "sku", "account", "history", "sleep")


@pytest.fixture(scope="module")
def server():
    server = start_planner_server()
    with psycopg.connect(host=str(server.dir), port=server.port, user="postgres", dbname=APP_DATABASE) as app:
        app.execute("SELECT pg_stat_statements_reset()")
        for n in range(1, 4):
            for text, _ in WORKLOAD.values():
                app.execute(text.format(n=n))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reader(server):
    with session_as(server, "imsnb_reader") as db:
        yield db


@pytest.fixture(scope="module")
def window(server, reader) -> pd.DataFrame:
    """The workload's pg_stat_statements rows (masked, as imsnb shows them), each named by its WORKLOAD key."""
    shown = postgres.statements(reader, limit=1000)
    shown = shown[shown["user"] == "postgres"].copy()
    names = {}
    for name, (_, head) in WORKLOAD.items():
        match = shown[shown["query"].str.startswith(head, na=False)]
        assert len(match) == 1, (name, head, shown["query"].tolist())
        names[match.index[0]] = name
    shown = shown.loc[list(names)]
    shown["name"] = [names[i] for i in shown.index]
    shown["calls_per_s"] = shown["calls"] / 60.0
    return shown.reset_index(drop=True)


def named(window: pd.DataFrame, queryids) -> set[str]:
    return set(window.set_index("queryid").loc[list(queryids), "name"])


def test_the_sandbox_creates_hypopg_where_the_package_is_installed(reader):
    assert reader.scalar("SELECT extversion FROM pg_extension WHERE extname = 'hypopg'") is not None


# --- candidates from the parse tree, no server -------------------------------------------------------------------


def test_a_lookup_ordered_by_date_gives_equality_first_candidates():
    found = postgres.index_candidates(
        "SELECT id, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2"
    )
    assert [(c.table, c.columns) for c in found] == [
        ("orders", ("customer_id",)),
        ("orders", ("created_at",)),
        ("orders", ("customer_id", "created_at")),
    ]
    assert found[2].roles == ("equality", "order")


def test_join_keys_in_lists_ranges_and_correlated_subqueries_are_candidates():
    join = postgres.index_candidates(
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = $1"
    )
    assert Candidate("orders", ("customer_id",)) in join and Candidate("customers", ("email",)) in join
    assert Candidate("orders", ("customer_id",)) == Candidate("orders", ("customer_id",), roles=("equality",))
    ranged = postgres.index_candidates("SELECT * FROM orders WHERE status IN ($1, $2) AND created_at > $3")
    assert [c.columns for c in ranged] == [("status",), ("created_at",), ("status", "created_at")]
    exists = postgres.index_candidates(
        "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)"
    )
    assert Candidate("orders", ("customer_id",)) in exists
    schema = postgres.index_candidates("UPDATE shop.orders SET status = $1 WHERE customer_id = ANY($2)")
    assert schema == [Candidate("orders", ("customer_id",), "shop")]
    assert postgres.index_candidates("PREPARE p AS SELECT * FROM orders WHERE customer_id = $1") == [
        Candidate("orders", ("customer_id",))
    ]
    assert postgres.index_candidates("SELECT pg_sleep($1)") == []
    assert postgres.index_candidates("SELECT id FROM orders WHERE") == []


def test_the_advised_statement_names_the_index_and_quotes_only_what_needs_it():
    candidate = Candidate("Orders", ("customer_id", "created_at"), "public")
    assert candidate.statement() == (
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "imsnb_Orders_customer_id_created_at" '
        'ON public."Orders" (customer_id, created_at)'
    )
    long = index_name("a_table_with_a_rather_long_name", ["and_a_long_column", "and_another_long_column"])
    assert len(long.encode()) <= 63 and long.startswith("imsnb_a_table")


# --- verified by the planner -------------------------------------------------------------------------------------


def test_the_missing_index_is_advised_verified_and_the_decoys_get_nothing(reader, window):
    advice = postgres.index_advice(reader, window)
    assert list(advice.columns) == [
        "schema",
        "table",
        "index",
        "columns",
        "statement",
        "queryids",
        "calls_per_s",
        "time_share",
        "cost_before",
        "cost_after",
        "size_bytes",
        "verified",
        "note",
        "detail",
    ]
    assert len(advice) == 1, advice[["statement", "queryids"]]
    row = advice.iloc[0]
    assert row["statement"] == (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS imsnb_orders_customer_id ON public.orders (customer_id)"
    )
    assert named(window, row["queryids"]) == {"recent orders", "by email"}
    assert bool(row["verified"]) and row["note"] == VERIFIED
    assert row["cost_after"] <= 0.5 * row["cost_before"]
    for entry in row["detail"]:
        assert entry["cost_after"] < 0.5 * entry["cost_before"] and "$1" in entry["query"]
    assert 1_000_000 < row["size_bytes"] < 20_000_000  # 100,000 bigints and their tuple headers
    helped = window[window["queryid"].isin(row["queryids"])]
    assert row["calls_per_s"] == pytest.approx(helped["calls_per_s"].sum())
    assert row["time_share"] == pytest.approx(helped["total_ms"].sum() / window["total_ms"].sum())
    examined = advice.attrs["imsnb.index_advice"]
    assert examined["hypopg"] is True and "public.orders" in examined["tables"]
    assert all(name not in DECOYS for name in named(window, row["queryids"]))
    assert reader.scalar("SELECT count(*) FROM hypopg_list_indexes") == 0, "hypopg_reset() after"
    assert reader.scalar("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'imsnb%%'") == 0


def test_a_lookup_with_a_range_prefers_the_smallest_index_that_gets_nearly_all_the_drop(reader):
    frame = pd.DataFrame(
        {
            "queryid": ["1"],
            "query": ["SELECT id FROM orders WHERE customer_id = $1 AND created_at > $2"],
            "calls": [10.0],
            "total_ms": [500.0],
        }
    )
    advice = postgres.index_advice(reader, frame)
    assert advice["columns"].tolist() == [("customer_id",)]


def test_an_index_that_exists_is_not_advised_again_and_an_invalid_one_is_named(server, reader, window):
    with server.admin(APP_DATABASE) as admin, pytest.raises(psycopg.errors.UniqueViolation):
        admin.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_customer_once ON orders (customer_id)")
    try:
        advice = postgres.index_advice(reader, window)
        assert advice["columns"].tolist() == [("customer_id",)]
        assert "INVALID index orders_customer_once" in advice.iloc[0]["note"]
        with server.admin(APP_DATABASE) as admin:
            admin.execute("DROP INDEX orders_customer_once")
            admin.execute("CREATE INDEX orders_customer ON orders (customer_id)")
        # orders is indexed now: the join reads customers whole to find the email, the next index to add
        after = postgres.index_advice(reader, window)
        assert after["statement"].tolist() == [
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS imsnb_customers_email ON public.customers (email)"
        ]
        assert named(window, after.iloc[0]["queryids"]) == {"by email"}
    finally:
        with server.admin(APP_DATABASE) as admin:
            admin.execute("DROP INDEX IF EXISTS orders_customer_once")
            admin.execute("DROP INDEX IF EXISTS orders_customer")


def test_the_finding_words_the_advice_and_warns_when_it_carries_most_of_the_time(reader, window):
    advice = postgres.index_advice(reader, window)
    share = float(advice.iloc[0]["time_share"])
    finding = postgres.index_advice_finding(advice)
    assert finding.check == "postgres.index_advice" and finding.component == "database"
    assert finding.value == pytest.approx(share, abs=1e-4) and finding.threshold == 0.5 and finding.unit == "ratio"
    expected = Severity.WARNING if share >= 0.5 else Severity.INFO
    assert finding.severity == expected
    assert "CREATE INDEX CONCURRENTLY IF NOT EXISTS imsnb_orders_customer_id ON public.orders (customer_id)" in (
        finding.message
    )
    assert "helps 2 statement(s)" in finding.message and "verified by the planner (HypoPG)" in finding.message
    assert "→" in finding.message and "MiB" in finding.message and "calls/s" in finding.message
    assert finding.evidence and finding.evidence[0]["table"] == "orders"
    heavy = advice.copy()
    heavy["detail"] = [[{**e, "time_share": 0.4} for e in d] for d in heavy["detail"]]
    assert postgres.index_advice_finding(heavy).severity == Severity.WARNING, "0.8 of the window's time"
    light = advice.copy()
    light["detail"] = [[{**e, "time_share": 0.01} for e in d] for d in light["detail"]]
    assert postgres.index_advice_finding(light).severity == Severity.INFO
    assert postgres.index_advice_finding(heavy.assign(verified=False)).severity == Severity.INFO, "a guess"
    assert threshold("postgres.index_advice").warning == 0.5
    window_period = Period(
        datetime(2026, 12, 2, 20, 0, tzinfo=UTC), datetime(2026, 12, 2, 20, 30, tzinfo=UTC), "history"
    )
    tagged = postgres.index_advice(reader, window, period=window_period)
    assert postgres.index_advice_finding(tagged).period == window_period, "the finding covers the window advised on"


def test_nothing_to_advise_is_ok_and_says_what_was_examined(reader, window):
    decoys = window[window["name"].isin(DECOYS)]
    advice = postgres.index_advice(reader, decoys)
    assert advice.empty
    finding = postgres.index_advice_finding(advice)
    assert finding.severity == Severity.OK and finding.message.startswith("no index advised:")
    assert "its time is pg_sleep, not scanning" in str(advice.attrs["imsnb.index_advice"]["skipped"])


def test_a_role_that_cannot_plan_gets_an_info_naming_why_not_a_silent_ok(server, window):
    with session_as(server, "imsnb_statsonly") as db:
        advice = postgres.index_advice(db, window)
        finding = postgres.index_advice_finding(advice)
    assert advice.empty and finding.severity == Severity.INFO, "never an OK for statements it could not plan"
    assert finding.message.startswith("no advice for 1 statement(s) planned, but 6 could not be planned")
    assert "GRANT pg_read_all_data" in finding.message


def test_without_hypopg_the_advice_is_the_unverified_guess_and_still_skips_the_decoys(server, window):
    """A second database without the extension (as most servers are): the equality-first guess, marked not verified
    with how to verify it; the low-selectivity filter (by pg_stats) and the indexed lookups still get nothing."""
    with server.admin() as admin:
        admin.execute("CREATE DATABASE nohypo")
    try:
        with server.admin("nohypo") as admin:
            admin.execute("CREATE EXTENSION pg_stat_statements")
            admin.execute(
                "CREATE TABLE orders AS SELECT i AS id, 1 + (i * 7919) % 5000 AS customer_id, "
                "(ARRAY['new', 'paid', 'shipped'])[1 + i % 3] AS status, now() - i * interval '1 minute' AS created_at "
                "FROM generate_series(1, 30000) AS i"
            )
            admin.execute("ALTER TABLE orders ADD PRIMARY KEY (id)")
            admin.execute("ANALYZE orders")
        with session_as(server, "imsnb_reader", dbname="nohypo") as db:
            frame = pd.DataFrame(
                {
                    "queryid": ["1", "2", "3"],
                    "query": [
                        "SELECT id FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2",
                        "SELECT count(*) FROM orders WHERE status = $1",
                        "SELECT status FROM orders WHERE id = $1",
                    ],
                    "calls": [100.0, 100.0, 100.0],
                    "total_ms": [9000.0, 500.0, 500.0],
                }
            )
            advice = postgres.index_advice(db, frame)
            assert db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'hypopg'") == 0
        assert advice["columns"].tolist() == [("customer_id", "created_at")]
        row = advice.iloc[0]
        assert not row["verified"] and row["note"] == NOT_VERIFIED and math.isnan(row["cost_after"])
        assert row["queryids"] == ["1"] and row["time_share"] == pytest.approx(0.9)
        finding = postgres.index_advice_finding(advice)
        assert finding.severity == Severity.INFO, "90% of the time, but unverified: a guess does not page"
        assert "not verified: HypoPG is not installed — CREATE EXTENSION hypopg" in finding.message
        assert "(after: not verified)" in finding.message
    finally:
        with server.admin() as admin:
            admin.execute("DROP DATABASE nohypo WITH (FORCE)")


def test_the_chart_shows_cost_before_and_after_per_statement(reader, window):
    advice = postgres.index_advice(reader, window)
    fig = charts.index_advice_chart(advice)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.patches) == 4  # two statements, before and after each
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths[-1] > 2 * widths[0]
    empty = charts.index_advice_chart(advice.iloc[0:0])
    assert empty.axes[0].texts[0].get_text() == "no index advised"
