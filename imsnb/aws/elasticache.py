"""ElastiCache: clusters with node type, node count, engine and status."""

from __future__ import annotations

import pandas as pd

from imsnb.aws import Aws, _aws
from imsnb.findings import Finding, Severity


def clusters(cluster_id: str | None = None, *, aws: Aws | None = None) -> pd.DataFrame:
    kwargs = {"CacheClusterId": cluster_id} if cluster_id else {}
    found = _aws(aws).paginate("elasticache", "describe_cache_clusters", "CacheClusters", limit=500, **kwargs)
    rows = [
        {
            "cluster": c["CacheClusterId"],
            "status": c.get("CacheClusterStatus"),
            "node_type": c.get("CacheNodeType"),
            "nodes": c.get("NumCacheNodes"),
            "engine": f"{c.get('Engine')} {c.get('EngineVersion', '')}".strip(),
        }
        for c in found
    ]
    return pd.DataFrame(rows, columns=["cluster", "status", "node_type", "nodes", "engine"])


def status_findings(table: pd.DataFrame) -> list[Finding]:
    return [
        Finding(
            "aws.elasticache.status",
            "aws",
            Severity.OK if row.status == "available" else Severity.WARNING,
            row.status,
            "available",
            "",
            f"{row.cluster}: {row.status}, {row.nodes} x {row.node_type}",
        )
        for row in table.itertuples()
    ]
