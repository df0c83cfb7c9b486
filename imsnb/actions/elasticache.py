"""ElastiCache targets: the cache cluster upgrade (runbook: Scaling Operations › Cache Cluster Upgrade) — a snapshot of
the old cluster, then a new cluster created from it (which is how ElastiCache warms a cluster), each waited for."""

from __future__ import annotations

from typing import Any

from imsnb.actions.gate import Plan, wait_for_status
from imsnb.aws import aws_or_default, if_exists

__all__ = [
    "elasticache_create_from_snapshot_action",
    "elasticache_snapshot_action",
]

# --- ElastiCache: the cache cluster upgrade (Scaling Operations › Cache Cluster Upgrade) --------------------------


def _cache_cluster(aws: Any, cluster_id: str) -> dict[str, Any] | None:
    found = if_exists(
        lambda: aws_or_default(aws).call("elasticache", "describe_cache_clusters", CacheClusterId=cluster_id)
    )
    return next(iter((found or {}).get("CacheClusters", [])), None)


def _cache_snapshot(aws: Any, name: str) -> dict[str, Any] | None:
    found = if_exists(lambda: aws_or_default(aws).call("elasticache", "describe_snapshots", SnapshotName=name))
    return next(iter((found or {}).get("Snapshots", [])), None)


def elasticache_snapshot_action(
    cluster_id: str, snapshot_name: str, *, wait_s: float = 480.0, poll_s: float = 10.0, aws: Any = None
) -> Plan:
    """`aws elasticache create-snapshot` of the old cluster, waited for (the runbook's `BGSAVE`): the new cluster
    is then created from it, already warm."""

    def recheck() -> str | None:
        now = _cache_cluster(aws, cluster_id)
        if now is None:
            return f"cache cluster {cluster_id} not found"
        if now.get("CacheClusterStatus") != "available":
            return f"cache cluster {cluster_id} is {now.get('CacheClusterStatus')!r}, not 'available'"
        if _cache_snapshot(aws, snapshot_name) is not None:
            return f"a snapshot named {snapshot_name} already exists: choose another snapshot_name"
        return None

    def apply() -> str:
        aws_or_default(aws).call(
            "elasticache", "create_snapshot", CacheClusterId=cluster_id, SnapshotName=snapshot_name
        )
        waited = wait_for_status(
            lambda: (_cache_snapshot(aws, snapshot_name) or {}).get("SnapshotStatus"),
            "available",
            wait_s=wait_s,
            poll_s=poll_s,
            what=f"snapshot {snapshot_name}",
        )
        return f"snapshot {snapshot_name} of {cluster_id} available after {waited:.0f} s"

    return Plan(
        action="elasticache_snapshot",
        target=cluster_id,
        reason="warm the new cluster with the old one's data",
        expected_effect=f"a snapshot {snapshot_name}; the node forks to write it (brief extra memory and latency)",
        undo=f"aws elasticache delete-snapshot --snapshot-name {snapshot_name}",
        command=f"aws elasticache create-snapshot --cache-cluster-id {cluster_id} --snapshot-name {snapshot_name}",
        recheck=recheck,
        apply=apply,
    )


def elasticache_create_from_snapshot_action(
    new_cluster_id: str,
    snapshot_name: str,
    *,
    node_type: str,
    num_nodes: int = 1,
    wait_s: float = 480.0,
    poll_s: float = 10.0,
    aws: Any = None,
) -> Plan:
    """The runbook's `aws elasticache create-cache-cluster` with the target config, from the snapshot, waited for
    until available (stopping short of the cell timeout: `wait_deadline`). The old cluster is not touched."""

    def recheck() -> str | None:
        if _cache_cluster(aws, new_cluster_id) is not None:
            return f"a cache cluster named {new_cluster_id} already exists: choose another new_cluster_id"
        snap = _cache_snapshot(aws, snapshot_name)
        if snap is None or snap.get("SnapshotStatus") != "available":
            return f"snapshot {snapshot_name} is not available (was the snapshot step applied?)"
        return None

    def apply() -> str:
        aws_or_default(aws).call(
            "elasticache",
            "create_cache_cluster",
            CacheClusterId=new_cluster_id,
            SnapshotName=snapshot_name,
            Engine="redis",
            CacheNodeType=node_type,
            NumCacheNodes=int(num_nodes),
        )
        waited = wait_for_status(
            lambda: (_cache_cluster(aws, new_cluster_id) or {}).get("CacheClusterStatus"),
            "available",
            wait_s=wait_s,
            poll_s=poll_s,
            what=f"cache cluster {new_cluster_id}",
        )
        return f"{new_cluster_id} ({num_nodes} x {node_type}) available after {waited:.0f} s"

    return Plan(
        action="elasticache_create_cluster",
        target=new_cluster_id,
        reason=f"the target config: {num_nodes} x {node_type}, warmed from {snapshot_name}",
        expected_effect=f"a new cluster {new_cluster_id} with the snapshot's data; the old one keeps serving",
        undo=f"aws elasticache delete-cache-cluster --cache-cluster-id {new_cluster_id}",
        command=f"aws elasticache create-cache-cluster --cache-cluster-id {new_cluster_id} --engine redis "
        f"--cache-node-type {node_type} --num-cache-nodes {num_nodes} --snapshot-name {snapshot_name} && "
        f"aws elasticache wait cache-cluster-available --cache-cluster-id {new_cluster_id}",
        recheck=recheck,
        apply=apply,
    )
