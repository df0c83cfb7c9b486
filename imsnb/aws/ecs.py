"""ECS: services with running vs desired vs pending, deployments and their rollout, events, task definitions."""

from __future__ import annotations

import pandas as pd

from imsnb.aws import Aws, aws_or_default, items_table
from imsnb.findings import Finding, Severity


def _task_definition(item: dict) -> str:
    """The task definition's family:revision (without the ARN's prefix)."""
    return item.get("taskDefinition", "").rsplit("/", 1)[-1]


def _rollout(service: dict) -> str | None:
    primary = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})
    return primary.get("rolloutState")


SERVICE_COLUMNS = {
    "service": "serviceName",
    "status": "status",
    "desired": lambda s: s.get("desiredCount", 0),
    "running": lambda s: s.get("runningCount", 0),
    "pending": lambda s: s.get("pendingCount", 0),
    "task_definition": _task_definition,
    "deployments": lambda s: len(s.get("deployments", [])),
    "rollout": _rollout,
}
DEPLOYMENT_COLUMNS = {
    "id": "id",
    "status": "status",
    "task_definition": _task_definition,
    "desired": "desiredCount",
    "running": "runningCount",
    "pending": "pendingCount",
    "rollout": "rolloutState",
    "created": "createdAt",
    "updated": "updatedAt",
}


def services(cluster: str, names: list[str] | None = None, *, aws: Aws | None = None) -> pd.DataFrame:
    """The runbook's `aws ecs describe-services ... [runningCount, desiredCount]`, for all or named services."""
    aws = aws_or_default(aws)
    if not names:
        arns = aws.paginate("ecs", "list_services", "serviceArns", limit=1000, cluster=cluster)
        names = [arn.rsplit("/", 1)[-1] for arn in arns]
    found = []
    for offset in range(0, len(names), 10):  # DescribeServices takes at most 10
        reply = aws.call("ecs", "describe_services", cluster=cluster, services=names[offset : offset + 10])
        found.extend(reply.get("services", []))
    return items_table(found, SERVICE_COLUMNS)


def _describe(aws: Aws, cluster: str, service: str) -> dict:
    reply = aws.call("ecs", "describe_services", cluster=cluster, services=[service])
    found = reply.get("services", [])
    if not found:
        raise LookupError(f"ECS service {service} not found in cluster {cluster}")
    return found[0]


def deployments(cluster: str, service: str, *, aws: Aws | None = None) -> pd.DataFrame:
    """A service's deployments (PRIMARY first) with their task definition, counts and rollout state."""
    return items_table(_describe(aws_or_default(aws), cluster, service).get("deployments", []), DEPLOYMENT_COLUMNS)


def service_events(cluster: str, service: str, *, aws: Aws | None = None, limit: int = 20) -> pd.DataFrame:
    events = _describe(aws_or_default(aws), cluster, service).get("events", [])[:limit]
    return items_table(events, {"at": "createdAt", "message": "message"})


def service_family(cluster: str, service: str, *, aws: Aws | None = None) -> str:
    """The task definition family the service runs now (from its `taskDefinition`; not its own name)."""
    return _task_definition(_describe(aws_or_default(aws), cluster, service)).rsplit(":", 1)[0]


def task_definition_revisions(family: str, *, aws: Aws | None = None, limit: int = 10) -> pd.DataFrame:
    """The newest revisions of a task definition family: what a rollback could go back to. Only `family` itself:
    ECS's familyPrefix also lists families that merely start alike (ims-backend-canary for ims-backend)."""
    arns = aws_or_default(aws).paginate(
        "ecs", "list_task_definitions", "taskDefinitionArns", limit=1000, familyPrefix=family, sort="DESC"
    )
    rows = []
    for arn in arns:
        name = arn.rsplit("/", 1)[-1]
        if name.rsplit(":", 1)[0] != family:
            continue
        rows.append({"task_definition": name, "revision": int(name.rsplit(":", 1)[-1]), "arn": arn})
        if len(rows) >= limit:
            break
    frame = pd.DataFrame(rows, columns=["task_definition", "revision", "arn"])
    return frame.sort_values("revision", ascending=False).reset_index(drop=True)


def running_vs_desired_findings(table: pd.DataFrame, cluster: str) -> list[Finding]:
    """Running under desired is a WARNING, half or less an ERROR, none running while some are desired CRITICAL."""
    findings = []
    for row in table.itertuples():
        if row.desired == 0 or row.running >= row.desired:
            severity = Severity.OK
        elif row.running == 0:
            severity = Severity.CRITICAL
        elif row.running <= row.desired / 2:
            severity = Severity.ERROR
        else:
            severity = Severity.WARNING
        findings.append(
            Finding.of(
                "aws.ecs.running_vs_desired",
                severity,
                f"{cluster}/{row.service}: {row.running} running of {row.desired} desired, "
                f"{row.pending} pending ({row.rollout or 'no rollout state'})",
                value=int(row.running),
                threshold=int(row.desired),
                unit="tasks",
            )
        )
    return findings


def rollback_finding(revisions: pd.DataFrame, service: str) -> Finding:
    """INFO naming the revision a rollback would return to; WARNING when there is none to go back to."""
    if len(revisions) < 2:
        return Finding.of(
            "aws.ecs.rollback_candidate",
            Severity.WARNING,
            f"{service}: no earlier task definition revision to roll back to",
            value=len(revisions),
            threshold=2,
            unit="revisions",
        )
    current, previous = revisions.iloc[0], revisions.iloc[1]
    return Finding.of(
        "aws.ecs.rollback_candidate",
        Severity.INFO,
        f"{service}: a rollback would go from {current['task_definition']} to {previous['task_definition']}",
        value=previous["task_definition"],
    )


def describe_service(cluster: str, service: str, *, aws: Aws | None = None) -> dict:
    """The service as `ecs describe-services` returns it; LookupError when the cluster has no such service."""
    return _describe(aws_or_default(aws), cluster, service)
