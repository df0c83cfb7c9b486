"""The monthly backup integrity test (issue 17.3): `backup_verification -p verify_restore True` restores the newest
snapshot to a temporary instance in moto, verifies row counts on the sandbox's real PostgreSQL, records the result
and deletes the temporary instance, and only it."""

from __future__ import annotations

import time

import pytest
from helpers import finding, read_summary

from imsnb import actions, started_with
from imsnb.runs.execute import run_notebook
from imsnb.sandbox import Sandbox

pytestmark = pytest.mark.servers  # a healthy sandbox

KEYS = {"apply_actions": "True", "approver": "jane.oncall"}


@pytest.fixture(scope="module")
def box():
    with Sandbox("healthy") as sandbox:
        yield sandbox


@pytest.fixture
def env(box, use_env, monkeypatch):
    use_env(box)
    monkeypatch.delenv(actions.ALLOW_ENV, raising=False)
    return box


def instances(sandbox: Sandbox) -> dict[str, dict]:
    return {d["DBInstanceIdentifier"]: d for d in sandbox.aws.client("rds").describe_db_instances()["DBInstances"]}


def parameters(sandbox: Sandbox, temp: str, orders: int) -> dict[str, str]:
    return {
        "verify_restore": "True",
        "temp_instance_id": temp,
        "verify_conninfo": f"host=127.0.0.1 port={sandbox.postgres.port} dbname=ims user=ims",
        "verify_tables": f"orders={orders}",
    }


def orders(sandbox: Sandbox) -> int:
    with sandbox.postgres.connect("check", autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def test_without_keys_the_restore_test_is_only_planned(env, tmp_path):
    result = run_notebook(
        "backup_verification", parameters(env, "ims-verify-plan", orders(env)), incident_id="INC-B", outputs=tmp_path
    )
    summary = read_summary(result.folder)
    assert [(a["action"], a["status"]) for a in summary["actions"]] == [
        ("rds_restore_test", "planned"),
        ("rds_delete_restore_test", "planned"),
    ]
    assert finding(summary, "aws.rds.restore_test")["severity"] == "INFO"
    assert "ims-verify-plan" not in instances(env)


def test_both_keys_restore_verify_record_and_delete(env, tmp_path):
    before = set(instances(env))
    params = {**parameters(env, "ims-verify-monthly", orders(env)), **KEYS}
    result = run_notebook("backup_verification", params, incident_id="INC-B", outputs=tmp_path, allow_actions=True)
    summary = read_summary(result.folder)
    restore, delete = summary["actions"]
    assert restore["status"] == "applied" and "available" in restore["detail"], restore
    assert delete["status"] == "applied", delete
    assert finding(summary, "postgres.row_count")["severity"] == "OK"
    test = finding(summary, "aws.rds.restore_test")
    assert test["severity"] == "OK" and "1 table(s) verified" in test["message"] and "deleted" in test["message"]
    assert set(instances(env)) == before  # the temporary instance is gone, the source is untouched
    assert "ims-postgres-db" in before


def test_a_wrong_count_is_recorded_as_an_error_and_the_instance_still_deleted(env, tmp_path):
    params = {**parameters(env, "ims-verify-wrong", orders(env) + 5), **KEYS}
    result = run_notebook("backup_verification", params, incident_id="INC-B", outputs=tmp_path, allow_actions=True)
    summary = read_summary(result.folder)
    assert finding(summary, "aws.rds.restore_test")["severity"] == "ERROR"
    assert summary["actions"][1]["status"] == "applied" and "ims-verify-wrong" not in instances(env)


def test_the_delete_touches_only_the_instance_this_run_created(env, tmp_path):
    rds = env.aws.client("rds")
    snapshot = rds.describe_db_snapshots(DBInstanceIdentifier="ims-postgres-db")["DBSnapshots"][0]
    rds.restore_db_instance_from_db_snapshot(  # someone else's instance, by the name this run will use
        DBInstanceIdentifier="ims-verify-taken", DBSnapshotIdentifier=snapshot["DBSnapshotIdentifier"]
    )
    try:
        params = {**parameters(env, "ims-verify-taken", orders(env)), **KEYS}
        result = run_notebook("backup_verification", params, incident_id="INC-B", outputs=tmp_path, allow_actions=True)
        summary = read_summary(result.folder)
        restore, delete = summary["actions"]
        assert restore["status"] == "skipped" and "already exists" in restore["detail"]
        assert delete["status"] == "skipped" and "created no instance" in delete["detail"]
        assert "ims-verify-taken" in instances(env)
        assert finding(summary, "aws.rds.restore_test")["severity"] == "ERROR"

        # even told it created that instance, the delete sees another resource id (and no tag of this run)
        created = {"instance": "ims-verify-taken", "resource_id": "db-NOT-OURS", "token": "abc"}
        plan = actions.rds_delete_restore_test_action(
            "ims-verify-taken", created=created, source_instance="ims-postgres-db"
        )
        assert "another instance" in plan.recheck()
        source = actions.rds_delete_restore_test_action(
            "ims-postgres-db", created={"instance": "ims-postgres-db"}, source_instance="ims-postgres-db"
        )
        assert "source instance" in source.recheck()
    finally:
        rds.delete_db_instance(DBInstanceIdentifier="ims-verify-taken", SkipFinalSnapshot=True)


def test_the_wait_stays_under_the_cell_timeout(monkeypatch):
    """The runner's cell timeout (read at kernel start, counted from the cell's start) bounds every AWS wait."""
    assert actions.wait_budget_s(3600) == pytest.approx(3600, abs=1), "no runner, no cell timeout: as asked"
    monkeypatch.setattr(started_with, "_cell_started", time.monotonic())
    monkeypatch.setattr(started_with, "_CELL_TIMEOUT_S", 600.0)
    assert actions.wait_budget_s(3600) == pytest.approx(570, abs=2) and actions.wait_budget_s(30) == pytest.approx(30)
    monkeypatch.setattr(started_with, "_CELL_TIMEOUT_S", 1800.0)
    assert actions.wait_budget_s(3600) == pytest.approx(1770, abs=2)
