"""ElastiCache: clusters with node type, node count, engine and status."""

from __future__ import annotations

import pandas as pd

from imsnb.aws import Aws, aws_or_default, engine, if_exists, items_table
from imsnb.aws.cloudwatch import series
from imsnb.findings import Finding, Severity, judge, unjudged
from imsnb.period import frame_period

CLUSTER_COLUMNS = {
    "cluster": "CacheClusterId",
    "status": "CacheClusterStatus",
    "node_type": "CacheNodeType",
    "nodes": "NumCacheNodes",
    "engine": engine,
}
NODE_COLUMNS = {
    "cluster": "CacheClusterId",
    "node": "CacheNodeId",
    "status": "CacheNodeStatus",
    "address": lambda n: (n.get("Endpoint") or {}).get("Address"),
    "port": lambda n: (n.get("Endpoint") or {}).get("Port"),
}
SNAPSHOT_COLUMNS = {
    "snapshot": "SnapshotName",
    "cluster": "CacheClusterId",
    "status": "SnapshotStatus",
    "source": "SnapshotSource",
    "node_type": "CacheNodeType",
}


def clusters(cluster_id: str | None = None, *, aws: Aws | None = None) -> pd.DataFrame:
    kwargs = {"CacheClusterId": cluster_id} if cluster_id else {}
    found = aws_or_default(aws).paginate("elasticache", "describe_cache_clusters", "CacheClusters", limit=500, **kwargs)
    return items_table(found, CLUSTER_COLUMNS)


def status_findings(table: pd.DataFrame) -> list[Finding]:
    return [
        Finding.of(
            "aws.elasticache.status",
            Severity.OK if row.status == "available" else Severity.WARNING,
            f"{row.cluster}: {row.status}, {row.nodes} x {row.node_type}",
            value=row.status,
            threshold="available",
        )
        for row in table.itertuples()
    ]


def nodes(cluster_id: str, *, aws: Aws | None = None) -> pd.DataFrame:
    """The cluster's nodes with their status and endpoint (`describe-cache-clusters --show-cache-node-info`)."""
    found = aws_or_default(aws).call(
        "elasticache", "describe_cache_clusters", CacheClusterId=cluster_id, ShowCacheNodeInfo=True
    )
    node_items = [
        {**n, "CacheClusterId": c["CacheClusterId"]}
        for c in found.get("CacheClusters", [])
        for n in c.get("CacheNodes", [])
    ]
    return items_table(node_items, NODE_COLUMNS)


def snapshots(cluster_id: str | None = None, *, aws: Aws | None = None) -> pd.DataFrame:
    """ElastiCache snapshots (of one cluster or all): name, status, source, node type."""
    kwargs = {"CacheClusterId": cluster_id} if cluster_id else {}
    found = aws_or_default(aws).paginate("elasticache", "describe_snapshots", "Snapshots", limit=500, **kwargs)
    return items_table(found, SNAPSHOT_COLUMNS)


def usage_findings(frame: pd.DataFrame, cluster_id: str) -> list[Finding]:
    """The window's peak DatabaseMemoryUsagePercentage against the runbook's "Memory: < 90% used", and the
    evictions summed over the window against "Evictions: = 0" (CloudWatch: the window, not the node's lifetime)."""

    found = []
    period = frame_period(frame)  # the span CloudWatch was asked for
    memory = series(frame, "DatabaseMemoryUsagePercentage")
    if memory.empty:
        found.append(unjudged("aws.elasticache.memory_used", Severity.INFO, f"{cluster_id}: no data", period=period))
    else:
        peak = float(memory.max()) / 100
        found.append(
            judge(
                "aws.elasticache.memory_used",
                round(peak, 4),
                f"{cluster_id}: memory peaked at {peak:.0%} of the node ({memory.idxmax():%H:%M} UTC)",
                period=period,
            )
        )
    evictions = series(frame, "Evictions")
    total = float(evictions.sum()) if not evictions.empty else 0.0
    found.append(
        judge(
            "aws.elasticache.evictions",
            int(total),
            f"{cluster_id}: {int(total)} key(s) evicted in the window",
            period=period,
        )
    )
    return found


def nodes_if_exists(cluster_id: str, *, aws: Aws | None = None) -> pd.DataFrame | None:
    """`nodes(cluster_id)`, or None when there is no such cluster (yet)."""
    return if_exists(lambda: nodes(cluster_id, aws=aws))


def endpoint(node_table: pd.DataFrame | None) -> str | None:
    """host:port of the first node with an endpoint."""
    if node_table is None:
        return None
    with_address = node_table.dropna(subset=["address"])
    if with_address.empty:
        return None
    first = with_address.iloc[0]
    return f"{first['address']}:{int(first['port'])}"
