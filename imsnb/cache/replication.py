"""Redis replication: how long each replica has been silent toward its master, and how far behind it is
(INFO replication)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from imsnb.cache.session import Cache, cache_or_default
from imsnb.findings import Finding, Severity, judge, threshold, unjudged

__all__ = [
    "REPLICA_COLUMNS",
    "Replication",
    "replication",
    "replication_lag_finding",
]

REPLICA_COLUMNS = ["replica", "state", "lag_s", "behind_bytes"]


@dataclass(frozen=True, kw_only=True)
class Replication:
    """What INFO replication says. On a master: `replicas`, one row per replica (REPLICA_COLUMNS: lag_s is the
    seconds since its last acknowledgement, which a healthy replica sends every second; behind_bytes the master's
    offset less the one it acknowledged). On a replica: its master, the link's state and how long it has been down
    or silent."""

    role: str  # "master" or "replica" (INFO says "slave")
    backlog_bytes: int  # repl-backlog-size: a link dropped further behind than this needs a full resync
    replicas: pd.DataFrame
    master: str = ""
    link: str = ""  # master_link_status: up or down
    silent_s: int | None = None  # master_last_io_seconds_ago, or master_link_down_since_seconds when down


def replication(cache: Cache | None = None) -> Replication:
    """The server's role and, on a master, each replica's acknowledgement lag and bytes behind, the most silent
    first; on a replica, its link to its master (how far behind it is can be read only on the master)."""
    info = cache_or_default(cache).call("info", "replication")
    offset = int(info.get("master_repl_offset", 0))
    rows = [
        {
            "replica": f"{value.get('ip')}:{value.get('port')}",
            "state": str(value.get("state", "")),
            "lag_s": int(value.get("lag", 0)),
            "behind_bytes": max(0, offset - int(value.get("offset", 0))),
        }
        for key, value in info.items()
        if key.startswith("slave") and key[5:].isdigit() and isinstance(value, dict)
    ]
    replicas = pd.DataFrame(rows, columns=REPLICA_COLUMNS)  # a replica not online first, then the most silent
    replicas = replicas.assign(_online=replicas["state"] == "online").sort_values(
        ["_online", "lag_s", "behind_bytes"], ascending=[True, False, False]
    )
    replicas = replicas.drop(columns="_online").reset_index(drop=True)
    backlog = int(info.get("repl_backlog_size", 0))
    if info.get("role") != "slave":
        return Replication(role="master", backlog_bytes=backlog, replicas=replicas)
    link = str(info.get("master_link_status", ""))
    silent = info.get("master_link_down_since_seconds" if link != "up" else "master_last_io_seconds_ago")
    return Replication(
        role="replica",
        backlog_bytes=backlog,
        replicas=replicas,
        master=f"{info.get('master_host')}:{info.get('master_port')}",
        link=link,
        silent_s=None if silent is None or int(silent) < 0 else int(silent),
    )


def replication_lag_finding(repl: Replication) -> Finding:
    """On a master: the replica silent longest (seconds since its last acknowledgement; a replica not `online`
    is at least a WARNING), with how far behind it is against the backlog. On a replica: a link that is down is
    a WARNING; up, OK (its lag is read on its master). A master without replicas: OK, nothing to lag."""
    check = "cache.replication_lag"
    if repl.role == "replica" and not repl.replicas.empty:  # a replica with replicas of its own: judge those too
        downstream = replication_lag_finding(replace(repl, role="master"))
        if repl.link == "up" and downstream.severity > Severity.OK:
            return downstream
    if repl.role == "replica":
        since = "" if repl.silent_s is None else f" for {repl.silent_s} s"
        if repl.link != "up":
            return unjudged(check, Severity.WARNING, f"replica of {repl.master}: its link is {repl.link}{since}")
        heard = "" if repl.silent_s is None else f", last heard from it {repl.silent_s} s ago"
        return unjudged(check, Severity.OK, f"replica of {repl.master}, link up{heard}: its lag is read on its master")
    if repl.replicas.empty:
        return unjudged(check, Severity.OK, "no replica is attached to this master: nothing to lag")
    worst = repl.replicas.iloc[0]
    behind = int(worst["behind_bytes"])
    backlog = repl.backlog_bytes
    share = f", {behind / backlog:.0%} of the {backlog:,}-byte backlog" if backlog else ""
    return judge(
        check,
        int(worst["lag_s"]),
        f"replica {worst['replica']} ({worst['state']}): last acknowledgement {int(worst['lag_s'])} s ago (kept "
        f"under {threshold(check).warning:g} s), {behind:,} bytes behind the master{share}",
        floor=None if worst["state"] == "online" else Severity.WARNING,
        evidence=repl.replicas,
    )
