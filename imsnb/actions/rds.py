"""RDS targets: resize one size up the runbook's ladder (Option B), fail over (Option C), restore a snapshot, and the
promotion checklist that follows a restore."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from imsnb.actions.gate import Plan, wait_deadline
from imsnb.aws import aws_or_default
from imsnb.aws import bottleneck as bn

__all__ = [
    "RDS_CLASS_LADDER",
    "RESTORE_POLL_S",
    "RESTORE_WAIT_S",
    "bottleneck_actions",
    "next_rds_class",
    "promotion_checklist",
    "rds_failover_action",
    "rds_resize_action",
    "rds_restore_action",
    "rds_storage_increase_action",
    "resize_target_class",
]

RESTORE_WAIT_S = 1800.0
RESTORE_POLL_S = 15.0

RDS_CLASS_LADDER = ["db.t3.micro", "db.t3.small", "db.t3.medium", "db.t3.large", "db.t3.xlarge", "db.t3.2xlarge"]


def next_rds_class(current: str) -> str | None:
    """One size up on the runbook's ladder (db.t3.micro → small → medium ...); None at the top or off the ladder."""
    if current in RDS_CLASS_LADDER and current != RDS_CLASS_LADDER[-1]:
        return RDS_CLASS_LADDER[RDS_CLASS_LADDER.index(current) + 1]
    return None


def resize_target_class(current: str, asked: str) -> str:
    """The class a resize goes to: `asked`, or with "next" one size up the ladder from `current`.

    ValueError (one line, what to do) when "next" has nowhere to go: `current` is the ladder's top or off it."""
    asked = (asked or "").strip()
    if asked != "next":
        if not asked:
            raise ValueError("no RDS class to resize to: name one (e.g. db.t3.large) or 'next'")
        return asked
    following = next_rds_class(current)
    if following is None:
        where = "the top of" if current == RDS_CLASS_LADDER[-1] else "not on"
        raise ValueError(
            f"{current} is {where} the runbook's ladder ({' → '.join(RDS_CLASS_LADDER)}): name the class to resize to"
        )
    return following


def describe_instance(aws: Any, instance_id: str) -> dict[str, Any]:
    found = aws_or_default(aws).call("rds", "describe_db_instances", DBInstanceIdentifier=instance_id)["DBInstances"]
    if not found:
        raise LookupError(f"RDS instance {instance_id} not found")
    return found[0]


def restore_blocked(aws: Any, snapshot_id: str, new_instance_id: str, *, if_taken: str) -> str | None:
    """Why a restore of `snapshot_id` to a new instance `new_instance_id` cannot start now: the snapshot is no longer
    available, or an instance of that name exists (`if_taken` says what then); None when it can."""
    found = aws_or_default(aws).call("rds", "describe_db_snapshots", DBSnapshotIdentifier=snapshot_id)["DBSnapshots"]
    if not found or found[0].get("Status") != "available":
        return f"snapshot {snapshot_id} is no longer available"
    existing = aws_or_default(aws).call("rds", "describe_db_instances")["DBInstances"]
    if any(d["DBInstanceIdentifier"] == new_instance_id for d in existing):
        return f"an instance named {new_instance_id} already exists: {if_taken}"
    return None


def rds_resize_action(instance_id: str, to_class: str, *, reason: str = "", aws: Any = None) -> Plan:
    """Option B of the runbook: `aws rds modify-db-instance --db-instance-class ... --apply-immediately`.

    `to_class` "next" means one size up the ladder from the instance's class now (`resize_target_class`)."""
    current = describe_instance(aws, instance_id)
    from_class = current["DBInstanceClass"]
    to_class = resize_target_class(from_class, to_class)
    multi_az = bool(current.get("MultiAZ"))

    def recheck() -> str | None:
        now = describe_instance(aws, instance_id)
        if now.get("DBInstanceStatus") != "available":
            return f"{instance_id} is {now.get('DBInstanceStatus')!r}, not 'available'"
        if now["DBInstanceClass"] != from_class:
            return f"{instance_id} is already {now['DBInstanceClass']} (planned from {from_class})"
        return None

    def apply() -> str:
        aws_or_default(aws).call(
            "rds",
            "modify_db_instance",
            DBInstanceIdentifier=instance_id,
            DBInstanceClass=to_class,
            ApplyImmediately=True,
        )
        now = describe_instance(aws, instance_id)
        pending = (now.get("PendingModifiedValues") or {}).get("DBInstanceClass")
        return f"{instance_id}: class {now['DBInstanceClass']}" + (f" (pending {pending})" if pending else "")

    return Plan(
        action="rds_resize",
        target=instance_id,
        reason=reason or f"scale up from {from_class}",
        expected_effect=f"{from_class} → {to_class}; "
        + ("a Multi-AZ failover of a few seconds" if multi_az else "a restart: minutes of downtime (not Multi-AZ)"),
        undo=f"modify-db-instance --db-instance-class {from_class} --apply-immediately",
        command=f"aws rds modify-db-instance --db-instance-identifier {instance_id} "
        f"--db-instance-class {to_class} --apply-immediately",
        recheck=recheck,
        apply=apply,
    )


def _cluster(aws: Any, cluster_id: str) -> dict[str, Any]:
    found = aws_or_default(aws).call("rds", "describe_db_clusters", DBClusterIdentifier=cluster_id)["DBClusters"]
    if not found:
        raise LookupError(f"RDS cluster {cluster_id} not found")
    return found[0]


def _writer(cluster: dict[str, Any]) -> str | None:
    members = cluster.get("DBClusterMembers", [])
    return next((m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")), None)


def rds_failover_action(cluster_id: str, *, reason: str = "", aws: Any = None) -> Plan:
    """Option C of the runbook: `aws rds failover-db-cluster` to a replica, if the cluster has one."""
    planned = _cluster(aws, cluster_id)
    members = planned.get("DBClusterMembers", [])
    writer = _writer(planned)
    readers = [m["DBInstanceIdentifier"] for m in members if not m.get("IsClusterWriter")]

    def recheck() -> str | None:
        now = _cluster(aws, cluster_id)
        if now.get("Status") != "available":
            return f"cluster {cluster_id} is {now.get('Status')!r}, not 'available'"
        now_writer = _writer(now)
        if now_writer != writer:
            return f"the writer changed since the plan ({writer} → {now_writer})"
        if not readers:
            return "no replica to fail over to"
        return None

    def apply() -> str:
        aws_or_default(aws).call("rds", "failover_db_cluster", DBClusterIdentifier=cluster_id)
        now = _cluster(aws, cluster_id)
        return f"failover requested: writer {writer} → {_writer(now)}"

    return Plan(
        action="rds_failover",
        target=cluster_id,
        reason=reason or "the writer is degraded",
        expected_effect=f"a replica ({', '.join(readers) or 'none available'}) becomes the writer; "
        "connections drop for about a minute",
        undo="fail over again to the old writer once it is healthy",
        command=f"aws rds failover-db-cluster --db-cluster-identifier {cluster_id}",
        recheck=recheck,
        apply=apply,
    )


def rds_restore_action(
    snapshot: dict[str, Any],
    new_instance_id: str,
    *,
    instance_class: str = "",
    wait_s: float = RESTORE_WAIT_S,
    poll_s: float = RESTORE_POLL_S,
    aws: Any = None,
) -> Plan:
    """Restore `snapshot` (a row of `rds.snapshots`) to a new instance and wait until it is available."""
    snapshot_id = snapshot["snapshot"]

    def recheck() -> str | None:
        return restore_blocked(aws, snapshot_id, new_instance_id, if_taken="choose another new_instance_id")

    def apply() -> str:
        extra = {"DBInstanceClass": instance_class} if instance_class else {}
        aws_or_default(aws).call(
            "rds",
            "restore_db_instance_from_db_snapshot",
            DBInstanceIdentifier=new_instance_id,
            DBSnapshotIdentifier=snapshot_id,
            **extra,
        )
        started = time.monotonic()
        deadline, bounded = wait_deadline(wait_s)
        while True:
            now = describe_instance(aws, new_instance_id)
            status = now.get("DBInstanceStatus")
            if status == "available":
                endpoint = now.get("Endpoint") or {}
                return (
                    f"{new_instance_id} available after {time.monotonic() - started:.0f} s at "
                    f"{endpoint.get('Address')}:{endpoint.get('Port')}"
                )
            if status in ("failed", "incompatible-restore", "incompatible-parameters", "deleting"):
                raise RuntimeError(f"{new_instance_id} is {status}")
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the restore was started but {new_instance_id} is still {status!r} after "
                    f"{time.monotonic() - started:.0f} s ({bounded or f'wait_s is {wait_s:g} s'}); keep waiting by "
                    f"hand: aws rds wait db-instance-available --db-instance-identifier {new_instance_id}"
                )
            time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))

    created = snapshot.get("created")
    return Plan(
        action="rds_restore",
        target=new_instance_id,
        reason=f"restore snapshot {snapshot_id} (created {created})",
        expected_effect=f"a new instance {new_instance_id} with the data as of {created}; the old one is untouched",
        undo=f"aws rds delete-db-instance --db-instance-identifier {new_instance_id}",
        command=f"aws rds restore-db-instance-from-db-snapshot --db-instance-identifier {new_instance_id} "
        f"--db-snapshot-identifier {snapshot_id} && aws rds wait db-instance-available "
        f"--db-instance-identifier {new_instance_id}",
        recheck=recheck,
        apply=apply,
    )


def promotion_checklist(
    chosen: dict[str, Any] | None,
    restore: pd.DataFrame | None,
    verified: list[Any],
    *,
    new_instance_id: str,
) -> pd.DataFrame:
    """The runbook's "Promote to primary" steps, each box ticked only from what this run verified; the traffic
    switch-over stays for a person to do and tick."""
    restored = restore is not None and not restore.empty and (restore["status"] == "applied").any()
    counted = [f for f in verified if getattr(f, "check", "") == "postgres.row_count"]
    matching = [f for f in counted if f.severity.name == "OK"]
    rows = [
        (
            "Snapshot chosen",
            chosen is not None,
            f"{chosen['snapshot']} created {chosen['created']}" if chosen is not None else "no snapshot found",
        ),
        (
            f"Recovery instance {new_instance_id} restored and available",
            bool(restored),
            restore["detail"].iloc[0] if restore is not None and not restore.empty else "not restored in this run",
        ),
        (
            "Data verified (row counts as expected)",
            bool(counted) and len(matching) == len(counted),
            f"{len(matching)} of {len(counted)} table(s) as expected" if counted else "no table counted",
        ),
        ("Stop traffic to the old instance", False, "by hand: scale the API down or put it in maintenance"),
        ("Update the connection string to the new instance", False, "by hand: DB_HOST / the secret the API reads"),
        ("Update DNS / load balancer", False, "by hand"),
        ("Keep the old instance until the incident is closed", False, "by hand: do not delete it yet"),
    ]
    return pd.DataFrame(
        [{"step": step, "done": "[x]" if done else "[ ]", "evidence": evidence} for step, done, evidence in rows]
    )


# --- RDS: vertical scaling sized from the bottleneck (Vertical Scaling › Identify bottleneck) --------------------


def rds_storage_increase_action(
    instance_id: str, *, to_gib: int | None = None, to_iops: int | None = None, reason: str = "", aws: Any = None
) -> Plan:
    """`aws rds modify-db-instance --allocated-storage` (or `--iops`): a storage step of its own, never bundled with
    a class change. RDS storage only grows; the re-check makes sure it is still the size planned from."""
    current = describe_instance(aws, instance_id)
    from_gib, from_iops = int(current.get("AllocatedStorage") or 0), current.get("Iops")
    change = {"AllocatedStorage": int(to_gib)} if to_gib else {"Iops": int(to_iops or 0)}
    what = f"{from_gib} → {to_gib} GiB" if to_gib else f"{from_iops or 'baseline'} → {to_iops} provisioned IOPS"
    flag = f"--allocated-storage {to_gib}" if to_gib else f"--iops {to_iops}"

    def recheck() -> str | None:
        now = describe_instance(aws, instance_id)
        if now.get("DBInstanceStatus") != "available":
            return f"{instance_id} is {now.get('DBInstanceStatus')!r}, not 'available'"
        if int(now.get("AllocatedStorage") or 0) != from_gib or now.get("Iops") != from_iops:
            return f"{instance_id}'s storage changed since the plan ({now.get('AllocatedStorage')} GiB)"
        return None

    def apply() -> str:
        aws_or_default(aws).call(
            "rds", "modify_db_instance", DBInstanceIdentifier=instance_id, ApplyImmediately=True, **change
        )
        now = describe_instance(aws, instance_id)
        pending = now.get("PendingModifiedValues") or {}
        return f"{instance_id}: {now.get('AllocatedStorage')} GiB" + (f" (pending {pending})" if pending else "")

    return Plan(
        action="rds_storage_increase",
        target=instance_id,
        reason=reason or "storage is the bottleneck",
        expected_effect=f"{what}, online (no restart); the volume optimizes for hours after, and another storage "
        "change is refused for 6 hours",
        undo="none: RDS storage cannot shrink (a smaller instance needs a dump and restore)",
        command=f"aws rds modify-db-instance --db-instance-identifier {instance_id} {flag} --apply-immediately",
        recheck=recheck,
        apply=apply,
    )


def bottleneck_actions(table: pd.DataFrame, cap: dict[str, Any], *, aws: Any = None) -> list[Plan]:
    """The runbook's "CPU: increase vCPU / Memory: increase RAM / Disk: add storage", for the bottleneck found:
    a class with more vCPU or more RAM (one resize), or a storage increase as its own action."""

    found = bn.bottleneck(table)
    if found is None:
        return []
    row = table[table["resource"] == found].iloc[0]
    instance, klass = cap["instance"], cap["class"]
    why = f"{found} is the bottleneck: {row['used_ratio']:.0%} used against a limit of {row['limit']:.0%}"
    if found in ("cpu", "memory"):
        to = bn.bigger_class(klass, found)
        if to is None:
            return []
        vcpu, ram = bn.CLASS_SPECS[to]
        more = f"{vcpu} vCPU" if found == "cpu" else f"{ram} GiB RAM"
        return [rds_resize_action(instance, to, reason=f"{why}; {to} has {more}", aws=aws)]
    step = bn.storage_step(table, cap, found)
    if step is None:
        return []
    return [
        rds_storage_increase_action(
            instance, to_gib=step.get("allocated_gib"), to_iops=step.get("iops"), reason=why, aws=aws
        )
    ]
