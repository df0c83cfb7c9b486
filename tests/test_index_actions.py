"""The index fix with two keys, on a real PostgreSQL: nothing is built without both keys; with both, the index is
built CONCURRENTLY on a connection opened at apply time, re-checked first, capped per run; an INVALID leftover of a
failed build is found and dropped."""

from __future__ import annotations

import pandas as pd
import pytest

from imsnb import actions, postgres, started_with
from imsnb.errors import BadParameter
from imsnb.sandbox.postgres import PostgresServer

pytestmark = pytest.mark.servers  # a PostgreSQL of its own

ORDERS = """
CREATE TABLE orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO orders (customer_id, created_at)
SELECT i % 5000, now() - i * interval '1 second' FROM generate_series(1, 50000) AS i;
ANALYZE orders;
"""
VALID = "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)"


@pytest.fixture(scope="module")
def server():
    pg = PostgresServer().start()
    with pg.connect("ims-migrate", autocommit=True) as conn:
        conn.execute(ORDERS)
    yield pg
    pg.stop()


@pytest.fixture
def db(server):
    settings = {"host": "127.0.0.1", "port": str(server.port), "user": "ims", "dbname": "ims"}
    with postgres.Database("test-indexes", settings={**settings, "password": server.password}) as session:
        yield session


def advice(columns=("customer_id", "created_at"), **extra) -> pd.DataFrame:
    row = {"table": "public.orders", "columns": list(columns), "verified": True, "cost_before": 1000.0}
    return pd.DataFrame([{**row, "cost_after": 8.0, "queryids": ["1"], **extra}])


def index_valid(server, name: str):
    with server.admin("ims") as admin:
        row = admin.execute(VALID, (f"public.{name}",)).fetchone()
    return None if row is None else row[0]


def drop(server, name: str) -> None:
    with server.admin("ims") as admin:
        admin.execute(f"DROP INDEX IF EXISTS {name}")


def test_without_both_keys_nothing_is_built(server, db, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", False)
    plans = actions.create_index_actions(db, advice())
    outcome = actions.execute(plans, apply_actions=True, approver="jane")
    assert outcome["status"].tolist() == ["planned"]
    assert "run key is missing" in outcome["detail"].iloc[0]
    assert outcome["command"].iloc[0] == (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS imsnb_orders_customer_id_created_at "
        "ON public.orders (customer_id, created_at)"
    )
    assert index_valid(server, "imsnb_orders_customer_id_created_at") is None


def test_both_keys_build_the_index_and_the_planner_uses_it(server, db, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)
    name = "imsnb_orders_customer_id_created_at"
    try:
        outcome = actions.execute(actions.create_index_actions(db, advice()), apply_actions=True, approver="jane")
        assert outcome["status"].tolist() == ["applied"], outcome["detail"].tolist()
        assert outcome["detail"].iloc[0].startswith(f"built public.{name} (valid")
        assert outcome["undo"].iloc[0] == f"DROP INDEX CONCURRENTLY IF EXISTS public.{name}"
        assert index_valid(server, name) is True
        with server.connect("ims-backend", autocommit=True) as conn:
            plan = conn.execute(
                "EXPLAIN SELECT id FROM orders WHERE customer_id = 7 ORDER BY created_at DESC LIMIT 10"
            ).fetchall()
        assert name in " ".join(r[0] for r in plan)
        # The same advice again: the re-check finds the index serving and builds nothing.
        again = actions.execute(actions.create_index_actions(db, advice()), apply_actions=True, approver="jane")
        assert again["status"].tolist() == ["skipped"]
        assert f"{name} now serves (customer_id, created_at)" in again["detail"].iloc[0]
    finally:
        drop(server, name)


def test_the_cap_holds_and_a_bad_cap_is_refused(server, db, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)
    many = pd.concat([advice(("customer_id",)), advice(("created_at",))], ignore_index=True)
    try:
        outcome = actions.execute(
            actions.create_index_actions(db, many, max_indexes=1), apply_actions=True, approver="jane"
        )
        assert outcome["status"].tolist() == ["applied", "skipped"]
        assert "over the cap of 1 index(es) per run" in outcome["detail"].iloc[1]
        assert index_valid(server, "imsnb_orders_created_at") is None
    finally:
        drop(server, "imsnb_orders_customer_id")
    with pytest.raises(BadParameter, match="max_indexes must be between 0 and 5"):
        actions.create_index_actions(db, many, max_indexes=50)


def test_a_failed_build_leaves_an_invalid_index_that_the_next_run_drops(server, db, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)
    with (
        server.connect("ims-migrate", autocommit=True) as conn,
        pytest.raises(Exception, match="could not create unique index"),
    ):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY orders_customer_unique ON orders (customer_id)")
    invalid = postgres.invalid_indexes(db)
    assert invalid[["schema", "index", "table"]].values.tolist() == [["public", "orders_customer_unique", "orders"]]
    finding = postgres.invalid_indexes_finding(invalid)
    assert finding.severity.name == "WARNING" and "public.orders_customer_unique" in finding.message
    plans = actions.drop_invalid_index_actions(db, invalid)
    assert [p.action for p in plans] == ["drop_invalid_index"]
    assert plans[0].undo.startswith("rebuild: CREATE UNIQUE INDEX CONCURRENTLY orders_customer_unique")
    outcome = actions.execute(plans, apply_actions=True, approver="jane")
    assert outcome["status"].tolist() == ["applied"], outcome["detail"].tolist()
    assert postgres.invalid_indexes(db).empty
    assert postgres.invalid_indexes_finding(postgres.invalid_indexes(db)).severity.name == "OK"


def test_an_invalid_index_of_the_advised_name_is_dropped_before_anything_is_built(server, db, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)
    name = "imsnb_orders_customer_id"
    with (
        server.connect("ims-migrate", autocommit=True) as conn,
        pytest.raises(Exception, match="could not create unique index"),
    ):
        conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON orders (customer_id)")
    try:
        outcome = actions.execute(
            actions.create_index_actions(db, advice(("customer_id",))), apply_actions=True, approver="jane"
        )
        assert outcome["status"].tolist() == ["skipped"]
        assert "INVALID imsnb_orders_customer_id exists" in outcome["detail"].iloc[0]
    finally:
        drop(server, name)
