"""Remediation with two keys, against real PostgreSQL and Redis and the moto server: without both keys nothing
changes; with both, exactly the planned targets change, after a re-check; every case lands in summary.json."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from helpers import read_summary, wait_until

from imsnb import actions, postgres, started_with
from imsnb.cli import main
from imsnb.runs.execute import run_notebook
from imsnb.sandbox import Sandbox
from imsnb.sandbox.scenarios import BLOCKED_UPDATE, BLOCKER_UPDATE

KEYS = {"apply_actions": "True", "approver": "jane.oncall"}
ALIVE = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"


@pytest.fixture(scope="module")
def box():
    """A private sandbox for this module: these tests terminate sessions, flush Redis and resize RDS."""
    with Sandbox("healthy") as sandbox:
        yield sandbox


@pytest.fixture
def env(box, use_env, monkeypatch):
    use_env(box)
    monkeypatch.delenv(actions.ALLOW_ENV, raising=False)
    return box


class LockPileUp:
    """A session idle in a transaction holding a row lock, and another waiting on it in a thread."""

    def __init__(self, sandbox: Sandbox):
        self.blocker = sandbox.postgres.connect("ims-backend")
        self.blocker.execute(BLOCKER_UPDATE)
        self.pid = self.blocker.info.backend_pid
        self.waiter = sandbox.postgres.connect("ims-worker", autocommit=True)
        self.outcome: list[str] = []
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()
        with sandbox.postgres.admin("ims") as admin:
            for _ in range(200):
                if admin.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
                    break
                time.sleep(0.05)
        self.sandbox = sandbox

    def _wait(self) -> None:
        try:
            self.waiter.execute(BLOCKED_UPDATE)
            self.outcome.append("completed")
        except psycopg.Error as exc:
            self.outcome.append(f"error: {exc}")

    def blocker_alive(self) -> bool:
        with self.sandbox.postgres.admin("ims") as admin:
            return admin.execute(ALIVE, (self.pid,)).fetchone()[0] == 1

    def close(self) -> None:
        for conn in (self.blocker, self.waiter):
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.thread.join(timeout=5)


@pytest.fixture
def pile_up(env):
    lock = LockPileUp(env)
    yield lock
    lock.close()


def moto_state(sandbox: Sandbox) -> tuple:
    ecs = sandbox.aws.client("ecs").describe_services(cluster="ims-production", services=["ims-backend"])
    service = ecs["services"][0]
    rds = sandbox.aws.client("rds").describe_db_instances()["DBInstances"]
    return (
        service["desiredCount"],
        service["taskDefinition"].rsplit("/", 1)[-1],
        sorted((d["DBInstanceIdentifier"], d["DBInstanceClass"]) for d in rds),
    )


def test_without_keys_nothing_changes(pile_up, env, tmp_path):
    keys_before = env.redis.client().dbsize()
    aws_before = moto_state(env)
    result = run_notebook("db_performance", {}, incident_id="INC-A0", outputs=tmp_path)
    summary = read_summary(result.folder)
    terminate = [a for a in summary["actions"] if a["action"] == "terminate_backend"]
    assert [a["target"].split()[1] for a in terminate] == [str(pile_up.pid)]
    assert terminate[0]["status"] == "planned" and "both keys are missing" in terminate[0]["detail"]
    assert terminate[0]["approver"] is None and terminate[0]["planned_at"].endswith("Z")
    assert pile_up.blocker_alive() and pile_up.outcome == []
    for notebook in ("redis_cache", "scaling", "high_error_rate"):
        summary = read_summary(run_notebook(notebook, {}, incident_id="INC-A0", outputs=tmp_path).folder)
        assert summary["actions"] and {a["status"] for a in summary["actions"]} == {"planned"}
    assert env.redis.client().dbsize() == keys_before > 0
    assert moto_state(env) == aws_before


@pytest.mark.parametrize(
    ("parameters", "allow", "missing"),
    [(KEYS, False, "the run key is missing"), ({"approver": "jane.oncall"}, True, "the notebook key is missing")],
    ids=["notebook-key-only", "run-key-only"],
)
def test_one_key_changes_nothing_and_says_which_is_missing(env, tmp_path, parameters, allow, missing):
    keys_before = env.redis.client().dbsize()
    result = run_notebook("redis_cache", parameters, incident_id="INC-A1", outputs=tmp_path, allow_actions=allow)
    (flush,) = read_summary(result.folder)["actions"]
    assert flush["action"] == "redis_flushdb" and flush["status"] == "planned"
    assert missing in flush["detail"]
    assert missing in (result.folder / "report.html").read_text()
    assert env.redis.client().dbsize() == keys_before > 0


def test_an_exported_variable_is_not_the_run_key_of_a_headless_run(env, tmp_path, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)  # as an interactive kernel started with the run key
    result = run_notebook("redis_cache", KEYS, incident_id="INC-A2", outputs=tmp_path)
    (flush,) = read_summary(result.folder)["actions"]
    assert flush["status"] == "planned" and "the run key is missing" in flush["detail"]


def test_both_keys_terminate_the_blocker_and_the_blocked_query_completes(pile_up, env, tmp_path):
    result = run_notebook("db_performance", KEYS, incident_id="INC-A3", outputs=tmp_path, allow_actions=True)
    summary = read_summary(result.folder)
    (terminate,) = [a for a in summary["actions"] if a["action"] == "terminate_backend"]
    assert terminate["status"] == "applied", terminate
    assert terminate["approver"] == "jane.oncall" and terminate["finished_at"] >= terminate["planned_at"]
    pile_up.thread.join(timeout=10)
    assert pile_up.outcome == ["completed"]
    assert not pile_up.blocker_alive()
    with env.postgres.connect("check", autocommit=True) as conn:
        assert conn.execute("SELECT status FROM orders WHERE id = 1").fetchone()[0] == "shipped"


def test_both_keys_flush_the_named_redis_db(env, tmp_path):
    client = env.redis.client()
    client.set("imsnb-test:key", "x")
    result = run_notebook("redis_cache", KEYS, incident_id="INC-A4", outputs=tmp_path, allow_actions=True)
    (flush,) = read_summary(result.folder)["actions"]
    assert flush["status"] == "applied" and flush["approver"] == "jane.oncall"
    for _ in range(100):  # ASYNC: the keys go in the background
        if client.dbsize() == 0:
            break
        time.sleep(0.05)
    assert client.dbsize() == 0


def test_both_keys_scale_ecs_and_rds_and_roll_back_in_moto(env, tmp_path):
    desired, task_definition, instances = moto_state(env)
    parameters = {**KEYS, "target_count": str(desired + 1), "rds_class": "db.t3.small"}
    result = run_notebook("scaling", parameters, incident_id="INC-A5", outputs=tmp_path, allow_actions=True)
    done = {a["action"]: a for a in read_summary(result.folder)["actions"]}
    assert done["ecs_desired_count"]["status"] == "applied" and done["rds_resize"]["status"] == "applied"
    result = run_notebook("high_error_rate", KEYS, incident_id="INC-A5", outputs=tmp_path, allow_actions=True)
    (rollback,) = read_summary(result.folder)["actions"]
    assert rollback["status"] == "applied", rollback
    after = moto_state(env)
    assert after[0] == desired + 1
    assert task_definition == "ims-backend:3" and after[1] == "ims-backend:2"
    assert ("ims-postgres-db", "db.t3.small") in after[2] and ("ims-postgres-db", "db.t3.micro") in instances


def test_desired_count_beyond_twice_current_is_refused_unless_widened(env, tmp_path):
    desired = moto_state(env)[0]
    parameters = {**KEYS, "target_count": str(2 * desired + 1)}
    result = run_notebook("scaling", parameters, incident_id="INC-A6", outputs=tmp_path, allow_actions=True)
    (scale,) = [a for a in read_summary(result.folder)["actions"] if a["action"] == "ecs_desired_count"]
    assert scale["status"] == "skipped" and "widen with max_count" in scale["detail"]
    assert moto_state(env)[0] == desired


def test_a_reused_pid_is_not_touched(env, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)  # as an interactive kernel started with the run key
    gone = env.postgres.connect("ims-backend")
    gone.execute("SELECT 1")  # idle in transaction
    with postgres.Database("test-actions") as db:
        (row,) = actions.terminate_backends_plan(db, idle_in_transaction_s=0).to_dict(orient="records")
        gone.close()
        successor = env.postgres.connect("ims-backend")
        successor.execute("SELECT 1")
        # The pid now belongs to another session: the plan's pid, with the old session's backend_start.
        row["pid"] = successor.info.backend_pid
        outcome = actions.execute([actions.backend_action(db, row)], apply_actions=True, approver="jane")
        assert outcome["status"].tolist() == ["skipped"]
        assert "different session" in outcome["detail"].iloc[0]
    with env.postgres.admin("ims") as admin:
        assert admin.execute(ALIVE, (successor.info.backend_pid,)).fetchone()[0] == 1
    successor.close()


def test_the_cap_holds_and_imsnb_own_session_is_never_touched(env, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)  # as an interactive kernel started with the run key
    stuck = [env.postgres.connect("ims-backend") for _ in range(7)]
    for conn in stuck:
        conn.execute("SELECT 1")  # each idle in transaction
    try:
        with postgres.Database("test-actions") as db:
            plans = actions.backend_actions(db, idle_in_transaction_s=0, max_backends=5)
            own = {**actions.terminate_backends_plan(db, idle_in_transaction_s=0).iloc[0].to_dict()}
            own.update(pid=db.scalar("SELECT pg_backend_pid()"), action="pg_terminate_backend")
            own["backend_start"] = db.scalar("SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            plans.append(actions.backend_action(db, own))
            outcome = actions.execute(plans, apply_actions=True, approver="jane")
            statuses = outcome["status"].tolist()
            assert statuses.count("applied") == 5 and statuses.count("skipped") == 3
            assert outcome["detail"].str.contains("over the cap of 5").sum() == 2
            assert "imsnb's own session" in outcome["detail"].iloc[-1]
        with env.postgres.admin("ims") as admin:
            alive = [admin.execute(ALIVE, (c.info.backend_pid,)).fetchone()[0] for c in stuck]
        assert sum(alive) == 2
    finally:
        for conn in stuck:
            conn.close()


def test_point_in_time_recovery_restores_verifies_and_fills_the_checklist(env, tmp_path):
    conninfo = f"host=127.0.0.1 port={env.postgres.port} dbname=ims user=ims"
    with env.postgres.connect("check", autocommit=True) as conn:
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    parameters = {
        "verify_conninfo": conninfo,
        "verify_tables": f"orders={orders},public.orders={orders + 1}",
        "new_instance_id": "ims-postgres-plan-only",
    }
    result = run_notebook("point_in_time_recovery", parameters, incident_id="INC-P", outputs=tmp_path)
    (restore,) = read_summary(result.folder)["actions"]
    assert restore["status"] == "planned" and restore["action"] == "rds_restore"
    assert "ims-postgres-plan-only" not in str(moto_state(env)[2])

    parameters = {**parameters, **KEYS, "new_instance_id": "ims-postgres-recovered"}
    result = run_notebook(
        "point_in_time_recovery", parameters, incident_id="INC-P", outputs=tmp_path, allow_actions=True
    )
    summary = read_summary(result.folder)
    (restore,) = summary["actions"]
    assert restore["status"] == "applied" and "available" in restore["detail"]
    assert "ims-postgres-recovered" in [instance for instance, _ in moto_state(env)[2]]
    counts = {f["message"].split(":")[0]: f for f in summary["findings"] if f["check"] == "postgres.row_count"}
    assert counts["orders"]["severity"] == "OK" and counts["orders"]["value"] == orders
    assert counts["public.orders"]["severity"] == "ERROR"  # the expectation was one row more
    html = (result.folder / "report.html").read_text()
    assert "[x]" in html and "Recovery instance ims-postgres-recovered restored and available" in html
    notebook = (result.folder / "notebook.ipynb").read_text()
    assert "0 of 2 table(s)" not in notebook and "1 of 2 table(s) as expected" in notebook


def test_apply_actions_without_an_approver_is_bad_input(env, tmp_path, capsys):
    code = main(["run", "redis_cache", "-p", "apply_actions", "True", "--allow-actions", "--outputs", str(tmp_path)])
    assert code == 2 and "no approver is named" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_remediation_policy_is_separate_from_the_read_only_one(capsys):
    from imsnb import aws

    assert main(["iam-policy", "--actions"]) == 0
    import json

    read, write = json.loads(capsys.readouterr().out)["Statement"]
    assert write["Action"] == sorted(aws.WRITE_ACTIONS) and not set(write["Action"]) & set(read["Action"])
    assert len(aws.iam_policy()["Statement"]) == 1


def test_cancel_is_the_gentler_step_for_a_long_statement(env, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)  # as an interactive kernel started with the run key
    slow = env.postgres.connect("ims-reports", autocommit=True)
    errors: list[str] = []

    def run() -> None:
        try:
            slow.execute("SELECT pg_sleep(30)")
        except psycopg.errors.QueryCanceled as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        with postgres.Database("test-actions") as db:

            def slow_plans() -> list:  # the statement's own, once it has run past long_running_s
                plans = actions.backend_actions(db, long_running_s=1, idle_in_transaction_s=3600)
                return [p for p in plans if f"pid {slow.info.backend_pid} " in p.target]

            (plan,) = wait_until(slow_plans, interval=0.2, what="the statement to run past 1 s")
            assert plan.action == "cancel_backend"
            outcome = actions.execute([plan], apply_actions=True, approver="jane")
        assert outcome["status"].tolist() == ["applied"]
        thread.join(timeout=10)
        assert errors and "canceling statement" in errors[0]
        assert slow.execute("SELECT 1").fetchone() == (1,)  # the session stays
    finally:
        slow.close()


def test_failover_moves_the_writer_to_a_replica(env, monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)  # as an interactive kernel started with the run key
    rds = env.aws.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="ims-postgres-cluster",
        Engine="aurora-postgresql",
        MasterUsername="ims",
        MasterUserPassword="not-a-real-secret-1",
    )
    for name in ("ims-aurora-1", "ims-aurora-2"):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            DBClusterIdentifier="ims-postgres-cluster",
            Engine="aurora-postgresql",
            DBInstanceClass="db.r6g.large",
        )
    from imsnb.aws import Aws

    plan = actions.rds_failover_action("ims-postgres-cluster", aws=Aws("test"))
    assert "ims-aurora-2" in plan.expected_effect
    outcome = actions.execute([plan], apply_actions=True, approver="jane")
    assert outcome["status"].tolist() == ["applied"], outcome["detail"].tolist()
    members = rds.describe_db_clusters(DBClusterIdentifier="ims-postgres-cluster")["DBClusters"][0]["DBClusterMembers"]
    assert [m["DBInstanceIdentifier"] for m in members if m["IsClusterWriter"]] == ["ims-aurora-2"]
    again = actions.execute([plan], apply_actions=True, approver="jane")  # the plan's writer is no longer the writer
    assert again["status"].tolist() == ["skipped"] and "the writer changed" in again["detail"].iloc[0]


def test_the_archive_policy_allows_put_object_under_the_prefix_only(capsys):
    import json

    assert main(["iam-policy", "--archive", "s3://ims-postmortems/runs"]) == 0
    statement = json.loads(capsys.readouterr().out)["Statement"][-1]
    assert statement["Action"] == ["s3:GetObject", "s3:PutObject"]
    assert statement["Resource"] == "arn:aws:s3:::ims-postmortems/runs/*"


def test_next_resizes_one_size_up_the_ladder_and_the_top_is_refused_in_one_line(env, tmp_path):
    from imsnb.aws import Aws

    rds = env.aws.client("rds")
    for name, size in (("ims-ladder-mid", "db.t3.medium"), ("ims-ladder-top", "db.t3.2xlarge")):
        rds.create_db_instance(
            DBInstanceIdentifier=name,
            Engine="postgres",
            DBInstanceClass=size,
            AllocatedStorage=20,
            MasterUsername="ims",
            MasterUserPassword="not-a-real-secret-1",
        )
    result = run_notebook(
        "db_performance",
        {"rds_instance": "ims-ladder-mid", "rds_resize_to": "next", "max_backends": "0"},
        incident_id="INC-LADDER",
        outputs=tmp_path,
    )
    (resize,) = [a for a in read_summary(result.folder)["actions"] if a["action"] == "rds_resize"]
    assert resize["status"] == "planned" and resize["expected_effect"].startswith("db.t3.medium → db.t3.large;")
    with pytest.raises(ValueError, match="db.t3.2xlarge is the top of the runbook's ladder"):
        actions.rds_resize_action("ims-ladder-top", "next", aws=Aws("test"))
    assert actions.resize_target_class("db.r6g.large", "db.r6g.xlarge") == "db.r6g.xlarge"
    with pytest.raises(ValueError, match="db.r6g.large is not on the runbook's ladder"):
        actions.resize_target_class("db.r6g.large", "next")


def test_target_modules_import_the_gate_and_the_gate_imports_no_target():
    """One-way arrows inside imsnb.actions, and no private name of another module (postgres._db, cache._cache ...)."""
    import ast
    from pathlib import Path

    folder = Path(actions.__file__).parent
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        reaches = {
            f"{n.value.id}.{n.attr}"
            for n in ast.walk(tree)
            if isinstance(n, ast.Attribute)
            and isinstance(n.value, ast.Name)
            and n.attr.startswith("_")
            and n.value.id != "started_with"
            and not n.attr.startswith("__")
        }
        assert not reaches, f"{path.name} reaches into private names: {reaches}"
        assert not {n for n in names if n.startswith("_")}, path.name
        if path.name == "gate.py":
            assert not {m for m in imported if m.startswith("imsnb.actions")}, "the gate imports a target"
        elif path.name != "__init__.py":
            assert "imsnb.actions.gate" in imported, f"{path.name} does not build on the gate"
