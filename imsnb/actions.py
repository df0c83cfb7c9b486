"""Remediation, the only module meant to change anything. For now it only plans: nothing here executes.

`terminate_backends_plan` replaces the runbook's `pg_terminate_backend(pid) WHERE query LIKE '%pattern%'`
(which can hit the wrong sessions, including the one running it) with a list of exactly which backends a
termination or cancellation would target and why, built from the diagnostics' results.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from imsnb import postgres
from imsnb.findings import threshold

MAX_BACKENDS = 5  # blast-radius cap: at most this many backends in one plan
PLAN_COLUMNS = [
    "pid",
    "user",
    "application",
    "action",
    "statement",
    "reason",
    "blocks",
    "age_s",
    "within_cap",
    "backend_start",
    "query_start",
    "query",
]


def terminate_backends_plan(
    db: postgres.Database | None = None,
    *,
    long_running_s: float | None = None,
    idle_in_transaction_s: float | None = None,
    max_backends: int = MAX_BACKENDS,
) -> pd.DataFrame:
    """Which backends a mitigation would cancel or terminate, and why. Read-only: nothing is sent.

    - idle in transaction and blocking others: terminate (a cancel does nothing to an idle session); its open
      transaction rolls back and its locks are released;
    - idle in transaction for longer than `idle_in_transaction_s`: terminate;
    - active for longer than `long_running_s`: cancel the statement first (`pg_cancel_backend`), the gentler step.

    imsnb's own sessions are never candidates. At most `max_backends` rows are `within_cap`; `backend_start` and
    `query_start` identify the exact session so a later apply can check it is still the same one.
    """
    long_running_s = threshold("postgres.long_running").warning if long_running_s is None else long_running_s
    if idle_in_transaction_s is None:
        idle_in_transaction_s = threshold("postgres.idle_in_transaction").warning
    rows = []
    idle = postgres.idle_in_transaction(db)
    for r in idle.itertuples():
        if r.blocking > 0:
            reason = f"idle in transaction for {r.xact_age_s:.0f} s and blocking {r.blocking} session(s)"
        elif r.xact_age_s >= idle_in_transaction_s:
            reason = f"idle in transaction for {r.xact_age_s:.0f} s (over {idle_in_transaction_s:g} s)"
        else:
            continue
        rows.append(_row(r, "pg_terminate_backend", reason, r.blocking, r.xact_age_s, r.last_query))
    running = postgres.long_running_queries(db, min_duration_s=long_running_s)
    blocked = postgres.blocked_queries(db)
    blocks = blocked.groupby("blocking_pid")["pid"].nunique().to_dict() if not blocked.empty else {}
    for r in running.itertuples():
        reason = f"statement running for {r.duration_s:.0f} s (over {long_running_s:g} s)"
        rows.append(_row(r, "pg_cancel_backend", reason, blocks.get(r.pid, 0), r.duration_s, r.query))
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    plan = plan[~plan["application"].fillna("").str.startswith("imsnb")]
    plan = plan.sort_values(["blocks", "age_s"], ascending=False).drop_duplicates("pid").reset_index(drop=True)
    plan["within_cap"] = plan.index < max_backends
    return plan


def _row(r, action: str, reason: str, blocks: int, age_s: float, query: str) -> dict:
    return {
        "pid": r.pid,
        "user": r.user,
        "application": r.application,
        "action": action,
        "statement": f"SELECT {action}({int(r.pid)})",
        "reason": reason,
        "blocks": int(blocks),
        "age_s": round(float(age_s), 1),
        "within_cap": True,
        "backend_start": r.backend_start,
        "query_start": r.query_start,
        "query": query,
    }


def flush_plan(cache: Any = None, *, db: int = 0) -> pd.DataFrame:
    """What the runbook's `FLUSHDB ASYNC` would do to database `db`, and its cost. Read-only: nothing is sent.

    The expected impact is taken from the cache as it is now: keys lost, memory freed, and the read load that
    falls through to PostgreSQL until the cache is warm again (hits per second before the flush).
    """
    from imsnb import cache as redis_cache

    keys = redis_cache.keyspace(cache)
    row = keys[keys["db"] == db]
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
                "target": f"{redis_cache._cache(cache).label.split('/')[0]}/{db}",
                "db": db,
                "keys": count,
                "why": "runbook › Redis Cache Flush: cache corrupted",
                "expected_impact": impact,
                "undo": "none: cached values are lost and recomputed by the application",
                "status": "planned, not executed",
            }
        ]
    )


RDS_CLASS_LADDER = ["db.t3.micro", "db.t3.small", "db.t3.medium", "db.t3.large", "db.t3.xlarge", "db.t3.2xlarge"]


def next_rds_class(current: str) -> str | None:
    """One size up on the runbook's ladder (db.t3.micro → small → medium ...); None at the top or off the ladder."""
    if current in RDS_CLASS_LADDER and current != RDS_CLASS_LADDER[-1]:
        return RDS_CLASS_LADDER[RDS_CLASS_LADDER.index(current) + 1]
    return None


def scaling_plan(
    services: pd.DataFrame,
    instances: pd.DataFrame,
    *,
    cluster: str,
    target_count: int | None = None,
    rds_cpu_peak: float | None = None,
) -> pd.DataFrame:
    """The runbook's horizontal (ECS desired count) and vertical (RDS class) scaling, as commands to review.

    Desired count: `target_count`, else one more than now, capped at twice the current count. The RDS step is
    proposed only when its CPU peaked at or above 80%. Nothing is executed here.
    """
    rows = []
    for s in services.itertuples():
        current = int(s.desired)
        wanted = target_count if target_count is not None else current + 1
        wanted = max(1, min(wanted, max(2 * current, 1)))
        stuck = s.running < s.desired
        rows.append(
            {
                "action": "ecs update-service --desired-count",
                "target": f"{cluster}/{s.service}",
                "from": current,
                "to": wanted,
                "why": f"{s.running} running of {s.desired} desired, {s.pending} pending: find why tasks do not start "
                "before adding more"
                if stuck
                else "more capacity for the API",
                "command": f"aws ecs update-service --cluster {cluster} --service {s.service} --desired-count {wanted}",
                "undo": f"--desired-count {current}",
            }
        )
    for i in instances.itertuples():
        bigger = next_rds_class(instances.loc[i.Index, "class"])
        if bigger is None or rds_cpu_peak is None or rds_cpu_peak < 80:
            continue
        rows.append(
            {
                "action": "rds modify-db-instance --db-instance-class",
                "target": i.instance,
                "from": instances.loc[i.Index, "class"],
                "to": bigger,
                "why": f"CPU peaked at {rds_cpu_peak:.0f}% (runbook: < 80%); brief downtime unless Multi-AZ",
                "command": f"aws rds modify-db-instance --db-instance-identifier {i.instance} "
                f"--db-instance-class {bigger} --apply-immediately",
                "undo": f"--db-instance-class {instances.loc[i.Index, 'class']}",
            }
        )
    frame = pd.DataFrame(rows, columns=["action", "target", "from", "to", "why", "command", "undo"])
    frame["status"] = "planned, not executed"
    return frame
