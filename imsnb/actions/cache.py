"""Redis target: the runbook's `FLUSHDB ASYNC`, planned from the cache as it is now."""

from __future__ import annotations

from typing import Any

import pandas as pd

from imsnb import cache as redis_cache
from imsnb.actions.gate import Plan

__all__ = [
    "CLIENT_DB_FIELD",
    "flush_action",
    "flush_plan",
]

CLIENT_DB_FIELD = "db"


def flush_plan(cache: Any = None, *, db: int = 0) -> pd.DataFrame:
    """What the runbook's `FLUSHDB ASYNC` would do to database `db`, and its cost, as a one-row table. Read-only.

    The expected impact is taken from the cache as it is now: keys lost, memory freed, and the read load that
    falls through to PostgreSQL until the cache is warm again (hits per second before the flush).
    """

    keys_by_db = redis_cache.keyspace(cache)
    row = keys_by_db[keys_by_db["db"] == db]
    count = int(row["keys"].iloc[0]) if not row.empty else 0
    memory = redis_cache.memory_usage(cache)
    stats = redis_cache.stats(cache)
    hits_per_s = stats.keyspace_hits / stats.uptime_s if stats.uptime_s else 0.0
    impact = (
        f"{count:,} keys in db {db} dropped (memory freed in the background, up to "
        f"{memory.used_bytes / 2**20:.1f} MiB); hit rate falls to 0% and about {hits_per_s:,.0f} reads/s fall "
        "through to the database until keys are rebuilt on first request"
    )
    return pd.DataFrame(
        [
            {
                "action": "FLUSHDB ASYNC",
                "target": f"{redis_cache.cache_or_default(cache).label.split('/')[0]}/{db}",
                "db": db,
                "keys": count,
                "why": "runbook › Redis Cache Flush: cache corrupted",
                "expected_impact": impact,
                "undo": "none: cached values are lost and recomputed by the application",
            }
        ]
    )


def flush_action(cache: Any = None, *, db: int = 0) -> Plan:
    """The runbook's `redis-cli FLUSHDB ASYNC` on database `db` of the configured server."""

    planned = flush_plan(cache, db=db).iloc[0]
    server = redis_cache.cache_or_default(cache)
    planned_run_id = _run_id(server)

    def recheck() -> str | None:
        info = server.call("client_info")
        connected = int(info.get(CLIENT_DB_FIELD, -1))
        if connected != db:
            return f"connected to db {connected}, the plan names db {db}: set REDIS_DB={db} (or the URL's /{db})"
        now_run_id = _run_id(server)
        if now_run_id != planned_run_id:
            return (
                f"the server behind {planned['target']} changed since the plan (run_id {planned_run_id[:8]}… → "
                f"{now_run_id[:8]}…: restarted or failed over): plan again"
            )
        return None

    def apply() -> str:
        before = server.call("dbsize")
        server.call("flushdb", asynchronous=True)
        return f"FLUSHDB ASYNC sent to {planned['target']} ({before:,} keys at the time)"

    return Plan(
        action="redis_flushdb",
        target=str(planned["target"]),
        reason=str(planned["why"]),
        expected_effect=str(planned["expected_impact"]),
        undo=str(planned["undo"]),
        command=f"redis-cli -n {db} FLUSHDB ASYNC",
        recheck=recheck,
        apply=apply,
    )


def _run_id(server: Any) -> str:
    """The Redis server's run_id: random at each start, so a restarted or failed-over server has another one."""
    run_id = server.call("info", "server").get("run_id")
    if not run_id:
        raise LookupError("the server reports no run_id: cannot tell it is the one planned against")
    return run_id.decode() if isinstance(run_id, bytes) else str(run_id)
