"""CloudWatch metrics over the incident window: many metrics per GetMetricData call, one tidy DataFrame.

The runbook's `aws cloudwatch get-metric-statistics ...` one metric at a time becomes one batched call per
500 metrics, with the period chosen so one call stays within the API's datapoint limit. The frame carries the span
it asked for (`imsnb.period.frame_period`); every judge fed by it (here, `imsnb.aws.bottleneck`,
`imsnb.aws.elasticache`) puts that span on its finding as a `window` period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from imsnb.aws import Aws, aws_or_default
from imsnb.findings import Finding, Severity, judge, threshold, unjudged
from imsnb.period import Period, frame_period, tag
from imsnb.window import Window

MAX_QUERIES_PER_CALL = 500
MAX_DATAPOINTS_PER_CALL = 100_800
COLUMNS = ["timestamp", "metric", "dimension", "value"]


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: dict[str, str] = field(default_factory=dict)
    stat: str = "Average"
    label: str = ""

    @property
    def dimension_text(self) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.dimensions.items()))

    def __hash__(self) -> int:
        return hash((self.namespace, self.name, self.dimension_text, self.stat))


def period_for(window: Window, queries: int, minimum: int = 60) -> int:
    """The smallest multiple of 60 s that keeps `queries` metrics over `window` within one call's datapoints."""
    per_metric = MAX_DATAPOINTS_PER_CALL // max(1, min(queries, MAX_QUERIES_PER_CALL))
    period = max(minimum, math.ceil(window.seconds / max(1, per_metric)))
    return int(math.ceil(period / 60) * 60)


def metrics(
    metric_list: list[Metric], window: Window, *, aws: Aws | None = None, period: int | None = None
) -> pd.DataFrame:
    """Datapoints of every metric over `window`: columns timestamp (UTC), metric, dimension, value; the frame
    carries the span queried (`frame_period`).

    One GetMetricData call per 500 metrics (plus its NextToken pages), whatever the number charted.
    """
    aws = aws_or_default(aws)
    period = period or period_for(window, len(metric_list))
    rows = []
    for offset in range(0, len(metric_list), MAX_QUERIES_PER_CALL):
        batch = metric_list[offset : offset + MAX_QUERIES_PER_CALL]
        queries = [
            {
                "Id": f"m{i}",
                "Label": m.label or m.name,
                "MetricStat": {
                    "Metric": {
                        "Namespace": m.namespace,
                        "MetricName": m.name,
                        "Dimensions": [{"Name": k, "Value": v} for k, v in m.dimensions.items()],
                    },
                    "Period": period,
                    "Stat": m.stat,
                },
                "ReturnData": True,
            }
            for i, m in enumerate(batch)
        ]
        token = None
        while True:
            kwargs = {
                "MetricDataQueries": queries,
                "StartTime": window.start,
                "EndTime": window.end,
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            reply = aws.call("cloudwatch", "get_metric_data", **kwargs)
            for result in reply.get("MetricDataResults", []):
                metric = batch[int(result["Id"][1:])]
                for stamp, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                    rows.append(
                        (
                            pd.Timestamp(stamp).tz_convert("UTC"),
                            metric.label or metric.name,
                            metric.dimension_text,
                            float(value),
                        )
                    )
            token = reply.get("NextToken")
            if not token:
                break
    frame = pd.DataFrame(rows, columns=COLUMNS).sort_values(["metric", "timestamp"]).reset_index(drop=True)
    return tag(frame, Period(window.start, window.end, "window", f"CloudWatch, {period} s datapoints"))


# --- the runbook's metrics ---------------------------------------------------------------------------------------


def rds_metric_list(instance_id: str) -> list[Metric]:
    dims = {"DBInstanceIdentifier": instance_id}
    return [
        Metric("AWS/RDS", "CPUUtilization", dims, "Maximum", "CPUUtilization"),
        Metric("AWS/RDS", "DatabaseConnections", dims, "Maximum", "DatabaseConnections"),
        Metric("AWS/RDS", "FreeStorageSpace", dims, "Minimum", "FreeStorageSpace"),
        Metric("AWS/RDS", "ReplicaLag", dims, "Maximum", "ReplicaLag"),
        Metric("AWS/RDS", "ReadIOPS", dims, "Average", "ReadIOPS"),
        Metric("AWS/RDS", "WriteIOPS", dims, "Average", "WriteIOPS"),
    ]


def ecs_metric_list(cluster: str, service: str) -> list[Metric]:
    dims = {"ClusterName": cluster, "ServiceName": service}
    return [
        Metric("AWS/ECS", "CPUUtilization", dims, "Average", "CPUUtilization"),
        Metric("AWS/ECS", "MemoryUtilization", dims, "Average", "MemoryUtilization"),
    ]


def elasticache_metric_list(cluster_id: str) -> list[Metric]:
    dims = {"CacheClusterId": cluster_id}
    return [
        Metric("AWS/ElastiCache", "CPUUtilization", dims, "Average", "CPUUtilization"),
        Metric("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", dims, "Maximum", "DatabaseMemoryUsagePercentage"),
        Metric("AWS/ElastiCache", "CacheHitRate", dims, "Average", "CacheHitRate"),
        Metric("AWS/ElastiCache", "Evictions", dims, "Sum", "Evictions"),
    ]


def rds_metrics(instance_id: str, window: Window, *, aws: Aws | None = None) -> pd.DataFrame:
    """RDS CPUUtilization, DatabaseConnections, FreeStorageSpace, ReplicaLag, Read/WriteIOPS: one call."""
    return metrics(rds_metric_list(instance_id), window, aws=aws)


def ecs_metrics(cluster: str, service: str, window: Window, *, aws: Aws | None = None) -> pd.DataFrame:
    return metrics(ecs_metric_list(cluster, service), window, aws=aws)


def elasticache_metrics(cluster_id: str, window: Window, *, aws: Aws | None = None) -> pd.DataFrame:
    return metrics(elasticache_metric_list(cluster_id), window, aws=aws)


def series(frame: pd.DataFrame, metric: str) -> pd.Series:
    """One metric's values indexed by timestamp."""
    rows = frame[frame["metric"] == metric]
    return pd.Series(rows["value"].to_numpy(), index=pd.DatetimeIndex(rows["timestamp"]), name=metric)


# --- findings ---------------------------------------------------------------------------------------------------


def rds_cpu_finding(frame: pd.DataFrame, instance_id: str) -> Finding:
    """The window's peak CPU against the catalogue's level (the runbook's 80%), with how long it stayed above."""
    cpu = series(frame, "CPUUtilization")
    if cpu.empty:
        message = f"no CPUUtilization datapoints for {instance_id} in the window"
        return unjudged("aws.rds.cpu", Severity.INFO, message, period=frame_period(frame))
    peak = float(cpu.max())
    line = threshold("aws.rds.cpu").warning
    above = int((cpu >= line).sum())
    return judge(
        "aws.rds.cpu",
        round(peak, 1),
        f"{instance_id}: CPU peaked at {peak:.0f}% ({cpu.idxmax():%H:%M} UTC), mean {cpu.mean():.0f}%; "
        f"{above} of {len(cpu)} datapoints at or above {line:g}%",
        period=frame_period(frame),
    )


def rds_free_storage_finding(frame: pd.DataFrame, instance_id: str, allocated_gib: float | None) -> Finding:
    """The lowest FreeStorageSpace in the window against the runbook's 20% free (`host.disk_free`'s level)."""
    limit = threshold("host.disk_free")
    free = series(frame, "FreeStorageSpace")
    if free.empty or not allocated_gib:
        message = f"no FreeStorageSpace datapoints or allocated size for {instance_id}"
        return unjudged("aws.rds.free_storage", Severity.INFO, message, limit=limit, period=frame_period(frame))
    ratio = float(free.min()) / (allocated_gib * 2**30)
    return judge(
        "aws.rds.free_storage",
        round(ratio, 4),
        f"{instance_id}: {free.min() / 2**30:.1f} of {allocated_gib:g} GiB free at the lowest ({ratio:.0%})",
        limit=limit,
        period=frame_period(frame),
    )


def trend(values: pd.Series) -> tuple[float, float | None]:
    """Least-squares slope in units per hour, and hours until the fitted line reaches 100 (None if not rising)."""
    if len(values) < 3:
        return 0.0, None
    hours = (values.index - values.index[0]).total_seconds().to_numpy() / 3600
    slope, intercept = np.polyfit(hours, values.to_numpy(dtype=float), 1)
    if slope <= 1e-9:
        return float(slope), None
    now_value = slope * hours[-1] + intercept
    return float(slope), max(0.0, float((100 - now_value) / slope))


def memory_trend_finding(frame: pd.DataFrame, service: str, *, horizon_h: float = 24) -> Finding:
    """A climbing memory line (the runbook's "Memory Leak / OOM Killer"): WARNING when the fitted trend reaches
    100% within `horizon_h` hours, ERROR within a quarter of it."""
    memory = series(frame, "MemoryUtilization")
    period = frame_period(frame)
    if memory.empty:
        return Finding.of(
            "aws.ecs.memory_trend",
            Severity.INFO,
            f"no MemoryUtilization datapoints for {service}",
            unit="%/h",
            period=period,
        )
    slope, to_full = trend(memory)
    if to_full is None or to_full > horizon_h:
        return Finding.ok(
            "aws.ecs.memory_trend",
            f"{service}: memory {memory.iloc[-1]:.0f}%, trend {slope:+.2f}%/h: no exhaustion in sight",
            value=round(slope, 3),
            unit="%/h",
            period=period,
        )
    severity = Severity.ERROR if to_full <= horizon_h / 4 else Severity.WARNING
    return Finding.of(
        "aws.ecs.memory_trend",
        severity,
        f"{service}: memory {memory.iloc[-1]:.0f}% and climbing {slope:+.2f}%/h: 100% in about {to_full:.1f} h",
        value=round(slope, 3),
        unit="%/h",
        period=period,
    )


def baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """Per metric and dimension: datapoints, min, mean, p95, max (the daily baseline table), over the frame's span."""
    columns = ["metric", "dimension", "datapoints", "min", "mean", "p95", "max"]
    if frame.empty:
        table = pd.DataFrame(columns=columns)
    else:
        grouped = frame.groupby(["metric", "dimension"])["value"]
        table = grouped.agg(datapoints="size", min="min", mean="mean", max="max")
        table["p95"] = grouped.quantile(0.95)
        table = table.reset_index()[columns].round(3)
    period = frame_period(frame)
    return table if period is None else tag(table, period)


def baseline_finding(table: pd.DataFrame, expected_metrics: int) -> Finding:
    """OK when every metric had datapoints; WARNING naming those without (an agent or exporter is down)."""
    seen = len(table)
    if seen >= expected_metrics:
        message, severity = f"baseline of {seen} metrics captured", Severity.OK
    else:
        message = f"only {seen} of {expected_metrics} metrics had datapoints in the window"
        severity = Severity.WARNING
    return Finding.of(
        "aws.baseline",
        severity,
        message,
        value=seen,
        threshold=expected_metrics,
        unit="metrics",
        period=frame_period(table),
    )
