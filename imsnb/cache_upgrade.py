"""The runbook's "Scaling Operations › Cache Cluster Upgrade": the verification and the switch checklist.

The new cluster is created from a snapshot of the old one (how ElastiCache warms a cluster; the runbook's
`BGSAVE` + copy of the dump). Before traffic moves, the keys per database on the new node are compared with the
old one's, through Redis connections named by address; the password (or ACL user) is the usual target's, from the
environment — never a parameter. The switch itself (connection string, redeploy) is a checklist for a person,
ticked only from what this run verified.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from imsnb import cache as cache_source
from imsnb import config
from imsnb.errors import BadParameter
from imsnb.findings import Finding, Severity, judge

COMPARE_COLUMNS = ["db", "old_keys", "new_keys", "missing", "gap_ratio"]


def redis_settings_for(address: str = "") -> dict[str, Any]:
    """redis-py keywords for another node: "host:port" or "host:port/db" (no password: that comes from
    REDIS_PASSWORD / REDIS_URL as for the usual target); empty: the usual target itself."""
    base = dict(config.redis_settings())
    if not address:
        return base
    if "@" in address or "://" in address:
        raise BadParameter(f"give the Redis node as host:port or host:port/db, not {address!r} (no URL, no password)")
    hostport, _, db = address.partition("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or (db and not db.isdigit()):
        raise BadParameter(f"cannot read the Redis node {address!r}: use host:port or host:port/db")
    if "url" in base:  # the credentials of REDIS_URL, for the other node
        parts = urlsplit(str(base.pop("url")))
        if parts.username:
            base["username"] = unquote(parts.username)
        if parts.password:
            base["password"] = unquote(parts.password)
        if parts.scheme == "rediss":
            base["ssl"] = True
    return {**base, "host": host, "port": int(port), "db": int(db or 0)}


def connect(address: str, application: str) -> cache_source.Cache:
    """A Cache session on the node at `address` (the usual target when empty), labelled with it."""
    conn = cache_source.Cache(application, settings=redis_settings_for(address) if address else None)
    if address:
        conn.label = address
    return conn


def key_counts(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Keys per database on the old and the new node (INFO keyspace of each), and what the new one lacks."""
    merged = old[["db", "keys"]].merge(new[["db", "keys"]], on="db", how="outer", suffixes=("_old", "_new"))
    merged = merged.fillna(0).astype({"keys_old": int, "keys_new": int})
    table = pd.DataFrame(
        {
            "db": merged["db"].astype(int),
            "old_keys": merged["keys_old"],
            "new_keys": merged["keys_new"],
        }
    )
    table["missing"] = (table["old_keys"] - table["new_keys"]).clip(lower=0)
    table["gap_ratio"] = [
        round(m / o, 4) if o else 0.0 for m, o in zip(table["missing"], table["old_keys"], strict=True)
    ]
    return table.sort_values("db").reset_index(drop=True)[COMPARE_COLUMNS]


def key_counts_finding(table: pd.DataFrame, *, old_label: str, new_label: str) -> Finding:
    """The worst database's share of keys missing on the new node; keys with a TTL and writes since the snapshot
    make a small gap normal (the catalogue's 1%)."""
    if table.empty or table["old_keys"].sum() == 0:
        return Finding.of(
            "cache.key_counts",
            Severity.WARNING,
            f"the old node {old_label} has no keys: nothing to compare (is it the right node?)",
            unit="ratio",
        )
    worst = table.sort_values("gap_ratio", ascending=False).iloc[0]
    per_db = ", ".join(f"db{r.db} {r.new_keys}/{r.old_keys}" for r in table.itertuples())
    return judge(
        "cache.key_counts",
        float(worst["gap_ratio"]),
        f"new {new_label} against old {old_label}: {per_db} keys; worst db{int(worst['db'])} lacks "
        f"{int(worst['missing'])} ({worst['gap_ratio']:.1%})",
        evidence=table,
    )


def _done(outcome: pd.DataFrame | None) -> tuple[bool, str]:
    if outcome is None or outcome.empty:
        return False, "not run"
    status, detail = str(outcome["status"].iloc[0]), str(outcome["detail"].iloc[0] or "")
    return status == "applied", f"{status}: {detail}" if detail else status


def switch_checklist(
    snapshot: pd.DataFrame | None,
    create: pd.DataFrame | None,
    verified: Finding | None,
    *,
    new_cluster: str,
    new_endpoint: str | None,
    old_cluster: str,
) -> pd.DataFrame:
    """The runbook's "Switch traffic" steps, each box ticked only from what this run did or verified; the switch
    itself (connection string, redeploy, watching, retiring the old cluster) stays for a person to do and tick."""
    snapped, snap_note = _done(snapshot)
    created, create_note = _done(create)
    checked = verified is not None and verified.severity == Severity.OK
    rows = [
        (f"Snapshot of {old_cluster} taken", snapped, snap_note),
        (f"{new_cluster} created from it and available", created, create_note),
        (
            "Keys per db on the new node match the old one",
            checked,
            verified.message if verified is not None else "not verified in this run",
        ),
        (
            f"Connection string updated to {new_endpoint or 'the new endpoint'}",
            False,
            "by hand: REDIS_HOST / the secret the API reads" + ("" if checked else " — only after the keys match"),
        ),
        (
            "Application redeployed",
            False,
            "by hand: aws ecs update-service --force-new-deployment (or `memory_leak`'s two-key restart)",
        ),
        ("Hit rate and evictions watched on the new cluster", False, "by hand: run redis_cache against it"),
        (f"Old cluster {old_cluster} kept until the incident is closed", False, "by hand: do not delete it yet"),
    ]
    return pd.DataFrame(
        [{"step": step, "done": "[x]" if done else "[ ]", "evidence": evidence} for step, done, evidence in rows]
    )


def target_table(current: pd.DataFrame | None, node_type: str, nodes: int) -> pd.DataFrame:
    """The current cluster's config beside the target's."""
    now = current.iloc[0] if current is not None and not current.empty else {}
    return pd.DataFrame(
        {
            "": ["node type", "nodes", "engine"],
            "current": [now.get("node_type"), now.get("nodes"), now.get("engine")],
            "target": [node_type, nodes, now.get("engine")],
        }
    )
