"""imsnb.postgres.plans against a real PostgreSQL: generic plans of pg_stat_statements' texts, executing nothing."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest
from planner_server import session_as, start_planner_server

from imsnb import postgres
from imsnb.findings import Severity
from imsnb.postgres.plan_shape import shape_hash
from imsnb.postgres.plans import plannable_text
from imsnb.sandbox.postgres import APP_DATABASE

pytestmark = pytest.mark.servers  # a PostgreSQL planner server

LOOKUP = "SELECT id, total FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2"


@pytest.fixture(scope="module")
def server():
    server = start_planner_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reader(server):
    with session_as(server, "imsnb_reader") as db:
        yield db


def session_state(db) -> tuple[str, str, list]:
    return (
        db.scalar("SHOW plan_cache_mode"),
        db.scalar("SHOW transaction_read_only"),
        db.frame("SELECT name FROM pg_prepared_statements WHERE name LIKE 'imsnb%%'")["name"].tolist(),
    )


def test_a_lookup_without_an_index_is_a_sequential_scan_and_the_session_is_left_as_it_was(reader):
    plan = postgres.generic_plan(reader, LOOKUP)
    shape = postgres.plan_shape(plan)
    assert shape.nodes == ["Seq Scan on orders"]
    assert shape.relations == ["orders"] and shape.indexes == []
    assert shape.total_cost > 1000 and shape.rows >= 1
    assert shape.text == f"Seq Scan on orders (cost {shape.total_cost:.0f})"
    assert session_state(reader) == ("auto", "on", []), "plan_cache_mode restored, nothing left prepared"


def test_an_indexed_lookup_names_its_index_and_pgbench_accounts_its_primary_key(reader):
    shape = postgres.plan_shape(postgres.generic_plan(reader, "SELECT id, price FROM items WHERE sku = $1"))
    assert shape.nodes == ["Index Scan using items_sku on items"] and shape.indexes == ["items_sku"]
    shape = postgres.plan_shape(postgres.generic_plan(reader, "SELECT abalance FROM pgbench_accounts WHERE aid = $1"))
    assert shape.nodes == ["Index Scan using pgbench_accounts_pkey on pgbench_accounts"]
    assert shape.total_cost < 20


def test_joins_and_in_lists_are_planned_with_every_relation(reader):
    join = postgres.plan_shape(
        postgres.generic_plan(
            reader, "SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = $1"
        )
    )
    assert join.nodes[0] in ("Hash Join", "Nested Loop") and set(join.relations) == {"orders", "customers"}
    assert "Seq Scan on orders" in join.nodes
    in_list = postgres.plan_shape(
        postgres.generic_plan(reader, "SELECT id FROM orders WHERE status IN ($1, $2) AND total > $3")
    )
    assert in_list.nodes == ["Seq Scan on orders"]
    pgbench = postgres.plan_shape(
        postgres.generic_plan(
            reader,
            "SELECT a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b ON b.bid = a.bid "
            "WHERE a.aid = $1",
        )
    )
    assert set(pgbench.relations) == {"pgbench_accounts", "pgbench_branches"}
    assert "Index Scan using pgbench_accounts_pkey on pgbench_accounts" in pgbench.nodes


def test_the_shape_hash_ignores_costs_and_is_pinned():
    small = postgres.plan_shape({"Node Type": "Seq Scan", "Relation Name": "items", "Total Cost": 10, "Plan Rows": 1})
    large = postgres.plan_shape({"Node Type": "Seq Scan", "Relation Name": "items", "Total Cost": 5411, "Plan Rows": 9})
    indexed = postgres.plan_shape(
        {"Node Type": "Index Scan", "Index Name": "items_sku", "Relation Name": "items", "Total Cost": 8.06}
    )
    assert small.hash == large.hash != indexed.hash
    # pinned: a stored shape must hash the same after an upgrade of imsnb, or every plan would read as changed
    assert small.hash == shape_hash(["Seq Scan on items"]) == "5234f9d359c9"
    assert indexed.hash == "0af779ee92a7"
    assert postgres.PlanShape.from_dict(indexed.to_dict()) == indexed
    hypothetical = postgres.plan_shape(
        {"Node Type": "Index Scan", "Index Name": "<13556>btree_items_sku", "Relation Name": "items"}
    )
    assert hypothetical.indexes == ["<hypothetical>btree_items_sku"], "HypoPG's oid varies per backend"


def test_statement_plans_reads_the_raw_text_of_masked_statements(server, reader):
    """The frames imsnb shows carry masked text (`varchar(255)` becomes `varchar(?)`, which would not prepare): the
    plans are taken from pg_stat_statements' own normalized text, found by queryid."""
    with psycopg.connect(host=str(server.dir), port=server.port, user="postgres", dbname=APP_DATABASE) as app:
        for customer in (42, 43, 44):
            app.execute(
                f"SELECT id, total FROM orders WHERE customer_id = {customer} ORDER BY created_at DESC LIMIT 10"
            )
            app.execute(f"SELECT id FROM customers WHERE email = CAST('c{customer}@example.com' AS varchar(255))")
            app.execute(f"SELECT abalance FROM pgbench_accounts WHERE aid = {customer}")
            app.execute("SELECT sum(total) FROM orders WHERE created_at > now() - interval '1 day'")
    shown = postgres.statements(reader, limit=1000)
    ours = shown["query"].str.contains("^SELECT .*(?:customer_id =|varchar|aid =|interval)")
    shown = shown[(shown["user"] == "postgres") & ours]
    assert len(shown) == 4 and shown["query"].str.contains("varchar(?)", regex=False).any()
    plans = postgres.statement_plans(reader, shown)
    assert list(plans.columns) == ["queryid", "query", "shape", "nodes", "cost", "rows", "plan_hash", "skipped"]
    assert (plans["skipped"] == "").all(), plans["skipped"].tolist()
    by_text = dict(zip(plans["query"], plans["nodes"], strict=True))
    assert any(t.startswith("Seq Scan on orders") for t in by_text.values())
    assert any(t.startswith("Index Scan using pgbench_accounts_pkey") for t in by_text.values())
    cast = plans[plans["query"].str.contains("varchar")].iloc[0]
    assert "varchar(?)" in cast["query"] and cast["nodes"].startswith("Seq Scan on customers")
    # pg_stat_statements leaves `interval $1` of `interval '1 day'`, which the server refuses: planned as $1::interval
    typed = plans[plans["query"].str.contains("interval")].iloc[0]
    assert "interval $1" in typed["query"] and typed["nodes"].startswith("Seq Scan on orders")


def test_what_cannot_be_planned_is_a_row_with_its_reason_never_an_error(reader):
    cut = "SELECT id FROM orders WHERE customer_id IN (" + ", ".join(f"${i}" for i in range(1, 400))
    cut = cut[:1023]  # pg_stat_activity's text, cut at track_activity_query_size (1024 bytes)
    texts = {
        "vacuum": "VACUUM orders",
        "ddl": "CREATE INDEX ON orders (customer_id)",
        "two": "SELECT 1; SELECT 2",
        "ambiguous": "SELECT id FROM orders WHERE $1 IS NULL",
        "operator": "SELECT tbalance FROM pgbench_tellers WHERE tid = $1 % $2 + $3",  # of `tid = 7 % 10 + 1`
        "prepare": "PREPARE app_lookup (bigint) AS SELECT status FROM orders WHERE id = $1",
        "cut": cut,
        "select into": "SELECT * INTO orders_copy FROM orders",
        "missing": "SELECT * FROM no_such_table WHERE id = $1",
        "ok": "SELECT status FROM orders WHERE id = $1",
    }
    frame = postgres.statement_plans(reader, pd.DataFrame({"queryid": list(texts), "query": list(texts.values())}))
    why = dict(zip(frame["queryid"], frame["skipped"], strict=True))
    assert why["vacuum"] == "VACUUM is utility/DDL: only SELECT, INSERT, UPDATE, DELETE are planned"
    assert why["ddl"].startswith("CREATE INDEX is utility/DDL")
    assert why["two"] == "2 statements in one text: each needs its own plan"
    assert why["ambiguous"].startswith("ambiguous parameter types (could not determine data type of parameter $1")
    assert why["operator"] == "ambiguous parameter types (operator is not unique: unknown % unknown)"
    assert why["prepare"] == "", "an application's own SQL PREPARE: what it prepares is planned"
    assert why["cut"] == "text cut at track_activity_query_size (1024 bytes)"
    assert why["select into"] == "SELECT INTO creates a table: not planned"
    assert why["missing"].startswith('relation "no_such_table" does not exist')
    assert why["ok"] == "" and frame.set_index("queryid").loc["ok", "nodes"].startswith("Index Scan using orders_pkey")
    assert frame.set_index("queryid").loc["vacuum", "shape"] is None
    assert session_state(reader) == ("auto", "on", [])


def test_plannable_text_refuses_without_a_server():
    with pytest.raises(postgres.PlanUnavailable) as refused:
        plannable_text("<insufficient privilege>")
    assert "pg_read_all_stats" in refused.value.reason
    assert plannable_text("SELECT 1;  ") == "SELECT 1"
    with pytest.raises(postgres.PlanUnavailable, match="ends mid-statement"):
        plannable_text("SELECT id FROM orders WHERE (customer_id = $1")


def test_a_pg_monitor_role_is_told_what_to_grant(server):
    """pg_monitor may PREPARE, but the planner checks table privileges: the refusal names the grant or the function,
    and postgres.visibility says it once for the run (INFO: no check reads a false OK for it)."""
    with session_as(server, "imsnb_statsonly") as db:
        with pytest.raises(postgres.PlanUnavailable) as refused:
            postgres.generic_plan(db, LOOKUP)
        assert refused.value.reason.startswith("this role may not read table orders")
        assert "GRANT pg_read_all_data" in refused.value.reason and "imsnb.explain_generic" in refused.value.reason
        assert session_state(db) == ("auto", "on", []), "DEALLOCATE after the refusal too"
        seen = postgres.visibility_finding(db)
        assert seen.severity == Severity.INFO
        assert "GRANT pg_read_all_data TO imsnb_statsonly" in seen.message and "explain_generic" in seen.message
        assert "ermission" not in seen.message  # the least-privilege fault test reads that word as a failed check


def test_pg_read_all_data_plans_selects_but_not_updates(server, reader):
    assert postgres.visibility_finding(reader).severity == Severity.OK
    with pytest.raises(postgres.PlanUnavailable, match="this role may not read table orders"):
        postgres.generic_plan(reader, "UPDATE orders SET status = $1 WHERE customer_id = $2")


def test_the_security_definer_function_plans_for_a_pg_monitor_role_and_explains_only(server):
    """The documented function (docs/plans-and-index-advice.md), created verbatim and owned by a role that owns
    nothing but may read and write the tables it plans: the monitoring role plans SELECTs and UPDATEs through it,
    nothing is executed, and a second statement smuggled after a `;` is refused."""
    with server.admin(APP_DATABASE) as admin:
        admin.execute("SET pg_stat_statements.track_utility = off")
        admin.execute("CREATE ROLE imsnb_explainer NOLOGIN IN ROLE pg_read_all_data")
        admin.execute("GRANT INSERT, UPDATE ON orders, audit TO imsnb_explainer")
        admin.execute(postgres.EXPLAIN_GENERIC_FUNCTION)
        admin.execute("ALTER FUNCTION imsnb.explain_generic(text) OWNER TO imsnb_explainer")
    try:
        with session_as(server, "imsnb_monitor") as db:
            shape = postgres.plan_shape(postgres.generic_plan(db, LOOKUP))
            assert shape.nodes == ["Seq Scan on orders"]
            update = postgres.plan_shape(postgres.generic_plan(db, "UPDATE orders SET status = $1 WHERE id = $2"))
            assert update.nodes == ["Index Scan using orders_pkey on orders"]
            before = db.scalar("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'audit'")
            postgres.generic_plan(db, "INSERT INTO audit (note) VALUES ($1)")
            with pytest.raises(postgres.PlanUnavailable, match="2 statements in one text"):  # refused before the server
                postgres.generic_plan(db, "SELECT id FROM orders WHERE id = $1; DELETE FROM audit")
            with pytest.raises(psycopg.errors.RaiseException, match="one statement"):
                db.scalar("SELECT imsnb.explain_generic('SELECT 1; INSERT INTO audit (note) VALUES (''x'')')")
            with pytest.raises(psycopg.errors.RaiseException, match="SELECT, INSERT, UPDATE, DELETE and WITH"):
                db.scalar("SELECT imsnb.explain_generic('ANALYZE audit')")
            assert db.scalar("SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'audit'") == before
            assert postgres.visibility_finding(db).severity == Severity.OK
            assert session_state(db) == ("auto", "on", [])
        with server.admin(APP_DATABASE) as admin:
            assert admin.execute("SELECT count(*) FROM audit").fetchone()[0] == 0
        with session_as(server, "imsnb_statsonly") as other:  # no EXECUTE on it: still told what to grant
            assert "GRANT pg_read_all_data" in postgres.plan_access_gap(other)
    finally:
        with server.admin(APP_DATABASE) as admin:
            admin.execute("DROP SCHEMA imsnb CASCADE")
            admin.execute("REVOKE ALL ON orders, audit FROM imsnb_explainer")
            admin.execute("DROP ROLE imsnb_explainer")


def test_the_session_runs_statements_without_binding_percent_signs(reader):
    reader.execute("PREPARE imsnb_percent AS SELECT id FROM orders WHERE id % 2 = $1")
    try:
        assert reader.scalar("SELECT count(*) FROM pg_prepared_statements WHERE name = 'imsnb_percent'") == 1
    finally:
        reader.execute("DEALLOCATE imsnb_percent")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        reader.execute("CREATE TABLE imsnb_must_not_exist (id int)")


def test_planning_again_adds_no_entries_to_pg_stat_statements(server, reader):
    """pg_stat_statements keeps an entry per distinct utility text (track_utility is on by default) and evicts the
    application's statements past its `max`: a fresh PREPARE name per plan would add entries on every run."""
    frame = pd.DataFrame({"query": [LOOKUP, "SELECT id, price FROM items WHERE sku = $1", "SELECT $1::int + $2::int"]})
    postgres.statement_plans(reader, frame)
    with server.admin(APP_DATABASE) as admin:
        before = admin.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0]
    for _ in range(3):
        plans = postgres.statement_plans(reader, frame)
    assert (plans["skipped"] == "").all()
    with server.admin(APP_DATABASE) as admin:
        assert admin.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0] == before + 1  # this count


def test_a_table_locked_by_a_migration_is_a_reason_after_lock_timeout_not_a_hang(server, reader):
    with psycopg.connect(host=str(server.dir), port=server.port, user="postgres", dbname=APP_DATABASE) as migration:
        migration.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # held until the transaction ends
        with pytest.raises(postgres.PlanUnavailable, match="not granted within lock_timeout"):
            postgres.generic_plan(reader, LOOKUP)
        migration.rollback()
    assert session_state(reader) == ("auto", "on", [])
    assert postgres.plan_shape(postgres.generic_plan(reader, LOOKUP)).nodes == ["Seq Scan on orders"]
