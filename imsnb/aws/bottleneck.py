"""The runbook's "Vertical Scaling › Identify bottleneck: CPU, memory, disk" for an RDS instance.

CPU, FreeableMemory, FreeStorageSpace and IOPS are read together (one GetMetricData call) and each is put against
what the instance class and its volume can give: CPU against 80%, memory used (class RAM less FreeableMemory)
against 90%, storage used against 80% (20% free), IOPS against the volume's baseline. The bottleneck is the one
furthest past its limit; the plan sizes the step from it (a class with more vCPU, or more RAM; storage on its own).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from imsnb.aws import Aws, aws_or_default
from imsnb.aws.cloudwatch import Metric, metrics, rds_metric_list, series
from imsnb.findings import Finding, Severity, judge, threshold, unjudged
from imsnb.period import frame_period, tag
from imsnb.window import Window

GIB = 2**30
# vCPU and RAM (GiB) of the common RDS classes, from AWS's instance class table.
_BURSTABLE = {
    "micro": (2, 1),
    "small": (2, 2),
    "medium": (2, 4),
    "large": (2, 8),
    "xlarge": (4, 16),
    "2xlarge": (8, 32),
}
_GENERAL = {
    "large": (2, 8),
    "xlarge": (4, 16),
    "2xlarge": (8, 32),
    "4xlarge": (16, 64),
    "8xlarge": (32, 128),
    "12xlarge": (48, 192),
    "16xlarge": (64, 256),
    "24xlarge": (96, 384),
}
_MEMORY = {size: (cpu, ram * 2) for size, (cpu, ram) in _GENERAL.items()}
CLASS_SPECS: dict[str, tuple[int, int]] = {
    f"db.{family}.{size}": spec
    for families, sizes in (
        (("t3", "t4g"), _BURSTABLE),
        (("m5", "m6g", "m6i", "m7g"), _GENERAL),
        (("r5", "r6g", "r6i", "r7g"), _MEMORY),
    )
    for family in families
    for size, spec in sizes.items()
}
STORAGE_FREE_AFTER = 0.40  # a storage step leaves this much free
IOPS_USE_AFTER = 0.60  # an IOPS step leaves the p95 at this share of the new baseline
RESOURCES = ["cpu", "memory", "storage", "iops"]
SIZING_METRICS = ("CPUUtilization", "FreeStorageSpace", "ReadIOPS", "WriteIOPS")
COLUMNS = ["resource", "seen", "capacity", "used_ratio", "limit", "over_limit", "severity", "basis"]


def metric_list(instance_id: str) -> list[Metric]:
    """CloudWatch's RDS metrics that size an instance, read as `cloudwatch.rds_metric_list` reads them, and
    FreeableMemory at its lowest (what the class's RAM is measured against)."""
    sizing = [m for m in rds_metric_list(instance_id) if m.name in SIZING_METRICS]
    dims = {"DBInstanceIdentifier": instance_id}
    return [*sizing, Metric("AWS/RDS", "FreeableMemory", dims, "Minimum", "FreeableMemory")]


def load(instance_id: str, window: Window, *, aws: Aws | None = None) -> pd.DataFrame:
    """CPU, FreeableMemory, FreeStorageSpace, Read/WriteIOPS over the window: one call."""
    return metrics(metric_list(instance_id), window, aws=aws)


def capacity(instance_id: str, *, aws: Aws | None = None) -> dict[str, Any]:
    """What the instance has: class, vCPU and RAM (None off the table), allocated storage, storage type and the
    volume's baseline IOPS (gp2: 3 per GiB, 100 to 16,000; gp3: 3,000 or as provisioned; io1/io2: provisioned)."""
    found = aws_or_default(aws).call("rds", "describe_db_instances", DBInstanceIdentifier=instance_id)["DBInstances"]
    if not found:
        raise LookupError(f"RDS instance {instance_id} not found")
    d = found[0]
    klass = d.get("DBInstanceClass", "")
    vcpu, ram = CLASS_SPECS.get(klass, (None, None))
    gib = int(d.get("AllocatedStorage") or 0)
    storage_type = d.get("StorageType") or "gp2"
    provisioned = d.get("Iops")
    if storage_type == "gp2":
        iops = max(100, min(16_000, 3 * gib))
    elif storage_type == "gp3":
        iops = provisioned or 3_000
    elif storage_type in ("io1", "io2"):
        iops = provisioned
    else:  # magnetic
        iops = provisioned or 100
    return {
        "instance": instance_id,
        "class": klass,
        "vcpu": vcpu,
        "ram_gib": ram,
        "allocated_gib": gib,
        "storage_type": storage_type,
        "baseline_iops": iops,
        "provisioned_iops": provisioned,
    }


def _p95(values: pd.Series) -> float | None:
    return None if values.empty else float(values.quantile(0.95))


def pressures(frame: pd.DataFrame, cap: dict[str, Any]) -> pd.DataFrame:
    """Each resource's use against its limit over the window: `over_limit` is used / limit (1 or more: at or past
    the limit). CPU and IOPS at their p95 (sustained, not a blip), memory and storage at their worst."""
    rows = []
    cpu = series(frame, "CPUUtilization")
    cpu_p95 = _p95(cpu)
    rows.append(
        _row("cpu", cpu_p95, 100.0, None if cpu_p95 is None else cpu_p95 / 100, threshold("aws.rds.cpu").warning / 100)
    )
    rows[-1]["basis"] = "p95 of per-minute maximum CPUUtilization (%)"
    free_mem = series(frame, "FreeableMemory")
    ram = cap.get("ram_gib")
    used_mem = None if free_mem.empty or not ram else max(0.0, 1 - float(free_mem.min()) / (ram * GIB))
    rows.append(_row("memory", None if free_mem.empty else float(free_mem.min()) / GIB, ram, used_mem, None))
    rows[-1]["limit"] = threshold("aws.rds.memory_used").warning
    rows[-1]["basis"] = "lowest FreeableMemory (GiB) of the class's RAM" if ram else f"RAM of {cap['class']} unknown"
    free_disk = series(frame, "FreeStorageSpace")
    gib = cap.get("allocated_gib")
    used_disk = None if free_disk.empty or not gib else max(0.0, 1 - float(free_disk.min()) / (gib * GIB))
    rows.append(_row("storage", None if free_disk.empty else float(free_disk.min()) / GIB, gib, used_disk, None))
    rows[-1]["limit"] = 1 - threshold("host.disk_free").warning
    rows[-1]["basis"] = "lowest FreeStorageSpace (GiB) of the allocated storage"
    read, write = series(frame, "ReadIOPS"), series(frame, "WriteIOPS")
    total = read.add(write, fill_value=0) if not (read.empty and write.empty) else read
    iops = _p95(total)
    base = cap.get("baseline_iops")
    rows.append(_row("iops", iops, base, None if iops is None or not base else iops / base, None))
    rows[-1]["limit"] = threshold("aws.rds.iops_used").warning
    rows[-1]["basis"] = f"p95 of ReadIOPS + WriteIOPS of the {cap.get('storage_type')} baseline"
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["over_limit"] = [
        None if u is None or pd.isna(u) else round(u / lim, 3)
        for u, lim in zip(table["used_ratio"], table["limit"], strict=True)
    ]
    table["severity"] = [_severity(r) for r in table.itertuples()]
    period = frame_period(frame)
    return table if period is None else tag(table, period)  # the span the findings below cover


def _row(resource: str, seen: float | None, cap: float | None, used: float | None, limit: float | None) -> dict:
    return {
        "resource": resource,
        "seen": None if seen is None else round(seen, 3),
        "capacity": cap,
        "used_ratio": None if used is None else round(used, 4),
        "limit": limit,
        "over_limit": None,
        "severity": "OK",
        "basis": "",
    }


_CHECKS = {"cpu": "aws.rds.cpu", "memory": "aws.rds.memory_used", "storage": None, "iops": "aws.rds.iops_used"}


def _severity(row: Any) -> str:
    if row.used_ratio is None or pd.isna(row.used_ratio):
        return "INFO"
    if row.resource == "storage":
        return threshold("host.disk_free").severity(1 - row.used_ratio).name
    if row.resource == "cpu":
        return threshold("aws.rds.cpu").severity(row.used_ratio * 100).name
    return threshold(_CHECKS[row.resource]).severity(row.used_ratio).name


def bottleneck(table: pd.DataFrame) -> str | None:
    """The resource furthest past its limit; None when every one is under it."""
    known = table.dropna(subset=["over_limit"])
    if known.empty:
        return None
    worst = known.sort_values("over_limit", ascending=False).iloc[0]
    return str(worst["resource"]) if worst["over_limit"] >= 1 else None


def bottleneck_finding(table: pd.DataFrame, instance_id: str) -> Finding:
    """Names the bottleneck (or says there is none), with every resource's use in the message."""
    found = bottleneck(table)
    parts = [
        f"{r.resource} {r.used_ratio:.0%} of limit {r.limit:.0%}"
        if r.used_ratio is not None and not pd.isna(r.used_ratio)
        else f"{r.resource} unknown"
        for r in table.itertuples()
    ]
    if found is None:
        return Finding.ok(
            "aws.rds.bottleneck",
            f"{instance_id}: no bottleneck ({'; '.join(parts)})",
            evidence=table,
            period=frame_period(table),
        )
    row = table[table["resource"] == found].iloc[0]
    return Finding.of(
        "aws.rds.bottleneck",
        row["severity"],
        f"{instance_id}: {found} is the bottleneck ({'; '.join(parts)}); the plan sizes the step from it",
        value=found,
        evidence=table,
        period=frame_period(table),
    )


def memory_finding(table: pd.DataFrame, instance_id: str) -> Finding:
    row = table[table["resource"] == "memory"].iloc[0]
    if row["used_ratio"] is None or pd.isna(row["used_ratio"]):
        return unjudged(
            "aws.rds.memory_used", Severity.INFO, f"{instance_id}: {row['basis']}", period=frame_period(table)
        )
    return judge(
        "aws.rds.memory_used",
        float(row["used_ratio"]),
        f"{instance_id}: FreeableMemory down to {row['seen']:.2f} of {row['capacity']:g} GiB "
        f"({row['used_ratio']:.0%} used)",
        period=frame_period(table),
    )


def bigger_class(current: str, resource: str) -> str | None:
    """The smallest class of the same family with more vCPU (`cpu`) or more RAM (`memory`), never less of the
    other; None when the family has nothing bigger or the class is unknown."""
    if current not in CLASS_SPECS or resource not in ("cpu", "memory"):
        return None
    family = current.rsplit(".", 1)[0] + "."
    vcpu, ram = CLASS_SPECS[current]
    candidates = sorted(
        (spec, name)
        for name, spec in CLASS_SPECS.items()
        if name.startswith(family)
        and (spec[0] > vcpu and spec[1] >= ram if resource == "cpu" else spec[1] > ram and spec[0] >= vcpu)
    )
    return candidates[0][1] if candidates else None


def storage_step(table: pd.DataFrame, cap: dict[str, Any], resource: str) -> dict[str, int] | None:
    """The storage change for a storage or IOPS bottleneck: enough GiB to leave 40% free (storage), or for the p95
    to be 60% of the baseline (gp2: 3 IOPS a GiB); provisioned IOPS for gp3/io1/io2. At least +10% (RDS's minimum
    step), rounded up to 10 GiB."""
    row = table[table["resource"] == resource].iloc[0]
    gib = int(cap.get("allocated_gib") or 0)
    if row["used_ratio"] is None or pd.isna(row["used_ratio"]) or not gib:
        return None
    floor = math.ceil(gib * 1.1)
    if resource == "storage":
        used_gib = gib * float(row["used_ratio"])
        wanted = math.ceil(used_gib / (1 - STORAGE_FREE_AFTER))
        return {"allocated_gib": int(math.ceil(max(wanted, floor) / 10) * 10)}
    needed_iops = float(row["seen"]) / IOPS_USE_AFTER
    if cap.get("storage_type") == "gp2":
        wanted = math.ceil(needed_iops / 3)
        return {"allocated_gib": int(math.ceil(max(wanted, floor) / 10) * 10)}
    return {"iops": int(math.ceil(needed_iops / 1000) * 1000)}
