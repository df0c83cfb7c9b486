"""RDS: instances, snapshots (automated and manual) with their age, recent events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb.aws import Aws, aws_or_default, engine, items_table
from imsnb.findings import Finding, Severity
from imsnb.window import Window

SNAPSHOT_MAX_AGE_H = 24.0


INSTANCE_COLUMNS = {
    "instance": "DBInstanceIdentifier",
    "status": "DBInstanceStatus",
    "class": "DBInstanceClass",
    "engine": engine,
    "multi_az": "MultiAZ",
    "allocated_gib": "AllocatedStorage",
    "storage_type": "StorageType",
    "cluster": "DBClusterIdentifier",
    "endpoint": lambda d: (d.get("Endpoint") or {}).get("Address"),
}
EVENT_COLUMNS = {"at": "Date", "message": "Message", "categories": lambda e: ", ".join(e.get("EventCategories", []))}


def instances(instance_id: str | None = None, *, aws: Aws | None = None) -> pd.DataFrame:
    """Status, class, engine, Multi-AZ and storage of one instance (or all)."""
    kwargs = {"DBInstanceIdentifier": instance_id} if instance_id else {}
    found = aws_or_default(aws).paginate("rds", "describe_db_instances", "DBInstances", limit=500, **kwargs)
    return items_table(found, INSTANCE_COLUMNS)


def snapshots(instance_id: str, *, aws: Aws | None = None, now: datetime | None = None) -> pd.DataFrame:
    """The runbook's `aws rds describe-db-snapshots`: automated and manual, newest first, with age in hours."""
    now = now or datetime.now(UTC)
    found = aws_or_default(aws).paginate(
        "rds", "describe_db_snapshots", "DBSnapshots", limit=1000, DBInstanceIdentifier=instance_id
    )
    frame = items_table(
        found,
        {
            "snapshot": "DBSnapshotIdentifier",
            "type": "SnapshotType",
            "status": "Status",
            "created": "SnapshotCreateTime",
            "age_h": lambda s: _age_h(s.get("SnapshotCreateTime"), now),
            "size_gib": "AllocatedStorage",
        },
    )
    return frame.sort_values("created", ascending=False, na_position="last").reset_index(drop=True)


def _age_h(created: datetime | None, now: datetime) -> float | None:
    return round((now - created).total_seconds() / 3600, 1) if created else None


def snapshot_findings(snaps: pd.DataFrame, instance_id: str, *, max_age_h: float = SNAPSHOT_MAX_AGE_H) -> list[Finding]:
    """Newest available snapshot older than `max_age_h` (the runbook's daily backup): WARNING, twice that: ERROR;
    none at all: CRITICAL; a failed snapshot: ERROR."""
    findings = []
    available = snaps[snaps["status"] == "available"]
    if available.empty:
        findings.append(
            Finding.of(
                "aws.rds.snapshot_age",
                Severity.CRITICAL,
                f"{instance_id}: no available snapshot",
                threshold=max_age_h,
                unit="h",
            )
        )
    else:
        newest = available.iloc[0]
        age = float(newest["age_h"])
        findings.append(
            Finding.of(
                "aws.rds.snapshot_age",
                Severity.OK if age <= max_age_h else Severity.WARNING if age <= 2 * max_age_h else Severity.ERROR,
                f"{instance_id}: newest snapshot {newest['snapshot']} ({newest['type']}) is "
                f"{age:.0f} h old (expected under {max_age_h:g} h)",
                value=age,
                threshold=max_age_h,
                unit="h",
            )
        )
    failed = snaps[snaps["status"].isin(["failed", "incompatible-restore", "incompatible-parameters"])]
    if not failed.empty:
        findings.append(
            Finding.of(
                "aws.rds.snapshot_failed",
                Severity.ERROR,
                f"{len(failed)} snapshot(s) failed: {', '.join(failed['snapshot'][:5])}",
                value=len(failed),
                threshold=0,
                unit="snapshots",
            )
        )
    return findings


def events(instance_id: str, window: Window, *, aws: Aws | None = None) -> pd.DataFrame:
    """RDS events for the instance in the window (failovers, reboots, backups, storage changes)."""
    found = aws_or_default(aws).paginate(
        "rds",
        "describe_events",
        "Events",
        limit=500,
        SourceIdentifier=instance_id,
        SourceType="db-instance",
        StartTime=window.start,
        EndTime=window.end,
    )
    in_window = [e for e in found if e.get("Date") is None or window.start <= e["Date"] <= window.end]
    return items_table(in_window, EVENT_COLUMNS)  # filtered here too: in case the API ignores the range


def pick_snapshot(snaps: pd.DataFrame, *, before: Any = None, snapshot_id: str = "") -> dict[str, Any] | None:
    """The snapshot to restore: by id, else the newest `available` one created before `before` (default: any)."""
    if snapshot_id:
        chosen = snaps[snaps["snapshot"] == snapshot_id]
        return chosen.iloc[0].to_dict() if not chosen.empty else None
    usable = snaps[snaps["status"] == "available"]
    if before is not None:
        limit = pd.Timestamp(before)
        limit = limit.tz_localize("UTC") if limit.tzinfo is None else limit.tz_convert("UTC")
        usable = usable[pd.to_datetime(usable["created"], utc=True) < limit]
    if usable.empty:
        return None
    return usable.sort_values("created", ascending=False).iloc[0].to_dict()


def snapshot_choice_finding(chosen: dict[str, Any] | None, *, before: Any = None, snapshot_id: str = "") -> Finding:
    """OK naming the snapshot a restore would use, or ERROR when there is none to use."""
    if chosen is None:
        wanted = (
            f"snapshot {snapshot_id}"
            if snapshot_id
            else "an available snapshot" + (f" created before {before}" if before else "")
        )
        return Finding.of("aws.rds.snapshot_choice", Severity.ERROR, f"no {wanted}: nothing to restore")
    return Finding.ok(
        "aws.rds.snapshot_choice",
        f"restore from {chosen['snapshot']} ({chosen.get('type')}, created {chosen['created']})",
        value=chosen.get("age_h"),
        unit="h",
    )


def restore_test_finding(
    restore: pd.DataFrame | None,
    verified: list[Finding],
    delete: pd.DataFrame | None,
    *,
    temp_instance_id: str,
    snapshot_id: str | None,
) -> Finding:
    """The monthly backup integrity test's result, recorded as one finding: restored, row counts as expected,
    temporary instance deleted (OK); any step that failed says which (ERROR), a leftover instance is a WARNING."""

    def outcome(frame: pd.DataFrame | None) -> tuple[str, str]:
        if frame is None or frame.empty:
            return "not planned", ""
        return str(frame["status"].iloc[0]), str(frame["detail"].iloc[0] or "")

    def result(severity: Severity, message: str, **extra: Any) -> Finding:
        return Finding.of("aws.rds.restore_test", severity, message, **extra)

    restored, restore_detail = outcome(restore)
    deleted, delete_detail = outcome(delete)
    if snapshot_id is None:
        return result(Severity.ERROR, "no available snapshot to test: the backups are not usable")
    if restored in ("planned", "not planned"):
        return result(Severity.INFO, f"restore test of {snapshot_id} not run ({restore_detail or 'nothing planned'})")
    if restored != "applied":
        return result(Severity.ERROR, f"restore of {snapshot_id} {restored}: {restore_detail}")
    counts = [f for f in verified if f.check == "postgres.row_count"]
    bad = [f for f in counts if f.severity != Severity.OK]
    left = "" if deleted == "applied" else f"; the temporary instance {temp_instance_id} was NOT deleted ({deleted}: "
    left += "" if deleted == "applied" else f"{delete_detail}): delete it by hand"
    if bad:
        return result(
            Severity.ERROR,
            f"snapshot {snapshot_id} restored, but {len(bad)} of {len(counts)} table(s) differ from what was expected: "
            + "; ".join(f.message for f in bad[:3])
            + left,
            value=len(bad),
            threshold=0,
            unit="tables",
        )
    if not counts:
        return result(
            Severity.WARNING,
            f"snapshot {snapshot_id} restored to {temp_instance_id}, but no table was verified (name verify_tables)"
            + left,
            value=0,
            unit="tables",
        )
    return result(
        Severity.OK if deleted == "applied" else Severity.WARNING,
        f"snapshot {snapshot_id} restored to {temp_instance_id}, {len(counts)} table(s) verified as expected"
        + ("; the temporary instance was deleted" if deleted == "applied" else left),
        value=len(counts),
        unit="tables",
    )
