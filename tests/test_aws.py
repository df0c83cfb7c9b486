"""imsnb.aws against a moto server reached over HTTP (boto3 with AWS_ENDPOINT_URL), seeded by the sandbox."""

from __future__ import annotations

import ast
import json
import socket
import subprocess
import sys
import time

import pytest
from helpers import ROOT, checks_at_or_above, read_summary

from imsnb import aws as aws_pkg
from imsnb.aws import Aws, cloudwatch, ecs, elasticache, logs, rds, s3
from imsnb.errors import NotConfigured, Unreachable
from imsnb.findings import Findings, Severity
from imsnb.runs.execute import run_notebook
from imsnb.window import resolve_window

# Each scenario's seeded AWS problem and the notebook check that finds it: proved on the scenario's own sandbox by
# tests/test_scenario_stories.py (AWS_FOUND and BLIND), where triage and its follow-ups run on it anyway.
CASES = {
    "db-degradation": ("db_performance", "aws.rds.cpu"),
    "stale-backup": ("backup_verification", "aws.rds.snapshot_age"),
    "error-spike": ("high_error_rate", "aws.logs.error_rate"),
    "scaling": ("scaling", "aws.ecs.running_vs_desired"),
    "memory-leak": ("memory_leak", "aws.ecs.memory_trend"),
    "disk-pressure": ("disk_usage", "aws.rds.free_storage"),
}


@pytest.fixture
def counted(degraded, use_env):
    use_env(degraded)
    calls: list[str] = []
    return Aws("tests", on_call=calls.append), calls


@pytest.mark.parametrize("notebook", sorted({n for n, _ in CASES.values()} | {"performance_baseline"}))
def test_healthy_shows_no_aws_problem(notebook, healthy_sandbox, use_env, tmp_path):
    use_env(healthy_sandbox)
    result = run_notebook(notebook, {}, incident_id="INC-OK", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok"
    assert not {c for c in checks_at_or_above(summary, "WARNING") if c.startswith("aws.")}, summary["findings"]


def test_rds_metrics_are_one_get_metric_data_call(counted):
    aws, calls = counted
    frame = cloudwatch.rds_metrics("ims-postgres-db", resolve_window("1h"), aws=aws)
    assert calls == ["cloudwatch:GetMetricData"]
    assert set(frame["metric"]) == {
        "CPUUtilization",
        "DatabaseConnections",
        "FreeStorageSpace",
        "ReplicaLag",
        "ReadIOPS",
        "WriteIOPS",
    }
    assert list(frame.columns) == ["timestamp", "metric", "dimension", "value"]
    cpu = cloudwatch.series(frame, "CPUUtilization")
    assert 50 <= len(cpu) <= 60 and cpu.max() >= 90  # 1-minute history up to seeding, with the spike
    assert cloudwatch.rds_cpu_finding(frame, "ims-postgres-db").severity >= Severity.WARNING


def test_period_keeps_one_call_within_the_datapoint_limit():
    week = resolve_window("7d")
    assert cloudwatch.period_for(resolve_window("1h"), 6) == 60
    assert cloudwatch.period_for(week, 500) * 100_800 / 500 >= week.seconds
    assert cloudwatch.period_for(week, 500) % 60 == 0


def test_logs_error_summary_and_retention(counted):
    aws, _ = counted
    summary = logs.error_summary("/ims/application", resolve_window("30m"), aws=aws)
    # db-degradation's requests in its log: ~2% end in a database timeout, as Prometheus' 5xx (the sandbox's APP_LOGS)
    assert summary.events > 100 and 0 < summary.errors <= 0.03 * summary.events, (summary.errors, summary.events)
    assert logs.error_rate_finding(summary).severity >= Severity.WARNING
    named, example = logs.errors_naming(summary)
    assert named == summary.errors and "database" in example, example
    groups = logs.retention(aws=aws)
    assert set(groups["log_group"]) == {"/ims/application", "/ims/database", "/ims/nginx"}
    assert all(f.severity == Severity.OK for f in logs.retention_findings(groups))


def test_insights_query_is_bounded(counted):
    aws, calls = counted
    rows = logs.insights_query(
        "/ims/application", "fields @timestamp, @message | limit 5", resolve_window("2h"), aws=aws, limit=5
    )
    assert len(rows) <= 5 and "@message" in rows.columns
    assert calls[0] == "logs:StartQuery" and "logs:GetQueryResults" in calls


def test_rds_ecs_s3_elasticache_describe(counted):
    aws, _ = counted
    instance = rds.instances("ims-postgres-db", aws=aws).iloc[0]
    assert (instance["status"], instance["class"], instance["allocated_gib"]) == ("available", "db.t3.micro", 100)
    snaps = rds.snapshots("ims-postgres-db", aws=aws)
    assert {"manual", "automated"} <= set(snaps["type"]) and snaps.iloc[0]["age_h"] < 24
    services = ecs.services("ims-production", aws=aws)
    assert services.iloc[0][["service", "desired", "running"]].tolist() == ["ims-backend", 3, 3]
    revisions = ecs.task_definition_revisions("ims-backend", aws=aws)
    assert revisions["revision"].tolist() == [3, 2, 1]
    bucket = s3.bucket_summary("ims-backups", aws=aws)
    assert bucket.objects == 14 and bucket.newest_age_h < 24
    assert elasticache.clusters(aws=aws).iloc[0]["cluster"] == "ims-redis"


def test_every_call_is_in_the_iam_policy(counted):
    aws, calls = counted
    window = resolve_window("1h")
    cloudwatch.metrics(
        cloudwatch.rds_metric_list("ims-postgres-db")
        + cloudwatch.ecs_metric_list("ims-production", "ims-backend")
        + cloudwatch.elasticache_metric_list("ims-redis"),
        window,
        aws=aws,
    )
    logs.error_summary("/ims/application", window, aws=aws)
    logs.retention(aws=aws)
    logs.insights_query("/ims/application", "fields @message | limit 1", window, aws=aws, limit=1)
    rds.instances(aws=aws)
    rds.snapshots("ims-postgres-db", aws=aws)
    rds.events("ims-postgres-db", window, aws=aws)
    ecs.services("ims-production", aws=aws)
    ecs.deployments("ims-production", "ims-backend", aws=aws)
    ecs.service_events("ims-production", "ims-backend", aws=aws)
    ecs.task_definition_revisions("ims-backend", aws=aws)
    s3.bucket_summary("ims-backups", aws=aws)
    s3.newest_objects("ims-backups", aws=aws)
    elasticache.clusters(aws=aws)
    assert set(calls) <= set(aws_pkg.ACTIONS), set(calls) - set(aws_pkg.ACTIONS)
    policy = aws_pkg.iam_policy()
    assert policy["Statement"][0]["Action"] == sorted(aws_pkg.READ_ACTIONS)
    assert not [a for a in aws_pkg.READ_ACTIONS if a.split(":")[1].startswith(("Put", "Modify", "Update", "Delete"))]


def test_every_boto3_call_in_the_library_is_listed():
    """Static check: each aws.call(service, operation) / paginate in imsnb/ names an action in ACTIONS."""
    from imsnb.aws import iam_action

    found = set()
    for path in (ROOT / "imsnb").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("call", "paginate"):
                args = [a.value for a in node.args[:2] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if len(args) == 2 and args[0] in ("cloudwatch", "logs", "rds", "ecs", "s3", "elasticache"):
                    operation = "".join(part.title() for part in args[1].split("_")).replace("Db", "DB")
                    found.add(iam_action(args[0], operation))
    assert found and found <= set(aws_pkg.ACTIONS), found - set(aws_pkg.ACTIONS)


def test_iam_policy_command():
    result = subprocess.run([sys.executable, "-m", "imsnb.cli", "iam-policy"], capture_output=True, text=True)
    assert result.returncode == 0
    policy = json.loads(result.stdout)
    assert "cloudwatch:GetMetricData" in policy["Statement"][0]["Action"]


def test_endpoint_down_is_a_finding_within_seconds(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws = Aws("tests")
    findings = Findings()
    started = time.monotonic()
    for check in ("aws.rds.cpu", "aws.rds.snapshot_age"):
        with findings.section(check):
            rds.snapshots("ims-postgres-db", aws=aws)
    assert [f.check for f in findings] == ["aws.reachable"] and findings[0].severity == Severity.CRITICAL
    assert time.monotonic() - started < 15
    with pytest.raises(Unreachable):
        rds.instances(aws=aws)


def test_no_credentials_is_an_info_finding(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    findings = Findings()
    with findings.section("aws.rds.cpu"):
        rds.instances(aws=Aws("tests"))
    assert findings[0].check == "aws.credentials" and findings[0].severity == Severity.INFO
    with pytest.raises(NotConfigured):
        rds.instances(aws=Aws("tests"))


def test_db_performance_metrics_section_makes_one_call(degraded, use_env, tmp_path):
    """Count the notebook's own AWS calls: its RDS section charts three metrics from one GetMetricData."""
    use_env(degraded)
    nb = json.loads((ROOT / "notebooks" / "db_performance.ipynb").read_text())
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if source.startswith("run = incident.begin("):  # the set-up cell: count the calls of the run's client
            begin, rest = source.split("\n)\n", 1)
            begin += "\n)"
            counted = 'calls = []\nrun.aws = imsnb.aws.Aws("db_performance", on_call=calls.append)'
            cell["source"] = f"{begin}\nimport imsnb.aws\n{counted}\n{rest}"
    nb["cells"].insert(
        -1,
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "count",
            "metadata": {},
            "outputs": [],
            "source": "print('AWS CALLS', calls)",
        },
    )
    path = tmp_path / "counted.ipynb"
    path.write_text(json.dumps(nb))
    result = run_notebook(str(path), {}, incident_id="INC-C", outputs=tmp_path / "out")
    executed = json.loads((result.folder / "notebook.ipynb").read_text())
    printed = [o for c in executed["cells"] for o in c.get("outputs", []) if "AWS CALLS" in "".join(o.get("text", ""))]
    assert "".join(printed[0]["text"]).strip() == "AWS CALLS ['cloudwatch:GetMetricData']"


def test_aws_region_alone_is_enough_and_no_region_is_an_info_finding(monkeypatch):
    from imsnb.aws import Aws
    from imsnb.findings import Findings

    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    found = Findings()
    with found.section("aws.rds.cpu"):
        Aws("test").call("rds", "describe_db_instances")
    assert [(f.check, f.severity.name) for f in found] == [("aws.credentials", "INFO")]
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert Aws("test").client("rds").meta.region_name == "eu-west-1"
