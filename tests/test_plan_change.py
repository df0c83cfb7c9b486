"""Plan history and `postgres.plan_change`: shapes stored only when they change; a plan that changed inside the
window is named before → after with when, the index it lost, and ERROR when the statement also regressed; one that
changed before the window is not this incident's; `imsnb record` keeps the plans of the busiest statements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from imsnb import postgres, sampling
from imsnb.history import History
from imsnb.period import Period
from imsnb.postgres.plan_shape import plan_shape
from imsnb.sandbox.postgres import PostgresServer

pytestmark = pytest.mark.servers  # a PostgreSQL of its own

INDEX_SCAN = {
    "Node Type": "Index Scan",
    "Index Name": "items_sku",
    "Relation Name": "items",
    "Schema": "public",
    "Total Cost": 8.3,
    "Plan Rows": 1,
}
SEQ_SCAN = {"Node Type": "Seq Scan", "Relation Name": "items", "Schema": "public", "Total Cost": 5411.0, "Plan Rows": 1}
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def plans_frame(queryid: str, plan: dict) -> pd.DataFrame:
    shape = plan_shape(plan)
    return pd.DataFrame(
        [
            {
                "queryid": queryid,
                "query": "SELECT id, price FROM items WHERE sku = $1",
                "shape": shape,
                "plan_hash": shape.hash,
                "skipped": "",
            }
        ]
    )


def test_a_shape_is_stored_once_and_its_last_sighting_moves(tmp_path):
    history = History(tmp_path / "h.sqlite")
    index = plan_shape(INDEX_SCAN)
    for minutes in range(3):
        history.add_plans(
            "pg",
            {"42": (index.hash, index.to_dict())},
            taken_at=T0 + timedelta(minutes=minutes),
            taken_by="imsnb record",
        )
    seq = plan_shape(SEQ_SCAN)
    added = history.add_plans(
        "pg", {"42": (seq.hash, seq.to_dict())}, taken_at=T0 + timedelta(minutes=5), taken_by="imsnb record"
    )
    stored = history.plans("pg", "42")
    assert added == 1
    assert [(p.plan_hash, p.first_seen, p.last_seen) for p in stored] == [
        (index.hash, T0, T0 + timedelta(minutes=2)),
        (seq.hash, T0 + timedelta(minutes=5), T0 + timedelta(minutes=5)),
    ]
    assert history.plans("pg", "43") == [] and history.plans("other", "42") == []


def test_a_change_inside_the_window_is_named_with_when_and_the_lost_index(tmp_path):
    history = History(tmp_path / "h.sqlite")
    index = plan_shape(INDEX_SCAN)
    history.add_plans("pg", {"42": (index.hash, index.to_dict())}, taken_at=T0, taken_by="imsnb record")
    history.add_plans(
        "pg", {"42": (index.hash, index.to_dict())}, taken_at=T0 + timedelta(minutes=9), taken_by="imsnb record"
    )
    now = T0 + timedelta(minutes=15)
    changes = sampling.plan_changes(
        plans_frame("42", SEQ_SCAN), history, "pg", window_start=T0 + timedelta(minutes=5), now=now
    )
    assert changes[["before", "after", "reference"]].values.tolist() == [
        [index.text, plan_shape(SEQ_SCAN).text, "history"]
    ]
    assert changes["last_seen_before"].iloc[0] == T0 + timedelta(minutes=9)
    assert changes["first_seen_after"].iloc[0] == now
    changes["lost_indexes"] = ["items_sku"]  # as with_lost_indexes leaves it when the index is gone
    period = Period(T0 + timedelta(minutes=5), now, "history")
    regressed = pd.DataFrame([{"queryid": "42", "ratio": 120.0}])
    finding = sampling.plan_change_finding(changes, regressed, period)
    assert finding.severity.name == "ERROR"
    assert "Index Scan using items_sku on items" in finding.message and "Seq Scan on items" in finding.message
    assert "between 12:09:00 and 12:15:00 UTC" in finding.message
    assert "items_sku no longer exists" in finding.message and "120x slower" in finding.message
    alone = sampling.plan_change_finding(changes.assign(lost_indexes=""), None, period)
    assert alone.severity.name == "INFO"


def test_a_change_before_the_window_is_not_this_incidents(tmp_path):
    history = History(tmp_path / "h.sqlite")
    index, seq = plan_shape(INDEX_SCAN), plan_shape(SEQ_SCAN)
    history.add_plans("pg", {"42": (index.hash, index.to_dict())}, taken_at=T0, taken_by="imsnb record")
    history.add_plans("pg", {"42": (seq.hash, seq.to_dict())}, taken_at=T0 + timedelta(hours=1), taken_by="x")
    changes = sampling.plan_changes(
        plans_frame("42", SEQ_SCAN), history, "pg", window_start=T0 + timedelta(hours=3), now=T0 + timedelta(hours=4)
    )
    assert changes.empty and changes.attrs == {"compared": 1, "unknown": 0}
    finding = sampling.plan_change_finding(changes, None, Period(T0, T0 + timedelta(hours=4), "history"))
    assert finding.severity.name == "OK" and "1 compared" in finding.message


def test_the_baseline_plan_is_the_reference_without_history(tmp_path):
    index = plan_shape(INDEX_SCAN)
    changes = sampling.plan_changes(
        plans_frame("42", SEQ_SCAN),
        History(tmp_path / "empty.sqlite"),
        "pg",
        window_start=T0,
        baseline_plans={"42": index.to_dict()},
        now=T0 + timedelta(minutes=1),
    )
    assert changes[["before", "reference"]].values.tolist() == [[index.text, "baseline"]]


def _queryids(server, text: str) -> list[str]:
    with server.admin("ims") as admin:
        rows = admin.execute("SELECT queryid::text FROM pg_stat_statements WHERE query LIKE %s", (f"{text}%",))
        return [r[0] for r in rows]


@pytest.fixture(scope="module")
def server():
    pg = PostgresServer().start()
    with pg.connect("ims-migrate", autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, sku text NOT NULL, price numeric NOT NULL)")
        conn.execute("INSERT INTO items (sku, price) SELECT 'SKU-' || i, i FROM generate_series(1, 50000) AS i")
        conn.execute("CREATE INDEX items_sku ON items (sku)")
        conn.execute("ANALYZE items")
    yield pg
    pg.stop()


def test_record_keeps_the_plan_and_a_run_names_the_dropped_index(server, tmp_path):
    settings = {
        "host": "127.0.0.1",
        "port": str(server.port),
        "user": "ims",
        "dbname": "ims",
        "password": server.password,
    }
    history = History(tmp_path / "h.sqlite")
    with server.connect("ims-backend", autocommit=True) as app:
        for i in range(50):
            app.execute("SELECT id, price FROM items WHERE sku = %s", (f"SKU-{i}",))
    with postgres.Database("test-record", settings=settings) as db:
        assert sampling.record_plans(db, history, taken_by="imsnb record") >= 1
        sampling.record_plans(db, history, taken_by="imsnb record")
        target = f"postgres {db.label}"
    stored = [history.plans(target, q) for q in _queryids(server, "SELECT id, price FROM items WHERE sku")]
    assert [len(p) for p in stored] == [1]  # the same shape twice: stored once
    assert stored[0][0].shape["indexes"] == ["items_sku"]
    with server.connect("ims-migrate", autocommit=True) as conn:
        conn.execute("DROP INDEX items_sku")
    with server.connect("ims-backend", autocommit=True) as app:
        for i in range(5):
            app.execute("SELECT id, price FROM items WHERE sku = %s", (f"SKU-{i}",))
    with postgres.Database("test-run", settings=settings) as db:
        sample = sampling.Sample(0, db=db, history=history)
        statements = sample.statements(limit=20)  # DDL of the set-up ranks above the lookup; it is never explained
        plans, changes = sampling.plans_and_changes(sample, statements)
    lookup = changes[changes["query"].str.contains("FROM items WHERE sku")]
    assert lookup["before"].iloc[0].startswith("Index Scan using items_sku on items")
    assert lookup["after"].iloc[0].startswith("Seq Scan on items")
    assert lookup["lost_indexes"].iloc[0] == "items_sku"
    # this run's plan went into the history: the next run compares with it
    queryid = lookup["queryid"].iloc[0]
    assert [p.shape["nodes"] for p in history.plans(target, queryid)][-1] == ["Seq Scan on items"]


def test_the_baseline_keeps_the_busiest_statements_plans(server, tmp_path):
    settings = {
        "host": "127.0.0.1",
        "port": str(server.port),
        "user": "ims",
        "dbname": "ims",
        "password": server.password,
    }
    with server.connect("ims-backend", autocommit=True) as app:
        for i in range(200):
            app.execute("SELECT id, price FROM items WHERE sku = %s", (f"SKU-{i}",))  # scans: its index was dropped
    with postgres.Database("test-baseline", settings=settings) as db:
        sample = sampling.Sample(0, db=db, history=History(tmp_path / "h.sqlite"))
        sample.save_baseline(sampling.PG_STATEMENTS)
        saved = sample.baseline(sampling.PG_STATEMENTS)
    nodes = [node for shape in saved["plans"].values() for node in shape["nodes"]]
    assert "Seq Scan on items" in nodes


def test_ddl_takes_no_place_among_the_statements_worth_explaining():
    """The set-up's INSERT, CREATE INDEX and ANALYZE outweigh an application's lookup in total time; the utility
    statements are never planned, so the limit counts only what can be."""
    frame = pd.DataFrame(
        {
            "queryid": ["1", "2", "3", "4"],
            "query": ["CREATE INDEX items_sku ON items (sku)", "ANALYZE items", "VACUUM items", "SELECT 1 FROM t"],
            "total_ms": [68.0, 34.0, 20.0, 5.0],
        }
    )
    chosen = sampling.statements_to_explain(frame, limit=2)
    assert chosen["query"].tolist() == ["SELECT 1 FROM t"]
