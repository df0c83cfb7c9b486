"""db_performance names the cause and proves the fix, on the db-degradation sandbox (a past with the item lookup on
its index, recorded with its plan; a migration that dropped the index; a new screen's query no index serves; decoys):
the plan change with the index that disappeared, the missing indexes verified by the planner (HypoPG), nothing for
the decoys, nothing built without both keys; with both, the index is built and a re-run shows the lookup on it."""

from __future__ import annotations

import pytest
from helpers import finding, read_summary, window_from_present

from imsnb.findings import Finding
from imsnb.runs.execute import run_notebook
from imsnb.triage import suggested_notebooks

KEYS = {"apply_actions": "True", "approver": "jane.oncall"}  # the blocker goes first: a build waits for it
LOOKUP = "FROM items WHERE sku"
REPORT = "email LIKE"


def advised(summary: dict) -> dict[str, dict]:
    """Advice rows by table.columns."""
    rows = finding(summary, "postgres.index_advice").get("evidence") or []
    return {f"{r['table'].split('.')[-1]}({', '.join(columns(r))})": r for r in rows}


def columns(row: dict) -> list[str]:
    value = row["columns"]
    return [c.strip() for c in value.split(",")] if isinstance(value, str) else list(value)


@pytest.fixture(scope="module")
def degraded_run(degraded, tmp_path_factory):
    """db_performance on the session's db-degradation sandbox, without keys (nothing changes), over the incident: a
    window from when its present began (one reaching back over the sandbox's start would hold its seeded past)."""
    outputs = tmp_path_factory.mktemp("why")
    result = run_notebook("db_performance", window_from_present(degraded), incident_id="INC-WHY", outputs=outputs)
    return result, read_summary(result.folder)


def test_the_regression_is_explained_as_a_plan_change_with_the_index_that_disappeared(degraded_run):
    _, summary = degraded_run
    change = finding(summary, "postgres.plan_change")
    assert change["severity"] == "ERROR", change
    assert "Index Scan using items_sku on items" in change["message"]
    assert "Seq Scan on items" in change["message"]
    assert "items_sku no longer exists" in change["message"]
    assert change["period"]["basis"] in ("history", "window")
    (row,) = [r for r in change["evidence"] if LOOKUP in r["query"]]
    assert row["lost_indexes"] == "items_sku" and row["cost_after"] > 10 * row["cost_before"]
    assert suggested_notebooks([Finding.from_dict(change)]) == ["db_performance"]


def test_missing_indexes_are_advised_with_the_planners_cost_and_decoys_get_nothing(degraded_run):
    _, summary = degraded_run
    advice = advised(summary)
    assert sorted(advice)[0] == "items(sku)" and len(advice) == 2, sorted(advice)
    (orders,) = [key for key in advice if key.startswith("orders(")]
    assert orders.startswith("orders(email"), "the new screen's lookup by email"
    for row in advice.values():
        assert row["verified"] is True
        assert row["cost_after"] <= row["cost_before"] / 2
        assert row["statement"].startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS imsnb_")
    message = finding(summary, "postgres.index_advice")["message"]
    assert "verified by the planner (HypoPG)" in message
    # decoys: a count by status (every order is 'new'), the lookups by id and customer_id (indexed), and the
    # sleeping report's LIKE, which no index would serve
    for decoy in ("status", "(id", "customer_id"):
        assert not any(decoy in key for key in advice), decoy
    slow = finding(summary, "postgres.slow_queries")["evidence"]
    (report,) = [r["queryid"] for r in slow if REPORT in r["query"]]
    assert not any(report in str(row["queryids"]) for row in advice.values())


def test_nothing_is_built_without_both_keys(degraded_run, degraded):
    _, summary = degraded_run
    builds = [a for a in summary["actions"] if a["action"] == "create_index"]
    assert sorted(a["target"] for a in builds) == ["public.items", "public.orders"]
    assert all(a["status"] == "planned" and "keys are missing" in a["detail"] for a in builds)
    with degraded.postgres.admin("ims") as admin:
        names = [r[0] for r in admin.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'imsnb_%'")]
    assert names == []


def test_with_both_keys_the_index_is_built_and_the_lookup_uses_it_again(private_sandbox, use_env, tmp_path):
    sandbox = private_sandbox("db-degradation")
    use_env(sandbox)
    parameters = {**KEYS, **window_from_present(sandbox)}
    first = run_notebook("db_performance", parameters, incident_id="INC-FIX", outputs=tmp_path, allow_actions=True)
    summary = read_summary(first.folder)
    built = {a["target"]: a for a in summary["actions"] if a["action"] == "create_index"}
    assert built["public.items"]["status"] == "applied", built
    assert built["public.items"]["approver"] == "jane.oncall"
    with sandbox.postgres.connect("check", autocommit=True) as conn:
        plan = " ".join(r[0] for r in conn.execute("EXPLAIN SELECT id, price FROM items WHERE sku = 'SKU-1'"))
    assert "imsnb_items_sku" in plan
    window = window_from_present(sandbox)
    again = read_summary(run_notebook("db_performance", window, incident_id="INC-FIX", outputs=tmp_path).folder)
    change = finding(again, "postgres.plan_change")
    (lookup,) = [r for r in change["evidence"] if LOOKUP in r["query"]]
    assert lookup["after"].startswith("Index Scan using imsnb_items_sku on items"), lookup
    assert "items(sku)" not in advised(again)
