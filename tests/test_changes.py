"""What changed before the errors (`imsnb.aws.changes`) on a moto server reached over HTTP, seeded here with a
deployment the errors followed by 90 s: the timeline, the change named, the chart, and the rollback aimed at exactly
what that deployment replaced.

moto 5.2.5 over HTTP, as checked for this: ECS deployments carry `createdAt` (the sandbox's moto clock backdates them),
but `update_service` with a new task definition adds no deployment and task definitions have no `registeredAt`; RDS
DescribeEvents returns only creation, backup and snapshot events (no reboot, failover or parameter change) and ignores
the time range; ElastiCache DescribeEvents answers HTTP 500 (not implemented). So the seed is one backdated
deployment, an RDS instance created 30 days ago (outside the window), and the ElastiCache source is expected to be
reported as not read.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from helpers import finding, read_summary

from imsnb.aws import Aws, changes, logs
from imsnb.findings import Severity
from imsnb.runs.execute import run_notebook
from imsnb.sandbox.aws import CACHE_CLUSTER, ECS_CLUSTER, ECS_SERVICE, LOG_GROUP, RDS_INSTANCE, AwsServer
from imsnb.window import Window

pytestmark = pytest.mark.servers  # a moto server

FAMILY = "orders-task"
ONSET_BEFORE_NOW = timedelta(minutes=10)
DEPLOYED_BEFORE_ONSET = timedelta(seconds=90)
ERROR_EVERY = 20  # one line in 20 is a 5xx error after the onset: 5%


@pytest.fixture(scope="module")
def seeded():
    server = AwsServer()
    server.launch()
    server.wait()
    now = datetime.now(UTC).replace(microsecond=0)
    onset = now - ONSET_BEFORE_NOW
    deployed = onset - DEPLOYED_BEFORE_ONSET
    try:
        _seed(server, now, onset, deployed)
        yield server, now, onset, deployed
    finally:
        server.stop()


def _seed(server: AwsServer, now: datetime, onset: datetime, deployed: datetime) -> None:
    client = server.client("logs")
    client.create_log_group(logGroupName=LOG_GROUP)
    client.create_log_stream(logGroupName=LOG_GROUP, logStreamName="orders/1")
    events = []
    for second in range(40 * 60, 4, -1):  # a line a second for the last 40 minutes
        at = now - timedelta(seconds=second)
        if at >= onset and (at - onset).seconds % ERROR_EVERY == 0:
            message = f"ERROR POST /api/v1/orders 500 upstream timeout order_id={second}"
        else:
            message = f"INFO GET /api/v1/orders 200 {20 + second % 30}ms"
        events.append({"timestamp": int(at.timestamp() * 1000), "message": message})
    client.put_log_events(logGroupName=LOG_GROUP, logStreamName="orders/1", logEvents=events)

    ecs = server.client("ecs")
    ecs.create_cluster(clusterName=ECS_CLUSTER)
    for revision in range(1, 8):
        ecs.register_task_definition(
            family=FAMILY, containerDefinitions=[{"name": "orders", "image": f"ims/orders:1.{revision}", "memory": 256}]
        )
    server.backdate(datetime.now(UTC) - deployed)  # the deployment of orders-task:7, 90 s before the errors
    ecs.create_service(cluster=ECS_CLUSTER, serviceName=ECS_SERVICE, taskDefinition=f"{FAMILY}:7", desiredCount=2)
    server.backdate(timedelta(days=30))  # the instance's own events (creation, backup) are a month old
    server.client("rds").create_db_instance(
        DBInstanceIdentifier=RDS_INSTANCE,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=20,
        MasterUsername="ims",
        MasterUserPassword="not-a-secret-1",
    )
    server.backdate(timedelta(0))
    ecs.update_service(cluster=ECS_CLUSTER, service=ECS_SERVICE, desiredCount=2)  # running = desired
    server.client("elasticache").create_cache_cluster(
        CacheClusterId=CACHE_CLUSTER, Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )


def _archive_an_earlier_action(incident_dir, at: datetime) -> None:
    """A run of this incident that applied an RDS resize 30 minutes ago (20 minutes before the errors: beyond the
    lead time, on the timeline all the same)."""
    folder = incident_dir / f"{at:%Y%m%dT%H%M%SZ}-db_performance"
    folder.mkdir(parents=True)
    stamp = at.isoformat(timespec="seconds").replace("+00:00", "Z")
    action = {
        "id": "a1b2c3d4e5f6",
        "action": "rds_resize",
        "target": RDS_INSTANCE,
        "status": "applied",
        "approver": "jane.oncall",
        "planned_at": stamp,
        "applying_at": stamp,
        "finished_at": stamp,
    }
    summary = {"notebook": "db_performance", "status": "ok", "started_at": stamp, "findings": [], "actions": [action]}
    (folder / "summary.json").write_text(json.dumps(summary))


def _aws(server: AwsServer, monkeypatch) -> Aws:
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return Aws("tests")


def test_the_change_the_errors_followed_is_named_with_its_delay(seeded, monkeypatch, tmp_path):
    server, now, onset, deployed = seeded
    aws = _aws(server, monkeypatch)
    window = Window(now - timedelta(minutes=45), now)
    _archive_an_earlier_action(tmp_path / "INC-CHG", now - timedelta(minutes=30))

    timeline = changes.collect(
        window,
        cluster=ECS_CLUSTER,
        service=ECS_SERVICE,
        rds_instance=RDS_INSTANCE,
        cache_cluster=CACHE_CLUSTER,
        incident_dir=tmp_path / "INC-CHG",
        aws=aws,
    )
    sources = timeline.sources.set_index("source")
    assert sources.loc[f"ECS {ECS_CLUSTER}/{ECS_SERVICE}", "changes"] == 1
    assert sources.loc[f"RDS {RDS_INSTANCE} events", "status"] == "read"  # a month-old creation: not in the window
    assert sources.loc[f"RDS {RDS_INSTANCE} events", "changes"] == 0
    assert sources.loc[f"ElastiCache {CACHE_CLUSTER} events", "status"] == "not read"  # moto: HTTP 500
    assert sources.loc["imsnb actions", "changes"] == 1
    assert timeline.table["kind"].tolist() == ["rds_resize", "deployment"]
    deployment = timeline.table.iloc[1]
    assert deployment["task_definition"] == f"{FAMILY}:7"
    assert abs((deployment["at"] - deployed).total_seconds()) < 2

    curve = changes.error_curve(logs.error_summary(LOG_GROUP, window, aws=aws))
    found = changes.correlate(curve, timeline)
    assert abs((found.onset - onset).total_seconds()) < 1
    assert found.before == 0.0 and found.peak == pytest.approx(1 / ERROR_EVERY, rel=0.25)
    assert found.change["what"] == f"deployment {FAMILY}:7 reached PRIMARY (rollout IN_PROGRESS)"
    assert 88 <= found.lag_s <= 92
    assert found.candidates["kind"].tolist() == ["deployment"]  # the resize 20 min before is beyond the lead time
    named = changes.correlation_finding(found)
    assert named.severity == Severity.WARNING
    # the session's live load adds its few log lines a minute: the peak reads 5.0-5.3%
    said = r"errors rose from 0\.00% to 5\.\d% of log lines 90 s after deployment orders-task:7 "
    assert re.match(said, named.message), named.message

    assert changes.predecessor(found.change, None, _revisions(aws)) == (
        f"{FAMILY}:6",
        "the family's revision before it",
    )

    tight = changes.correlate(curve, timeline, lead_time_s=60)
    assert tight.change is None
    unnamed = changes.correlation_finding(tight)
    assert unnamed.severity == Severity.INFO and "no change in the 1 min before" in unnamed.message

    quiet = changes.correlate(curve[curve["minute"] < onset - timedelta(minutes=1)], timeline)
    assert quiet.onset is None and changes.correlation_finding(quiet).severity == Severity.OK


def _revisions(aws: Aws):
    from imsnb.aws import ecs

    return ecs.task_definition_revisions(FAMILY, aws=aws)


def test_high_error_rate_names_the_deployment_and_rolls_back_exactly_what_it_replaced(seeded, monkeypatch, tmp_path):
    server, now, onset, deployed = seeded
    _aws(server, monkeypatch)
    _archive_an_earlier_action(tmp_path / "INC-CHG", now - timedelta(minutes=30))
    parameters = {"window": "45m", "apply_actions": "True", "approver": "jane.oncall"}
    result = run_notebook("high_error_rate", parameters, incident_id="INC-CHG", outputs=tmp_path, allow_actions=True)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok"
    named = finding(summary, "aws.change_correlation")
    assert named["severity"] == "WARNING"
    assert "90 s after deployment orders-task:7 reached PRIMARY" in named["message"], named
    (rollback,) = summary["actions"]
    assert rollback["action"] == "ecs_rollback" and rollback["status"] == "applied", rollback
    assert rollback["expected_effect"].startswith(f"a new deployment of {FAMILY}:6 replaces {FAMILY}:7")
    service = server.client("ecs").describe_services(cluster=ECS_CLUSTER, services=[ECS_SERVICE])["services"][0]
    assert service["taskDefinition"].rsplit("/", 1)[-1] == f"{FAMILY}:6"

    notebook = json.loads((result.folder / "notebook.ipynb").read_text())
    (cell,) = [c for c in notebook["cells"] if "changes.collect(" in "".join(c["source"])]
    outputs = [o.get("data", {}) for o in cell["outputs"]]
    assert any("image/png" in o for o in outputs), "the errors-per-minute chart with the changes marked"
    shown = "".join("".join(o.get("text/html", "")) for o in outputs)
    assert "imsnb action rds_resize on ims-postgres-db (applied, approved by jane.oncall)" in shown


def _errors(lines: dict[str, int], events: int = 300) -> logs.ErrorSummary:
    by_message = pd.DataFrame(
        [{"message": m, "count": n, "example": m} for m, n in lines.items()], columns=["message", "count", "example"]
    )
    over_time = pd.DataFrame(columns=["minute", "errors", "first"])
    return logs.ErrorSummary(LOG_GROUP, "ERROR", sum(lines.values()), events, False, over_time, by_message)


def test_no_rollback_when_most_error_lines_name_the_database():
    """The issue's leftover: db-degradation's errors are database timeouts, and no deployment came before them; an
    older release meets the same database, so the runbook's rollback of the latest release is not proposed."""
    from imsnb import actions

    timeouts = "ERROR GET /api/v1/orders 500 database error: canceling statement due to statement timeout"
    errors = _errors({timeouts: 4, "ERROR GET /api/v1/orders 503 database connection pool exhausted": 2})
    assert logs.errors_naming(errors) == (6, timeouts)
    plans, why = actions.error_rollback_plans(ECS_CLUSTER, ECS_SERVICE, None, None, errors=errors)
    assert plans == [] and why.startswith("no rollback planned: 6 of 6 error lines name the database"), why
    assert "db_performance" in why
    # a release's own errors (most lines name no database) keep the runbook's rollback: the case test_actions runs
    release = _errors({"ERROR GET /api/v1/items 500 KeyError: 'sku'": 5, timeouts: 1})
    assert logs.errors_naming(release)[0] == 1
