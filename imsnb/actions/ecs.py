"""ECS targets: desired count within bounds, roll back to the previous task definition, and the scaling notebook's
plans (ECS desired count, plus the RDS class step from `imsnb.actions.rds`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from imsnb.actions.gate import Plan
from imsnb.actions.rds import next_rds_class, rds_resize_action
from imsnb.aws import aws_or_default, changes, logs
from imsnb.aws import ecs as ecs_source
from imsnb.findings import threshold
from imsnb.limits import MAX_COUNT_LIMIT

__all__ = [
    "desired_count_bounds",
    "ecs_desired_count_action",
    "ecs_force_new_deployment_action",
    "ecs_rollback_action",
    "ecs_rollback_to_action",
    "error_rollback_plans",
    "scaling_actions",
]


def _service(aws: Any, cluster: str, service: str) -> dict[str, Any]:
    return ecs_source.describe_service(cluster, service, aws=aws)


def _changed(now: dict[str, Any], cluster: str, service: str, task_definition: str | None = None) -> str | None:
    """Why the service as described `now` is no longer as planned: not ACTIVE, or (when one is given) running
    another task definition; None when it is as planned."""
    if now.get("status") != "ACTIVE":
        return f"service {cluster}/{service} is {now.get('status')!r}, not ACTIVE"
    if task_definition is not None and now.get("taskDefinition") != task_definition:
        return f"the service moved to {now.get('taskDefinition', '').rsplit('/', 1)[-1]} since the plan"
    return None


def desired_count_bounds(current: int, max_count: int = 0) -> tuple[int, int]:
    """[1, 2x current] (at least 1), or [1, max_count] when widened explicitly; never above MAX_COUNT_LIMIT."""
    high = max_count if max_count > 0 else max(2 * current, 1)
    return 1, min(high, MAX_COUNT_LIMIT)


def ecs_desired_count_action(
    cluster: str, service: str, to: int, *, max_count: int = 0, reason: str = "", aws: Any = None
) -> Plan:
    """The runbook's `aws ecs update-service --desired-count`, within [1, 2x current] unless widened."""
    current = int(_service(aws, cluster, service).get("desiredCount", 0))
    low, high = desired_count_bounds(current, max_count)
    within = low <= to <= high
    if max(to, max_count) > MAX_COUNT_LIMIT:
        cap_note = (
            f"{to} is outside [{low}, {high}]: the hard limit is {MAX_COUNT_LIMIT} tasks, whatever max_count says"
        )
    else:
        cap_note = f"{to} is outside [{low}, {high}] (at most twice the current {current}): widen with max_count"

    def recheck() -> str | None:
        now = _service(aws, cluster, service)
        changed = _changed(now, cluster, service)
        if changed is None and int(now.get("desiredCount", 0)) != current:
            changed = f"the desired count changed since the plan ({current} → {now.get('desiredCount')})"
        return changed

    def apply() -> str:
        aws_or_default(aws).call("ecs", "update_service", cluster=cluster, service=service, desiredCount=int(to))
        return f"{cluster}/{service}: desired count {current} → {_service(aws, cluster, service)['desiredCount']}"

    return Plan(
        action="ecs_desired_count",
        target=f"{cluster}/{service}",
        reason=reason or "more capacity for the API",
        expected_effect=f"desired tasks {current} → {to}",
        undo=f"aws ecs update-service --cluster {cluster} --service {service} --desired-count {current}",
        command=f"aws ecs update-service --cluster {cluster} --service {service} --desired-count {to}",
        recheck=recheck,
        apply=apply,
        within_cap=within,
        cap_note=cap_note,
    )


def ecs_rollback_action(
    cluster: str, service: str, revisions: pd.DataFrame | None = None, *, reason: str = "", aws: Any = None
) -> Plan | None:
    """Roll the service back to the task definition revision before the one it runs, within the family it runs
    (taken from the service's current `taskDefinition`, never from the service's name); None when there is none.

    `revisions` (rows of `ecs.task_definition_revisions`) are used only where they belong to that family; when none
    do, the family's revisions are listed here."""
    current = _service(aws, cluster, service).get("taskDefinition", "")
    current_name = current.rsplit("/", 1)[-1]
    if ":" not in current_name:
        return None
    family, revision = current_name.rsplit(":", 1)[0], int(current_name.rsplit(":", 1)[-1])
    candidates = _family_rows(revisions, family)
    if candidates.empty:
        candidates = _family_rows(ecs_source.task_definition_revisions(family, aws=aws_or_default(aws)), family)
    older = candidates[candidates["revision"] < revision]
    if older.empty:
        return None
    previous = older.sort_values("revision", ascending=False).iloc[0]

    def recheck() -> str | None:
        return _changed(_service(aws, cluster, service), cluster, service, current)

    def apply() -> str:
        arn = previous["arn"]
        aws_or_default(aws).call("ecs", "update_service", cluster=cluster, service=service, taskDefinition=arn)
        now = _service(aws, cluster, service)["taskDefinition"].rsplit("/", 1)[-1]
        return f"{cluster}/{service} now deploys {now}"

    return Plan(
        action="ecs_rollback",
        target=f"{cluster}/{service}",
        reason=reason or f"roll back the latest release ({current_name})",
        expected_effect=f"a new deployment of {previous['task_definition']} replaces {current_name}",
        undo=f"aws ecs update-service --cluster {cluster} --service {service} --task-definition {current_name}",
        command=f"aws ecs update-service --cluster {cluster} --service {service} "
        f"--task-definition {previous['task_definition']}",
        recheck=recheck,
        apply=apply,
    )


def _family_rows(revisions: pd.DataFrame | None, family: str) -> pd.DataFrame:
    """The rows of `revisions` whose task definition is `family:N` exactly (not a family that starts alike)."""
    if revisions is None or revisions.empty:
        return pd.DataFrame(columns=["task_definition", "revision", "arn"])
    names = revisions["task_definition"].astype(str).str.rsplit(":", n=1).str[0]
    return revisions[names == family]


def scaling_actions(
    services: pd.DataFrame,
    instances: pd.DataFrame,
    *,
    cluster: str,
    target_count: int | None = None,
    max_count: int = 0,
    rds_class: str = "",
    rds_cpu_peak: float | None = None,
    aws: Any = None,
) -> list[Plan]:
    """The runbook's horizontal (ECS desired count) and vertical (RDS class) scaling, sized from what was found.

    Desired count: `target_count`, else one more than now. The RDS step: to `rds_class` when given, else one size
    up the ladder when CPU peaked at or above the runbook's 80% (`aws.rds.cpu`).
    """
    cpu_limit = threshold("aws.rds.cpu").warning
    plans = []
    for s in services.itertuples():
        wanted = target_count if target_count else int(s.desired) + 1
        stuck = s.running < s.desired
        why = (
            f"{s.running} running of {s.desired} desired, {s.pending} pending: find why tasks do not start first"
            if stuck
            else "more capacity for the API"
        )
        plans.append(ecs_desired_count_action(cluster, s.service, wanted, max_count=max_count, reason=why, aws=aws))
    for i in instances.itertuples():
        current = instances.loc[i.Index, "class"]
        if rds_class:
            to, why = rds_class, f"resize to {rds_class} as asked"
        elif rds_cpu_peak is not None and rds_cpu_peak >= cpu_limit and next_rds_class(current):
            to, why = next_rds_class(current), f"CPU peaked at {rds_cpu_peak:.0f}% (runbook: < {cpu_limit:g}%)"
        else:
            continue
        if to != current:
            plans.append(rds_resize_action(i.instance, to, reason=why, aws=aws))
    return plans


# --- ECS: restart the service (Memory Leak / OOM Killer) ---------------------------------------------------------


def _primary_deployment(service: dict[str, Any]) -> str | None:
    return next((d.get("id") for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), None)


def ecs_force_new_deployment_action(cluster: str, service: str, *, reason: str = "", aws: Any = None) -> Plan:
    """The runbook's immediate action for a leak (`docker-compose restart backend`) on ECS: `aws ecs update-service
    --force-new-deployment` replaces every task with a fresh one of the same task definition."""
    planned = _service(aws, cluster, service)
    task_definition = planned.get("taskDefinition", "")
    deployment = _primary_deployment(planned)

    def recheck() -> str | None:
        now = _service(aws, cluster, service)
        changed = _changed(now, cluster, service, task_definition)
        if changed is None and _primary_deployment(now) != deployment:
            changed = "a new deployment started since the plan: the tasks are already being replaced"
        return changed

    def apply() -> str:
        reply = aws_or_default(aws).call(
            "ecs", "update_service", cluster=cluster, service=service, forceNewDeployment=True
        )
        now = _primary_deployment(reply.get("service", {}))
        return f"{cluster}/{service}: new deployment {now} of {task_definition.rsplit('/', 1)[-1]} started"

    return Plan(
        action="ecs_force_new_deployment",
        target=f"{cluster}/{service}",
        reason=reason or "restart the leaking service",
        expected_effect=f"every task of {service} is replaced by a fresh one ({task_definition.rsplit('/', 1)[-1]}); "
        "memory starts from zero again, the leak is not fixed",
        undo="none needed: same task definition; the old tasks are drained",
        command=f"aws ecs update-service --cluster {cluster} --service {service} --force-new-deployment",
        recheck=recheck,
        apply=apply,
    )


# --- ECS: roll back the deployment the errors followed (High Error Rate) ------------------------------------------


def ecs_rollback_to_action(
    cluster: str, service: str, *, culprit: str, to: str, basis: str = "", reason: str = "", aws: Any = None
) -> Plan:
    """Deploy `to` (family:revision) in place of `culprit`, the deployment the errors followed: re-checked to still
    be what the service runs, so a service that has moved on since is not rolled back over someone's fix."""

    def recheck() -> str | None:
        now = _service(aws, cluster, service)
        if now.get("status") != "ACTIVE":
            return f"service {cluster}/{service} is {now.get('status')!r}, not ACTIVE"
        running = now.get("taskDefinition", "").rsplit("/", 1)[-1]
        if running != culprit:
            return f"the service runs {running}, not {culprit} the plan rolls back: it moved on since"
        return None

    def apply() -> str:
        aws_or_default(aws).call("ecs", "update_service", cluster=cluster, service=service, taskDefinition=to)
        now = _service(aws, cluster, service)["taskDefinition"].rsplit("/", 1)[-1]
        return f"{cluster}/{service} now deploys {now}"

    return Plan(
        action="ecs_rollback",
        target=f"{cluster}/{service}",
        reason=reason or f"the errors followed the deployment of {culprit}",
        expected_effect=f"a new deployment of {to} replaces {culprit}" + (f" ({to}: {basis})" if basis else ""),
        undo=f"aws ecs update-service --cluster {cluster} --service {service} --task-definition {culprit}",
        command=f"aws ecs update-service --cluster {cluster} --service {service} --task-definition {to}",
        recheck=recheck,
        apply=apply,
    )


def error_rollback_plans(
    cluster: str,
    service: str,
    revisions: pd.DataFrame | None,
    correlation: Any = None,
    *,
    errors: Any = None,
    aws: Any = None,
) -> tuple[list[Plan], str]:
    """The runbook's "Rollback if needed", aimed by `imsnb.aws.changes.correlate`: when the errors followed a
    deployment of this service, back to exactly what that deployment replaced; when they followed another change
    (an RDS failover, an imsnb action), no rollback; when no change was named but most error lines name the
    database (`errors`, an `imsnb.aws.logs.ErrorSummary`: timeouts, locks, the pool), no rollback either, since
    an older release meets the same database; otherwise the previous revision of what runs now, as before. Returns
    the plans and a line saying which case it is."""

    change = None if correlation is None else correlation.change
    culprit = changes.named_deployment(correlation, cluster, service)
    if culprit is not None:
        deployed = ecs_source.deployments(cluster, service, aws=aws_or_default(aws))
        timeline = correlation.timeline.table if correlation.timeline is not None else None
        target = changes.predecessor(culprit, deployed, revisions, timeline)
        if target is None:
            return [], f"the errors followed {culprit['what']}, but nothing was deployed before it: no rollback"
        to, basis = target
        plan = ecs_rollback_to_action(
            cluster,
            service,
            culprit=str(culprit["task_definition"]),
            to=to,
            basis=basis,
            reason=f"the errors rose {correlation.lag_s:.0f} s after {culprit['what']}",
            aws=aws,
        )
        return [plan], f"rollback aimed at the deployment the errors followed: {culprit['task_definition']} → {to}"
    if change is not None:
        return [], f"no rollback planned: the errors followed {change['what']}, not a deployment of {service}"
    named, example = logs.errors_naming(errors) if errors is not None else (0, "")
    if named and 2 * named > errors.errors:
        return [], (
            f"no rollback planned: {named:,} of {errors.errors:,} error lines name the database (e.g. "
            f"{example[:120]}), and no deployment came before them: a previous release meets the same database; "
            "follow the database (db_performance)"
        )
    plan = ecs_rollback_action(cluster, service, revisions, aws=aws)
    why = "no change named before the errors: the runbook's rollback of the latest release, if needed"
    return ([plan] if plan is not None else []), why
