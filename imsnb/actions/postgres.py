"""PostgreSQL targets: cancel and terminate backends, by what the diagnostics found (SQL beside its function)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from imsnb import postgres
from imsnb.actions.gate import Changed, Plan
from imsnb.findings import threshold
from imsnb.limits import check_max_backends

__all__ = [
    "BACKEND_NOW",
    "CANCEL_BACKEND",
    "EXPECTED_STATE",
    "MAX_BACKENDS",
    "PLAN_COLUMNS",
    "SIGNAL_SQL",
    "TERMINATE_BACKEND",
    "TERMINATE_WAIT_MS",
    "backend_action",
    "backend_actions",
    "terminate_backends_plan",
]

MAX_BACKENDS = 5  # blast-radius cap: at most this many backends cancelled or terminated per run

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

BACKEND_NOW = """
SELECT a.pid, a.backend_start, a.query_start, a.state, a.backend_type,
       a.application_name AS application, a.pid = pg_backend_pid() AS own,
       coalesce(r.rolsuper, false) AS superuser, coalesce(r.rolreplication, false) AS replication
FROM pg_stat_activity a
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.pid = %(pid)s
"""

# The guard is repeated in the statement itself: nothing is signalled unless the session is still the planned one.
CANCEL_BACKEND = """
SELECT pg_cancel_backend(a.pid) AS signalled
FROM pg_stat_activity a
WHERE a.pid = %(pid)s AND a.backend_start = %(backend_start)s
  AND a.query_start IS NOT DISTINCT FROM %(query_start)s AND a.pid <> pg_backend_pid()
"""

TERMINATE_BACKEND = """
SELECT pg_terminate_backend(a.pid, %(wait_ms)s) AS signalled
FROM pg_stat_activity a
WHERE a.pid = %(pid)s AND a.backend_start = %(backend_start)s
  AND a.query_start IS NOT DISTINCT FROM %(query_start)s AND a.pid <> pg_backend_pid()
"""
TERMINATE_WAIT_MS = 3000
SIGNAL_SQL = {"pg_cancel_backend": CANCEL_BACKEND, "pg_terminate_backend": TERMINATE_BACKEND}
EXPECTED_STATE = {"pg_cancel_backend": ("active",), "pg_terminate_backend": ("idle in transaction", "active")}


def terminate_backends_plan(
    db: postgres.Database | None = None,
    *,
    long_running_s: float | None = None,
    idle_in_transaction_s: float | None = None,
    max_backends: int = MAX_BACKENDS,
) -> pd.DataFrame:
    """Which backends a mitigation would cancel or terminate, and why, as a table. Read-only.

    - idle in transaction and blocking others: terminate (a cancel does nothing to an idle session); its open
      transaction rolls back and its locks are released;
    - idle in transaction for longer than `idle_in_transaction_s`: terminate;
    - active for longer than `long_running_s`: cancel the statement (`pg_cancel_backend`), the gentler step.

    imsnb's own sessions are never candidates. At most `max_backends` rows are `within_cap`; `backend_start` and
    `query_start` identify the exact session so that applying can check it is still the same one.
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


def backend_actions(
    db: postgres.Database | None = None,
    *,
    long_running_s: float | None = None,
    idle_in_transaction_s: float | None = None,
    max_backends: int = MAX_BACKENDS,
) -> list[Plan]:
    """`terminate_backends_plan`'s rows as plans: blockers and stuck sessions first, at most `max_backends`
    (0 to MAX_BACKENDS_LIMIT; anything else is refused)."""
    check_max_backends(max_backends)
    table = terminate_backends_plan(
        db, long_running_s=long_running_s, idle_in_transaction_s=idle_in_transaction_s, max_backends=max_backends
    )
    return [backend_action(db, row, max_backends=max_backends) for row in table.to_dict(orient="records")]


def backend_action(db: postgres.Database | None, row: dict[str, Any], *, max_backends: int = MAX_BACKENDS) -> Plan:
    """One cancel or terminate for the session in `row` (pid, backend_start, query_start as the plan saw them)."""
    check_max_backends(max_backends)
    function = row["action"]
    if function not in SIGNAL_SQL:
        raise ValueError(f"unknown backend action {function!r}: use pg_cancel_backend or pg_terminate_backend")
    session = {
        "pid": int(row["pid"]),
        "backend_start": _timestamp(row["backend_start"]),
        "query_start": _timestamp(row.get("query_start")),
    }
    target = f"pid {session['pid']} ({row.get('user') or '?'}, {row.get('application') or 'no application_name'})"
    if function == "pg_terminate_backend":
        effect = "the session ends; its open transaction rolls back and the locks it holds are released"
        undo = "none: the client reconnects; rolled-back work must be redone by it"
    else:
        effect = "the running statement is cancelled (the client gets an error); the session stays"
        undo = "none: the client may re-run the statement"

    def recheck() -> str | None:
        return _backend_changed(postgres.database_or_default(db), session, function)

    def apply() -> str:
        params = {**session, "wait_ms": TERMINATE_WAIT_MS}
        frame = postgres.database_or_default(db).frame(SIGNAL_SQL[function], params)
        if frame.empty:
            raise Changed("the session changed between the re-check and the signal; nothing was sent")
        if not bool(frame.iat[0, 0]):
            raise RuntimeError(f"{function} returned false: the backend did not end within {TERMINATE_WAIT_MS} ms")
        return f"{function}({session['pid']}) sent and confirmed"

    return Plan(
        action=function.removeprefix("pg_"),
        target=target,
        reason=row["reason"],
        expected_effect=effect,
        undo=undo,
        command=f"SELECT {function}({session['pid']})  -- only if backend_start = {session['backend_start']}",
        recheck=recheck,
        apply=apply,
        within_cap=bool(row.get("within_cap", True)),
        cap_note=f"over the cap of {max_backends} backends per run: not touched",
    )


def _timestamp(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).to_pydatetime()


def _backend_changed(db: postgres.Database, session: dict[str, Any], function: str) -> str | None:
    now = db.frame(BACKEND_NOW, {"pid": session["pid"]})
    if now.empty:
        return f"pid {session['pid']} has ended since the plan"
    row = now.iloc[0]
    if _timestamp(row["backend_start"]) != session["backend_start"]:
        return f"pid {session['pid']} is now a different session (backend_start changed): the pid was reused"
    if bool(row["own"]) or str(row["application"] or "").startswith("imsnb"):
        return "this is imsnb's own session: never touched"
    if row["backend_type"] != "client backend":
        return f"a {row['backend_type']} backend: never touched"
    if bool(row["superuser"]) and bool(row["replication"]):
        return "a superuser replication session: never touched"
    if _timestamp(row["query_start"]) != session["query_start"]:
        return f"pid {session['pid']} has moved on to another statement since the plan"
    if row["state"] not in EXPECTED_STATE[function]:
        return f"pid {session['pid']} is now {row['state']!r}, no longer as planned"
    return None
