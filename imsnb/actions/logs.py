"""CloudWatch Logs: the runbook's `aws logs put-retention-policy --retention-in-days 30` for a log group kept
another time (or forever), as a two-key plan whose undo puts back exactly what was there before."""

from __future__ import annotations

from typing import Any

import pandas as pd

from imsnb.actions.gate import Plan
from imsnb.aws import aws_or_default
from imsnb.aws.logs import RUNBOOK_RETENTION_DAYS

__all__ = [
    "RETENTION_DAYS",
    "log_retention_action",
    "retention_actions",
]

# The values CloudWatch Logs accepts for retentionInDays (PutRetentionPolicy's documented enumeration).
RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


def _retention_now(aws: Any, log_group: str) -> tuple[bool, int | None]:
    """(the group exists, its retention in days or None when kept forever), read now."""
    groups = aws_or_default(aws).paginate(
        "logs", "describe_log_groups", "logGroups", limit=50, logGroupNamePrefix=log_group
    )
    found = next((g for g in groups if g.get("logGroupName") == log_group), None)
    if found is None:
        return False, None
    days = found.get("retentionInDays")
    return True, None if days is None else int(days)


def _shown(days: int | None) -> str:
    return "forever (no retention policy)" if days is None else f"{days} days"


def undo_command(log_group: str, previous: int | None) -> str:
    """What puts the group back as it was: its previous retention, or no policy at all."""
    if previous is None:
        return f"aws logs delete-retention-policy --log-group-name {log_group}"
    return f"aws logs put-retention-policy --log-group-name {log_group} --retention-in-days {previous}"


def log_retention_action(
    log_group: str, days: int = RUNBOOK_RETENTION_DAYS, *, previous: int | None = None, aws: Any = None
) -> Plan:
    """Set `log_group`'s retention to `days` (the runbook's 30). `previous` is the retention the plan was made
    from (None: kept forever); the re-check refuses to act when the group is gone or its retention changed since,
    and the undo restores `previous` (or deletes the policy when there was none)."""
    within = days in RETENTION_DAYS
    cap_note = f"{days} days is not a retention CloudWatch Logs accepts (e.g. 7, 14, 30, 60, 90, 365)"

    def recheck() -> str | None:
        exists, now = _retention_now(aws, log_group)
        if not exists:
            return f"log group {log_group} no longer exists"
        if now != previous:
            return f"{log_group}'s retention changed since the plan ({_shown(previous)} → {_shown(now)})"
        if now == days:
            return f"{log_group} is already kept {days} days"
        return None

    def apply() -> str:
        aws_or_default(aws).call("logs", "put_retention_policy", logGroupName=log_group, retentionInDays=int(days))
        _, now = _retention_now(aws, log_group)
        return f"{log_group}: kept {_shown(now)} (was {_shown(previous)})"

    return Plan(
        action="logs_retention",
        target=log_group,
        reason=f"kept {_shown(previous)}; the runbook keeps logs {RUNBOOK_RETENTION_DAYS} days",
        expected_effect=(
            f"CloudWatch Logs deletes the events older than {days} days, for good (the undo keeps later events "
            "longer; it does not bring these back)"
            if previous is None or previous > days
            else f"events are kept {days} days instead of {previous}"
        ),
        undo=undo_command(log_group, previous),
        command=f"aws logs put-retention-policy --log-group-name {log_group} --retention-in-days {days}",
        recheck=recheck,
        apply=apply,
        within_cap=within,
        cap_note=cap_note,
    )


def retention_actions(groups: pd.DataFrame, days: int = RUNBOOK_RETENTION_DAYS, *, aws: Any = None) -> list[Plan]:
    """One plan per log group (rows of `imsnb.aws.logs.retention`) not kept `days`, planned from the retention read."""
    plans = []
    for row in groups.itertuples():
        previous = None if pd.isna(row.retention_days) else int(row.retention_days)
        if previous != days:
            plans.append(log_retention_action(row.log_group, days, previous=previous, aws=aws))
    return plans
