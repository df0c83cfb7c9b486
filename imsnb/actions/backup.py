"""The monthly backup integrity test (runbook: Daily Backup Verification › Verify backup integrity): restore the
newest snapshot to a temporary instance this run tags as its own, verify it, then delete exactly that instance."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from imsnb.actions.gate import Plan, one_line, wait_for_status
from imsnb.actions.rds import RESTORE_POLL_S, describe_instance, restore_blocked
from imsnb.aws import aws_or_default

__all__ = [
    "RESTORE_TEST_TAG",
    "rds_delete_restore_test_action",
    "rds_restore_test_action",
    "restore_test_instance_id",
    "run_token",
]

# --- RDS: the monthly restore test (Daily Backup Verification › Verify backup integrity) --------------------------

RESTORE_TEST_TAG = "imsnb-restore-test"


def restore_test_instance_id(instance_id: str, at: datetime | None = None) -> str:
    """A name for the temporary instance no person would reuse: <instance>-verify-<UTC yyyymmddhhmm>."""
    stamp = (at or datetime.now(UTC)).strftime("%Y%m%d%H%M")
    return f"{instance_id[: 63 - 20]}-verify-{stamp}"


def rds_restore_test_action(
    snapshot: dict[str, Any],
    temp_instance_id: str,
    *,
    created: dict[str, Any],
    run_token: str,
    wait_s: float = 480.0,
    poll_s: float = RESTORE_POLL_S,
    aws: Any = None,
) -> Plan:
    """Restore `snapshot` to a temporary instance, tagged with this run's token, and wait until it is available.
    What was created (identifier, DbiResourceId, ARN, token) is written into `created`, which the delete that
    follows re-checks, so it can only ever touch the instance this run made."""
    snapshot_id = snapshot["snapshot"]

    def recheck() -> str | None:
        return restore_blocked(aws, snapshot_id, temp_instance_id, if_taken="this run will not create (or delete) it")

    def apply() -> str:
        reply = aws_or_default(aws).call(
            "rds",
            "restore_db_instance_from_db_snapshot",
            DBInstanceIdentifier=temp_instance_id,
            DBSnapshotIdentifier=snapshot_id,
            PubliclyAccessible=False,
            Tags=[{"Key": RESTORE_TEST_TAG, "Value": run_token}],
        )["DBInstance"]
        created.update(
            instance=temp_instance_id,
            resource_id=reply.get("DbiResourceId"),
            arn=reply.get("DBInstanceArn"),
            token=run_token,
        )
        waited = wait_for_status(
            lambda: describe_instance(aws, temp_instance_id).get("DBInstanceStatus"),
            "available",
            wait_s=wait_s,
            poll_s=poll_s,
            what=temp_instance_id,
        )
        endpoint = describe_instance(aws, temp_instance_id).get("Endpoint") or {}
        return f"{temp_instance_id} available after {waited:.0f} s at {endpoint.get('Address')}:{endpoint.get('Port')}"

    return Plan(
        action="rds_restore_test",
        target=temp_instance_id,
        reason=f"monthly integrity test of the newest snapshot {snapshot_id} (created {snapshot.get('created')})",
        expected_effect=f"a temporary, private instance {temp_instance_id} (deleted again below); "
        "the source instance is untouched",
        undo=f"aws rds delete-db-instance --db-instance-identifier {temp_instance_id} --skip-final-snapshot",
        command=f"aws rds restore-db-instance-from-db-snapshot --db-instance-identifier {temp_instance_id} "
        f"--db-snapshot-identifier {snapshot_id} --no-publicly-accessible "
        f"--tags Key={RESTORE_TEST_TAG},Value={run_token} && aws rds wait db-instance-available "
        f"--db-instance-identifier {temp_instance_id}",
        recheck=recheck,
        apply=apply,
    )


def rds_delete_restore_test_action(
    temp_instance_id: str, *, created: dict[str, Any], source_instance: str, aws: Any = None
) -> Plan:
    """Delete the temporary instance of the restore test, and only it: right before deleting it re-checks that
    this run created it (same DbiResourceId, this run's tag) and that it is not the source instance."""

    def recheck() -> str | None:
        if not created or created.get("instance") != temp_instance_id:
            return f"this run created no instance {temp_instance_id}: nothing of ours to delete"
        if temp_instance_id == source_instance:
            return f"{temp_instance_id} is the source instance: never deleted"
        try:
            now = describe_instance(aws, temp_instance_id)
        except Exception as exc:  # noqa: BLE001 - DBInstanceNotFound and the like
            return f"{temp_instance_id} is gone already ({one_line(exc)})"
        if now.get("DbiResourceId") != created.get("resource_id"):
            return f"{temp_instance_id} is another instance than the one this run created (resource id differs)"
        tags = {t["Key"]: t["Value"] for t in now.get("TagList", [])}
        if tags.get(RESTORE_TEST_TAG) != created.get("token"):
            return f"{temp_instance_id} does not carry this run's {RESTORE_TEST_TAG} tag"
        return None

    def apply() -> str:
        reply = aws_or_default(aws).call(
            "rds",
            "delete_db_instance",
            DBInstanceIdentifier=temp_instance_id,
            SkipFinalSnapshot=True,
            DeleteAutomatedBackups=True,
        )["DBInstance"]
        return f"{temp_instance_id}: {reply.get('DBInstanceStatus')}"

    return Plan(
        action="rds_delete_restore_test",
        target=temp_instance_id,
        reason="the restore test is done: the temporary instance costs money and holds a copy of the data",
        expected_effect=f"{temp_instance_id} is deleted (no final snapshot); nothing else is touched",
        undo="none needed: it was a copy; restore the snapshot again to repeat the test",
        command=f"aws rds delete-db-instance --db-instance-identifier {temp_instance_id} --skip-final-snapshot "
        "--delete-automated-backups",
        recheck=recheck,
        apply=apply,
    )


def run_token() -> str:
    """A fresh token naming what one run creates (tagged on it, re-checked before deleting it)."""

    return secrets.token_hex(6)
