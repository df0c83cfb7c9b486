"""Guarantee 11: an action acts only on what was planned, within hard limits. The ECS rollback stays within the
task-definition family the service runs (not a family named like the service); the Redis flush re-checks that the
server is the same one (its run_id), so a restarted or failed-over server is not flushed; max_backends and
max_count have hard upper bounds."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from helpers import read_summary

from imsnb import actions, started_with
from imsnb.cache import Cache
from imsnb.cli import main
from imsnb.runs.execute import run_notebook
from imsnb.sandbox.redis import RedisServer

KEYS = {"apply_actions": "True", "approver": "jane.oncall"}
CLUSTER = "ims-production"


def test_the_rollback_stays_within_the_family_the_service_runs(own_sandbox, on, tmp_path):
    """The service ims-orders runs family ims-orders-app; another family is named like the service."""
    on(own_sandbox)
    ecs = own_sandbox.aws.client("ecs")
    for family, releases in (("ims-orders-app", 2), ("ims-orders", 4), ("ims-orders-app-canary", 3)):
        for release in range(1, releases + 1):
            ecs.register_task_definition(
                family=family,
                containerDefinitions=[{"name": "app", "image": f"ims/{family}:{release}", "memory": 512}],
            )
    ecs.create_service(cluster=CLUSTER, serviceName="ims-orders", taskDefinition="ims-orders-app:2", desiredCount=1)
    parameters = {**KEYS, "ecs_service": "ims-orders", "window": "30m"}
    result = run_notebook("high_error_rate", parameters, incident_id="INC-ECS", outputs=tmp_path, allow_actions=True)
    (rollback,) = read_summary(result.folder)["actions"]
    assert rollback["status"] == "applied", rollback
    assert "ims-orders-app:1" in rollback["command"] and "ims-orders:" not in rollback["command"].split("--task-")[1]
    service = ecs.describe_services(cluster=CLUSTER, services=["ims-orders"])["services"][0]
    assert service["taskDefinition"].rsplit("/", 1)[-1] == "ims-orders-app:1"


def _restart_on_the_same_port(server: RedisServer) -> subprocess.Popen:
    """Stop the server and start another redis-server on its port and password: same address, new run_id."""
    port, password = server.port, server.password
    server.stop()
    server_dir = Path(tempfile.mkdtemp(prefix="imsnb-redis-restart-"))
    config = server_dir / "redis.conf"
    config.write_text(f"requirepass {password}\n")
    config.chmod(0o600)
    process = subprocess.Popen(
        [shutil.which("redis-server"), str(config), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=server_dir,
    )
    process.dir = server_dir  # removed by the test with the process
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    for _ in range(500):
        try:
            client.ping()
            return process
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("redis-server did not restart")


def test_a_flush_planned_against_one_server_is_not_sent_to_a_restarted_one(monkeypatch):
    monkeypatch.setattr(started_with, "_RUN_KEY", True)  # as a kernel started with --allow-actions
    server = RedisServer().start()
    restarted = None
    try:
        settings = {"host": "127.0.0.1", "port": server.port, "password": server.password, "db": 0}
        cache = Cache("test-flush", settings=settings)
        server.client().set("imsnb-test:planned", "x")
        plan = actions.flush_action(cache, db=0)
        restarted = _restart_on_the_same_port(server)
        fresh = redis.Redis(host="127.0.0.1", port=server.port, password=server.password)
        fresh.set("imsnb-test:after-restart", "y")
        outcome = actions.execute([plan], apply_actions=True, approver="jane")
        assert outcome["status"].tolist() == ["skipped"], outcome["detail"].tolist()
        assert "run_id" in outcome["detail"].iloc[0] and "plan again" in outcome["detail"].iloc[0]
        assert fresh.get("imsnb-test:after-restart") == b"y"
        again = actions.execute([actions.flush_action(cache, db=0)], apply_actions=True, approver="jane")
        assert again["status"].tolist() == ["applied"], again["detail"].tolist()  # planned against this server
    finally:
        if restarted is not None:
            restarted.kill()
            restarted.wait()
            shutil.rmtree(restarted.dir, ignore_errors=True)
        server.stop()


@pytest.mark.parametrize(
    ("notebook", "name", "value", "limit"),
    [
        ("db_performance", "max_backends", "1000", str(actions.MAX_BACKENDS_LIMIT)),
        ("db_performance", "max_backends", "-1", str(actions.MAX_BACKENDS_LIMIT)),
        ("scaling", "max_count", "100000", str(actions.MAX_COUNT_LIMIT)),
    ],
)
def test_blast_radius_parameters_have_hard_limits(tmp_path, capsys, notebook, name, value, limit):
    outputs = tmp_path / "outputs"
    assert main(["run", notebook, "-p", name, value, "--outputs", str(outputs)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and name in err and limit in err, err
    assert not outputs.exists()


def test_the_library_caps_the_desired_count_whatever_max_count_says(own_sandbox, on):
    on(own_sandbox)
    from imsnb.aws import Aws

    plan = actions.ecs_desired_count_action(CLUSTER, "ims-backend", 5000, max_count=10_000, aws=Aws("test"))
    assert not plan.within_cap and f"hard limit is {actions.MAX_COUNT_LIMIT}" in plan.cap_note
    assert actions.desired_count_bounds(80) == (1, actions.MAX_COUNT_LIMIT)
    with pytest.raises(Exception, match=f"between 0 and {actions.MAX_BACKENDS_LIMIT}"):
        actions.backend_actions(None, max_backends=actions.MAX_BACKENDS_LIMIT + 1)
