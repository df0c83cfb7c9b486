"""Remediation: the only module in imsnb that changes anything, and only with two keys.

Every action starts as a `Plan` built from what a diagnostic found: what, on which target, why, the expected
effect, how to undo it, and the equivalent command. `execute(plans, apply_actions=..., approver=...)` shows the
plans as a table and applies them only when both keys are turned:

- the notebook key: the parameter `apply_actions=True`, with `approver` naming who approved;
- the run key: `imsnb run --allow-actions` (which sets IMSNB_ALLOW_ACTIONS=1 for the kernel; headless runs
  without the flag never see the variable), or `IMSNB_ALLOW_ACTIONS=1` in the environment of an interactive kernel
  when it starts. It is read once, when imsnb is imported (`imsnb._started`); a later os.environ change (a named
  environment, a cell) does not turn it.

With one key, nothing happens and a line says which key is missing. With both, each plan re-checks its precondition
right before acting (the backend is still the same session, the instance is `available`, the service exists and the
count is within bounds, the Redis database is the one named); a changed world means skipped, with the reason.
Write-ahead: with both keys, each plan is recorded as `applying` (with `applying_at`) before it acts — in the
notebook's actions output, updated in place, and in the runner's journal file — and again with its outcome, so a
run killed mid-action still shows what was being applied. Every outcome is shown in the notebook and emitted as
`application/vnd.imsnb.actions+json`, which the runner collects into `summary.json` under `actions`.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb import _started, postgres
from imsnb.aws import _aws
from imsnb.aws.ecs import _describe
from imsnb.bundles import ACTIONS_MIME
from imsnb.findings import threshold

# The hard limits live with the parameters (checked there before a kernel starts); re-exported for callers.
from imsnb.runs.parameters import (  # noqa: F401
    MAX_BACKENDS_LIMIT,
    MAX_COUNT_LIMIT,
    check_bounds,
    check_max_backends,
    check_max_count,
)

ALLOW_ENV = _started.ALLOW_ENV
MAX_BACKENDS = 5  # blast-radius cap: at most this many backends cancelled or terminated per run
WAIT_MARGIN_S = 30.0  # long waits stop this long (or a fifth of the timeout, at least 5 s) before the cell timeout
RESTORE_WAIT_S = 1800.0
RESTORE_POLL_S = 15.0
RECORD_KEYS = [
    "id",
    "action",
    "target",
    "reason",
    "expected_effect",
    "undo",
    "command",
    "status",
    "detail",
    "approver",
    "planned_at",
    "applying_at",
    "finished_at",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")


class Changed(Exception):
    """Raised by an apply step that finds, at the last moment, that the world is no longer as planned."""


@dataclass
class Plan:
    """One action, planned from a diagnostic's result; `recheck` returns None when the world is still as planned
    (else why not), `apply` acts and returns what it did."""

    action: str
    target: str
    reason: str
    expected_effect: str
    undo: str
    command: str
    recheck: Callable[[], str | None] = field(repr=False, compare=False)
    apply: Callable[[], str] = field(repr=False, compare=False)
    within_cap: bool = True
    cap_note: str = ""
    planned_at: str = field(default_factory=_now)

    def record(self) -> dict[str, Any]:
        return {
            "id": secrets.token_hex(6),
            "action": self.action,
            "target": self.target,
            "reason": self.reason,
            "expected_effect": self.expected_effect,
            "undo": self.undo,
            "command": self.command,
            "status": "planned",
            "detail": "" if self.within_cap else self.cap_note,
            "approver": None,
            "planned_at": self.planned_at,
            "applying_at": None,
            "finished_at": None,
        }


@dataclass(frozen=True)
class Keys:
    notebook: bool
    run: bool
    approver: str

    @property
    def missing(self) -> str | None:
        """Which key is missing, as a line for the notebook; None when both are turned and an approver is named."""
        notebook_hint = "set the parameter apply_actions=True (`-p apply_actions True`) and name the approver"
        run_hint = "run with `imsnb run --allow-actions` (or start the interactive kernel with IMSNB_ALLOW_ACTIONS=1)"
        if not self.notebook and not self.run:
            return f"both keys are missing: {notebook_hint}, and {run_hint}"
        if not self.notebook:
            return f"the notebook key is missing: {notebook_hint}"
        if not self.run:
            return f"the run key is missing: {run_hint}"
        if not self.approver:
            return "no approver is named: set the parameter approver (`-p approver NAME`)"
        return None


def keys(apply_actions: bool = False, approver: str = "") -> Keys:
    """The two keys: the notebook's parameter and the run's key, as the process was started (never os.environ now)."""
    return Keys(
        notebook=apply_actions is True,
        run=_started.run_key(),
        approver=" ".join(str(approver or "").split()),
    )


def execute(
    plans: list[Plan], *, apply_actions: bool = False, approver: str = "", title: str = "Actions"
) -> pd.DataFrame:
    """Show the plans and, with both keys, re-check and apply each; every outcome is displayed and recorded.

    Write-ahead: each plan is recorded as `applying` (the notebook output, updated in place, and the runner's
    journal) before it acts, and again with its outcome."""
    turned = keys(apply_actions, approver)
    records = [plan.record() for plan in plans]
    if turned.missing is not None:
        for record in records:
            record["detail"] = f"not applied: {turned.missing}"
    display_id = f"imsnb-actions-{secrets.token_hex(6)}"
    _display_outcome(_frame(records), turned, title, display_id=display_id, stage="start")
    if turned.missing is None:
        for plan, record in zip(plans, records, strict=True):
            if plan.within_cap:
                record.update(status="applying", approver=turned.approver, applying_at=_now())
                record["detail"] = "applying: started, outcome not yet known"
                _journal(record)
                _display_outcome(_frame(records), turned, title, display_id=display_id, stage="progress")
            record.update(_outcome(plan), approver=turned.approver, finished_at=_now())
            _journal(record)
            _display_outcome(_frame(records), turned, title, display_id=display_id, stage="progress")
    frame = _frame(records)
    _display_outcome(frame, turned, title, display_id=display_id, stage="final")
    return frame


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(records, columns=RECORD_KEYS)


def _journal(record: dict[str, Any]) -> None:
    """Append the record to the runner's journal, on disk before anything else happens (no journal: nothing)."""
    path = _started.journal_path()
    if path is None:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def wait_deadline(wait_s: float) -> tuple[float, str]:
    """time.monotonic() until which a long wait may go, and a note when the runner's cell timeout shortens it."""
    asked = time.monotonic() + wait_s
    cell_end = _started.cell_deadline()
    if cell_end is None:
        return asked, ""
    timeout = _started.cell_timeout_s() or 0.0
    bound = cell_end - min(WAIT_MARGIN_S, max(5.0, timeout / 5))
    if bound >= asked:
        return asked, ""
    return bound, f"the wait stops short of the run's cell timeout of {timeout:g} s (--timeout)"


def _outcome(plan: Plan) -> dict[str, str]:
    if not plan.within_cap:
        return {"status": "skipped", "detail": plan.cap_note}
    try:
        changed = plan.recheck()
    except Exception as exc:  # noqa: BLE001 - a failed re-check must skip, never act blind
        changed = f"the re-check failed ({_one_line(exc)})"
    if changed:
        return {"status": "skipped", "detail": changed}
    try:
        return {"status": "applied", "detail": plan.apply()}
    except Changed as exc:
        return {"status": "skipped", "detail": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the failure is the outcome, recorded with its error
        return {"status": "failed", "detail": _one_line(exc)}


def _display_outcome(frame: pd.DataFrame, turned: Keys, title: str, *, display_id: str, stage: str = "final") -> None:
    """One output per `execute`, shown at the start and updated in place as each plan is applied."""

    if turned.missing is None:
        line = f"Both keys turned; approved by {turned.approver}. Each action re-checked its precondition first."
    else:
        line = f"Plan only, nothing was changed: {turned.missing}."
    shown = frame.drop(columns=["id", "planned_at", "applying_at", "finished_at"])
    table = "<p><i>(nothing to do)</i></p>" if frame.empty else shown.to_html(index=False)
    data = {
        "text/html": f"<p><b>{html.escape(title)}.</b> {html.escape(line)}</p>{table}",
        "text/plain": f"{title}. {line}\n" + ("(nothing to do)" if frame.empty else shown.to_string(index=False)),
        ACTIONS_MIME: {"title": title, "keys": _keys_dict(turned), "actions": _records(frame)},
    }
    try:
        from IPython.display import display, update_display
    except ImportError:  # plain Python: print the text form once, at the end
        if stage == "final":
            print(data["text/plain"])
        return
    if stage == "start":
        display(data, raw=True, display_id=display_id)
    else:
        update_display(data, raw=True, display_id=display_id)


def _keys_dict(turned: Keys) -> dict[str, Any]:
    return {"notebook": turned.notebook, "run": turned.run, "approver": turned.approver or None}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


# --- PostgreSQL: cancel and terminate backends, by what the diagnostics found ------------------------------------

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
        return _backend_changed(postgres._db(db), session, function)

    def apply() -> str:
        params = {**session, "wait_ms": TERMINATE_WAIT_MS}
        frame = postgres._db(db).frame(SIGNAL_SQL[function], params)
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


# --- Redis ---------------------------------------------------------------------------------------------------------

CLIENT_DB_FIELD = "db"


def flush_plan(cache: Any = None, *, db: int = 0) -> pd.DataFrame:
    """What the runbook's `FLUSHDB ASYNC` would do to database `db`, and its cost, as a one-row table. Read-only.

    The expected impact is taken from the cache as it is now: keys lost, memory freed, and the read load that
    falls through to PostgreSQL until the cache is warm again (hits per second before the flush).
    """
    from imsnb import cache as redis_cache

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
                "target": f"{redis_cache._cache(cache).label.split('/')[0]}/{db}",
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
    from imsnb import cache as redis_cache

    planned = flush_plan(cache, db=db).iloc[0]
    server = redis_cache._cache(cache)
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


# --- AWS: RDS and ECS ----------------------------------------------------------------------------------------------

RDS_CLASS_LADDER = ["db.t3.micro", "db.t3.small", "db.t3.medium", "db.t3.large", "db.t3.xlarge", "db.t3.2xlarge"]


def next_rds_class(current: str) -> str | None:
    """One size up on the runbook's ladder (db.t3.micro → small → medium ...); None at the top or off the ladder."""
    if current in RDS_CLASS_LADDER and current != RDS_CLASS_LADDER[-1]:
        return RDS_CLASS_LADDER[RDS_CLASS_LADDER.index(current) + 1]
    return None


def _instance(aws: Any, instance_id: str) -> dict[str, Any]:
    found = _aws(aws).call("rds", "describe_db_instances", DBInstanceIdentifier=instance_id)["DBInstances"]
    if not found:
        raise LookupError(f"RDS instance {instance_id} not found")
    return found[0]


def rds_resize_action(instance_id: str, to_class: str, *, reason: str = "", aws: Any = None) -> Plan:
    """Option B of the runbook: `aws rds modify-db-instance --db-instance-class ... --apply-immediately`."""
    current = _instance(aws, instance_id)
    from_class = current["DBInstanceClass"]
    multi_az = bool(current.get("MultiAZ"))

    def recheck() -> str | None:
        now = _instance(aws, instance_id)
        if now.get("DBInstanceStatus") != "available":
            return f"{instance_id} is {now.get('DBInstanceStatus')!r}, not 'available'"
        if now["DBInstanceClass"] != from_class:
            return f"{instance_id} is already {now['DBInstanceClass']} (planned from {from_class})"
        return None

    def apply() -> str:
        _aws(aws).call(
            "rds",
            "modify_db_instance",
            DBInstanceIdentifier=instance_id,
            DBInstanceClass=to_class,
            ApplyImmediately=True,
        )
        now = _instance(aws, instance_id)
        pending = (now.get("PendingModifiedValues") or {}).get("DBInstanceClass")
        return f"{instance_id}: class {now['DBInstanceClass']}" + (f" (pending {pending})" if pending else "")

    return Plan(
        action="rds_resize",
        target=instance_id,
        reason=reason or f"scale up from {from_class}",
        expected_effect=f"{from_class} → {to_class}; "
        + ("a Multi-AZ failover of a few seconds" if multi_az else "a restart: minutes of downtime (not Multi-AZ)"),
        undo=f"modify-db-instance --db-instance-class {from_class} --apply-immediately",
        command=f"aws rds modify-db-instance --db-instance-identifier {instance_id} "
        f"--db-instance-class {to_class} --apply-immediately",
        recheck=recheck,
        apply=apply,
    )


def _cluster(aws: Any, cluster_id: str) -> dict[str, Any]:
    found = _aws(aws).call("rds", "describe_db_clusters", DBClusterIdentifier=cluster_id)["DBClusters"]
    if not found:
        raise LookupError(f"RDS cluster {cluster_id} not found")
    return found[0]


def _writer(cluster: dict[str, Any]) -> str | None:
    members = cluster.get("DBClusterMembers", [])
    return next((m["DBInstanceIdentifier"] for m in members if m.get("IsClusterWriter")), None)


def rds_failover_action(cluster_id: str, *, reason: str = "", aws: Any = None) -> Plan:
    """Option C of the runbook: `aws rds failover-db-cluster` to a replica, if the cluster has one."""
    planned = _cluster(aws, cluster_id)
    members = planned.get("DBClusterMembers", [])
    writer = _writer(planned)
    readers = [m["DBInstanceIdentifier"] for m in members if not m.get("IsClusterWriter")]

    def recheck() -> str | None:
        now = _cluster(aws, cluster_id)
        if now.get("Status") != "available":
            return f"cluster {cluster_id} is {now.get('Status')!r}, not 'available'"
        now_writer = _writer(now)
        if now_writer != writer:
            return f"the writer changed since the plan ({writer} → {now_writer})"
        if not readers:
            return "no replica to fail over to"
        return None

    def apply() -> str:
        _aws(aws).call("rds", "failover_db_cluster", DBClusterIdentifier=cluster_id)
        now = _cluster(aws, cluster_id)
        return f"failover requested: writer {writer} → {_writer(now)}"

    return Plan(
        action="rds_failover",
        target=cluster_id,
        reason=reason or "the writer is degraded",
        expected_effect=f"a replica ({', '.join(readers) or 'none available'}) becomes the writer; "
        "connections drop for about a minute",
        undo="fail over again to the old writer once it is healthy",
        command=f"aws rds failover-db-cluster --db-cluster-identifier {cluster_id}",
        recheck=recheck,
        apply=apply,
    )


def rds_restore_action(
    snapshot: dict[str, Any],
    new_instance_id: str,
    *,
    instance_class: str = "",
    wait_s: float = RESTORE_WAIT_S,
    poll_s: float = RESTORE_POLL_S,
    aws: Any = None,
) -> Plan:
    """Restore `snapshot` (a row of `rds.snapshots`) to a new instance and wait until it is available."""
    snapshot_id = snapshot["snapshot"]

    def recheck() -> str | None:
        found = _aws(aws).call("rds", "describe_db_snapshots", DBSnapshotIdentifier=snapshot_id)["DBSnapshots"]
        if not found or found[0].get("Status") != "available":
            return f"snapshot {snapshot_id} is no longer available"
        existing = _aws(aws).call("rds", "describe_db_instances")["DBInstances"]
        if any(d["DBInstanceIdentifier"] == new_instance_id for d in existing):
            return f"an instance named {new_instance_id} already exists: choose another new_instance_id"
        return None

    def apply() -> str:
        extra = {"DBInstanceClass": instance_class} if instance_class else {}
        _aws(aws).call(
            "rds",
            "restore_db_instance_from_db_snapshot",
            DBInstanceIdentifier=new_instance_id,
            DBSnapshotIdentifier=snapshot_id,
            **extra,
        )
        started = time.monotonic()
        deadline, bounded = wait_deadline(wait_s)
        while True:
            now = _instance(aws, new_instance_id)
            status = now.get("DBInstanceStatus")
            if status == "available":
                endpoint = now.get("Endpoint") or {}
                return (
                    f"{new_instance_id} available after {time.monotonic() - started:.0f} s at "
                    f"{endpoint.get('Address')}:{endpoint.get('Port')}"
                )
            if status in ("failed", "incompatible-restore", "incompatible-parameters", "deleting"):
                raise RuntimeError(f"{new_instance_id} is {status}")
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"the restore was started but {new_instance_id} is still {status!r} after "
                    f"{time.monotonic() - started:.0f} s ({bounded or f'wait_s is {wait_s:g} s'}); keep waiting by "
                    f"hand: aws rds wait db-instance-available --db-instance-identifier {new_instance_id}"
                )
            time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))

    created = snapshot.get("created")
    return Plan(
        action="rds_restore",
        target=new_instance_id,
        reason=f"restore snapshot {snapshot_id} (created {created})",
        expected_effect=f"a new instance {new_instance_id} with the data as of {created}; the old one is untouched",
        undo=f"aws rds delete-db-instance --db-instance-identifier {new_instance_id}",
        command=f"aws rds restore-db-instance-from-db-snapshot --db-instance-identifier {new_instance_id} "
        f"--db-snapshot-identifier {snapshot_id} && aws rds wait db-instance-available "
        f"--db-instance-identifier {new_instance_id}",
        recheck=recheck,
        apply=apply,
    )


def _service(aws: Any, cluster: str, service: str) -> dict[str, Any]:
    return _describe(_aws(aws), cluster, service)


def desired_count_bounds(current: int, max_count: int = 0) -> tuple[int, int]:
    """[1, 2x current] (at least 1), or [1, max_count] when widened explicitly; never above MAX_COUNT_LIMIT."""
    high = max_count if max_count > 0 else max(2 * current, 1)
    return 1, min(high, MAX_COUNT_LIMIT)


def ecs_desired_count_action(
    cluster: str, service: str, to: int, *, max_count: int = 0, reason: str = "", aws: Any = None
) -> Plan:
    """The runbook's `aws ecs update-service --desired-count`, within [1, 2x current] unless widened."""
    current = int(_service(aws, cluster, service).get("desiredCount", 0))
    low, high = desired_count_bounds(current, max_count)
    within = low <= to <= high
    if max(to, max_count) > MAX_COUNT_LIMIT:
        cap_note = (
            f"{to} is outside [{low}, {high}]: the hard limit is {MAX_COUNT_LIMIT} tasks, whatever max_count says"
        )
    else:
        cap_note = f"{to} is outside [{low}, {high}] (at most twice the current {current}): widen with max_count"

    def recheck() -> str | None:
        now = _service(aws, cluster, service)
        if now.get("status") != "ACTIVE":
            return f"service {cluster}/{service} is {now.get('status')!r}, not ACTIVE"
        if int(now.get("desiredCount", 0)) != current:
            return f"the desired count changed since the plan ({current} → {now.get('desiredCount')})"
        return None

    def apply() -> str:
        _aws(aws).call("ecs", "update_service", cluster=cluster, service=service, desiredCount=int(to))
        return f"{cluster}/{service}: desired count {current} → {_service(aws, cluster, service)['desiredCount']}"

    return Plan(
        action="ecs_desired_count",
        target=f"{cluster}/{service}",
        reason=reason or "more capacity for the API",
        expected_effect=f"desired tasks {current} → {to}",
        undo=f"aws ecs update-service --cluster {cluster} --service {service} --desired-count {current}",
        command=f"aws ecs update-service --cluster {cluster} --service {service} --desired-count {to}",
        recheck=recheck,
        apply=apply,
        within_cap=within,
        cap_note=cap_note,
    )


def ecs_rollback_action(
    cluster: str, service: str, revisions: pd.DataFrame | None = None, *, reason: str = "", aws: Any = None
) -> Plan | None:
    """Roll the service back to the task definition revision before the one it runs, within the family it runs
    (taken from the service's current `taskDefinition`, never from the service's name); None when there is none.

    `revisions` (rows of `ecs.task_definition_revisions`) are used only where they belong to that family; when none
    do, the family's revisions are listed here."""
    from imsnb.aws import ecs

    current = _service(aws, cluster, service).get("taskDefinition", "")
    current_name = current.rsplit("/", 1)[-1]
    if ":" not in current_name:
        return None
    family, revision = current_name.rsplit(":", 1)[0], int(current_name.rsplit(":", 1)[-1])
    candidates = _family_rows(revisions, family)
    if candidates.empty:
        candidates = _family_rows(ecs.task_definition_revisions(family, aws=_aws(aws)), family)
    older = candidates[candidates["revision"] < revision]
    if older.empty:
        return None
    previous = older.sort_values("revision", ascending=False).iloc[0]

    def recheck() -> str | None:
        now = _service(aws, cluster, service)
        if now.get("status") != "ACTIVE":
            return f"service {cluster}/{service} is {now.get('status')!r}, not ACTIVE"
        if now.get("taskDefinition") != current:
            return f"the service moved to {now.get('taskDefinition', '').rsplit('/', 1)[-1]} since the plan"
        return None

    def apply() -> str:
        _aws(aws).call("ecs", "update_service", cluster=cluster, service=service, taskDefinition=previous["arn"])
        now = _service(aws, cluster, service)["taskDefinition"].rsplit("/", 1)[-1]
        return f"{cluster}/{service} now deploys {now}"

    return Plan(
        action="ecs_rollback",
        target=f"{cluster}/{service}",
        reason=reason or f"roll back the latest release ({current_name})",
        expected_effect=f"a new deployment of {previous['task_definition']} replaces {current_name}",
        undo=f"aws ecs update-service --cluster {cluster} --service {service} --task-definition {current_name}",
        command=f"aws ecs update-service --cluster {cluster} --service {service} "
        f"--task-definition {previous['task_definition']}",
        recheck=recheck,
        apply=apply,
    )


def _family_rows(revisions: pd.DataFrame | None, family: str) -> pd.DataFrame:
    """The rows of `revisions` whose task definition is `family:N` exactly (not a family that starts alike)."""
    if revisions is None or revisions.empty:
        return pd.DataFrame(columns=["task_definition", "revision", "arn"])
    names = revisions["task_definition"].astype(str).str.rsplit(":", n=1).str[0]
    return revisions[names == family]


def scaling_actions(
    services: pd.DataFrame,
    instances: pd.DataFrame,
    *,
    cluster: str,
    target_count: int | None = None,
    max_count: int = 0,
    rds_class: str = "",
    rds_cpu_peak: float | None = None,
    aws: Any = None,
) -> list[Plan]:
    """The runbook's horizontal (ECS desired count) and vertical (RDS class) scaling, sized from what was found.

    Desired count: `target_count`, else one more than now. The RDS step: to `rds_class` when given, else one size
    up the ladder when CPU peaked at or above 80%.
    """
    plans = []
    for s in services.itertuples():
        wanted = target_count if target_count else int(s.desired) + 1
        stuck = s.running < s.desired
        why = (
            f"{s.running} running of {s.desired} desired, {s.pending} pending: find why tasks do not start first"
            if stuck
            else "more capacity for the API"
        )
        plans.append(ecs_desired_count_action(cluster, s.service, wanted, max_count=max_count, reason=why, aws=aws))
    for i in instances.itertuples():
        current = instances.loc[i.Index, "class"]
        if rds_class:
            to, why = rds_class, f"resize to {rds_class} as asked"
        elif rds_cpu_peak is not None and rds_cpu_peak >= 80 and next_rds_class(current):
            to, why = next_rds_class(current), f"CPU peaked at {rds_cpu_peak:.0f}% (runbook: < 80%)"
        else:
            continue
        if to != current:
            plans.append(rds_resize_action(i.instance, to, reason=why, aws=aws))
    return plans


def promotion_checklist(
    chosen: dict[str, Any] | None,
    restore: pd.DataFrame | None,
    verified: list[Any],
    *,
    new_instance_id: str,
) -> pd.DataFrame:
    """The runbook's "Promote to primary" steps, each box ticked only from what this run verified; the traffic
    switch-over stays for a person to do and tick."""
    restored = restore is not None and not restore.empty and (restore["status"] == "applied").any()
    counted = [f for f in verified if getattr(f, "check", "") == "postgres.row_count"]
    matching = [f for f in counted if f.severity.name == "OK"]
    rows = [
        (
            "Snapshot chosen",
            chosen is not None,
            f"{chosen['snapshot']} created {chosen['created']}" if chosen is not None else "no snapshot found",
        ),
        (
            f"Recovery instance {new_instance_id} restored and available",
            bool(restored),
            restore["detail"].iloc[0] if restore is not None and not restore.empty else "not restored in this run",
        ),
        (
            "Data verified (row counts as expected)",
            bool(counted) and len(matching) == len(counted),
            f"{len(matching)} of {len(counted)} table(s) as expected" if counted else "no table counted",
        ),
        ("Stop traffic to the old instance", False, "by hand: scale the API down or put it in maintenance"),
        ("Update the connection string to the new instance", False, "by hand: DB_HOST / the secret the API reads"),
        ("Update DNS / load balancer", False, "by hand"),
        ("Keep the old instance until the incident is closed", False, "by hand: do not delete it yet"),
    ]
    return pd.DataFrame(
        [{"step": step, "done": "[x]" if done else "[ ]", "evidence": evidence} for step, done, evidence in rows]
    )


# --- ECS: restart the service (Memory Leak / OOM Killer) ---------------------------------------------------------


def _primary_deployment(service: dict[str, Any]) -> str | None:
    return next((d.get("id") for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), None)


def ecs_force_new_deployment_action(cluster: str, service: str, *, reason: str = "", aws: Any = None) -> Plan:
    """The runbook's immediate action for a leak (`docker-compose restart backend`) on ECS: `aws ecs update-service
    --force-new-deployment` replaces every task with a fresh one of the same task definition."""
    planned = _service(aws, cluster, service)
    task_definition = planned.get("taskDefinition", "")
    deployment = _primary_deployment(planned)

    def recheck() -> str | None:
        now = _service(aws, cluster, service)
        if now.get("status") != "ACTIVE":
            return f"service {cluster}/{service} is {now.get('status')!r}, not ACTIVE"
        if now.get("taskDefinition") != task_definition:
            return f"the service moved to {now.get('taskDefinition', '').rsplit('/', 1)[-1]} since the plan"
        if _primary_deployment(now) != deployment:
            return "a new deployment started since the plan: the tasks are already being replaced"
        return None

    def apply() -> str:
        reply = _aws(aws).call("ecs", "update_service", cluster=cluster, service=service, forceNewDeployment=True)
        now = _primary_deployment(reply.get("service", {}))
        return f"{cluster}/{service}: new deployment {now} of {task_definition.rsplit('/', 1)[-1]} started"

    return Plan(
        action="ecs_force_new_deployment",
        target=f"{cluster}/{service}",
        reason=reason or "restart the leaking service",
        expected_effect=f"every task of {service} is replaced by a fresh one ({task_definition.rsplit('/', 1)[-1]}); "
        "memory starts from zero again, the leak is not fixed",
        undo="none needed: same task definition; the old tasks are drained",
        command=f"aws ecs update-service --cluster {cluster} --service {service} --force-new-deployment",
        recheck=recheck,
        apply=apply,
    )


# --- waiting inside a notebook cell ------------------------------------------------------------------------------


def wait_budget_s(wanted_s: float) -> float:
    """How long an action may wait for AWS inside one cell: what was asked, stopped short of the runner's cell
    timeout (`wait_deadline`), so a slow restore ends as a recorded `failed` outcome instead of a killed cell."""
    deadline, _ = wait_deadline(float(wanted_s))
    return max(1.0, deadline - time.monotonic())


def _wait_for(describe: Callable[[], str], done: str, *, wait_s: float, poll_s: float, what: str) -> float:
    """Poll `describe()` (a status) until it is `done`; seconds waited. Raises TimeoutError past the budget."""
    budget = wait_budget_s(wait_s)
    started = time.monotonic()
    while True:
        status = describe()
        if status == done:
            return time.monotonic() - started
        if status in ("failed", "incompatible-restore", "incompatible-parameters", "deleting", "deleted"):
            raise RuntimeError(f"{what} is {status}")
        if time.monotonic() - started > budget:
            raise TimeoutError(f"{what} still {status!r} after {budget:g} s; keep waiting by hand")
        time.sleep(poll_s)


# --- RDS: the monthly restore test (Daily Backup Verification › Verify backup integrity) --------------------------

RESTORE_TEST_TAG = "imsnb-restore-test"


def restore_test_instance_id(instance_id: str, at: datetime | None = None) -> str:
    """A name for the temporary instance no person would reuse: <instance>-verify-<UTC yyyymmddhhmm>."""
    stamp = (at or datetime.now(UTC)).strftime("%Y%m%d%H%M")
    return f"{instance_id[: 63 - 20]}-verify-{stamp}"


def rds_restore_test_action(
    snapshot: dict[str, Any],
    temp_instance_id: str,
    *,
    created: dict[str, Any],
    run_token: str,
    wait_s: float = 480.0,
    poll_s: float = RESTORE_POLL_S,
    aws: Any = None,
) -> Plan:
    """Restore `snapshot` to a temporary instance, tagged with this run's token, and wait until it is available.
    What was created (identifier, DbiResourceId, ARN, token) is written into `created`, which the delete that
    follows re-checks, so it can only ever touch the instance this run made."""
    snapshot_id = snapshot["snapshot"]

    def recheck() -> str | None:
        found = _aws(aws).call("rds", "describe_db_snapshots", DBSnapshotIdentifier=snapshot_id)["DBSnapshots"]
        if not found or found[0].get("Status") != "available":
            return f"snapshot {snapshot_id} is no longer available"
        existing = _aws(aws).call("rds", "describe_db_instances")["DBInstances"]
        if any(d["DBInstanceIdentifier"] == temp_instance_id for d in existing):
            return f"an instance named {temp_instance_id} already exists: this run will not create (or delete) it"
        return None

    def apply() -> str:
        reply = _aws(aws).call(
            "rds",
            "restore_db_instance_from_db_snapshot",
            DBInstanceIdentifier=temp_instance_id,
            DBSnapshotIdentifier=snapshot_id,
            PubliclyAccessible=False,
            Tags=[{"Key": RESTORE_TEST_TAG, "Value": run_token}],
        )["DBInstance"]
        created.update(
            instance=temp_instance_id,
            resource_id=reply.get("DbiResourceId"),
            arn=reply.get("DBInstanceArn"),
            token=run_token,
        )
        waited = _wait_for(
            lambda: _instance(aws, temp_instance_id).get("DBInstanceStatus"),
            "available",
            wait_s=wait_s,
            poll_s=poll_s,
            what=temp_instance_id,
        )
        endpoint = _instance(aws, temp_instance_id).get("Endpoint") or {}
        return f"{temp_instance_id} available after {waited:.0f} s at {endpoint.get('Address')}:{endpoint.get('Port')}"

    return Plan(
        action="rds_restore_test",
        target=temp_instance_id,
        reason=f"monthly integrity test of the newest snapshot {snapshot_id} (created {snapshot.get('created')})",
        expected_effect=f"a temporary, private instance {temp_instance_id} (deleted again below); "
        "the source instance is untouched",
        undo=f"aws rds delete-db-instance --db-instance-identifier {temp_instance_id} --skip-final-snapshot",
        command=f"aws rds restore-db-instance-from-db-snapshot --db-instance-identifier {temp_instance_id} "
        f"--db-snapshot-identifier {snapshot_id} --no-publicly-accessible "
        f"--tags Key={RESTORE_TEST_TAG},Value={run_token} && aws rds wait db-instance-available "
        f"--db-instance-identifier {temp_instance_id}",
        recheck=recheck,
        apply=apply,
    )


def rds_delete_restore_test_action(
    temp_instance_id: str, *, created: dict[str, Any], source_instance: str, aws: Any = None
) -> Plan:
    """Delete the temporary instance of the restore test, and only it: right before deleting it re-checks that
    this run created it (same DbiResourceId, this run's tag) and that it is not the source instance."""

    def recheck() -> str | None:
        if not created or created.get("instance") != temp_instance_id:
            return f"this run created no instance {temp_instance_id}: nothing of ours to delete"
        if temp_instance_id == source_instance:
            return f"{temp_instance_id} is the source instance: never deleted"
        try:
            now = _instance(aws, temp_instance_id)
        except Exception as exc:  # noqa: BLE001 - DBInstanceNotFound and the like
            return f"{temp_instance_id} is gone already ({_one_line(exc)})"
        if now.get("DbiResourceId") != created.get("resource_id"):
            return f"{temp_instance_id} is another instance than the one this run created (resource id differs)"
        tags = {t["Key"]: t["Value"] for t in now.get("TagList", [])}
        if tags.get(RESTORE_TEST_TAG) != created.get("token"):
            return f"{temp_instance_id} does not carry this run's {RESTORE_TEST_TAG} tag"
        return None

    def apply() -> str:
        reply = _aws(aws).call(
            "rds",
            "delete_db_instance",
            DBInstanceIdentifier=temp_instance_id,
            SkipFinalSnapshot=True,
            DeleteAutomatedBackups=True,
        )["DBInstance"]
        return f"{temp_instance_id}: {reply.get('DBInstanceStatus')}"

    return Plan(
        action="rds_delete_restore_test",
        target=temp_instance_id,
        reason="the restore test is done: the temporary instance costs money and holds a copy of the data",
        expected_effect=f"{temp_instance_id} is deleted (no final snapshot); nothing else is touched",
        undo="none needed: it was a copy; restore the snapshot again to repeat the test",
        command=f"aws rds delete-db-instance --db-instance-identifier {temp_instance_id} --skip-final-snapshot "
        "--delete-automated-backups",
        recheck=recheck,
        apply=apply,
    )


def run_token() -> str:
    """A fresh token naming what one run creates (tagged on it, re-checked before deleting it)."""
    import secrets

    return secrets.token_hex(6)


# --- RDS: vertical scaling sized from the bottleneck (Vertical Scaling › Identify bottleneck) --------------------


def rds_storage_increase_action(
    instance_id: str, *, to_gib: int | None = None, to_iops: int | None = None, reason: str = "", aws: Any = None
) -> Plan:
    """`aws rds modify-db-instance --allocated-storage` (or `--iops`): a storage step of its own, never bundled with
    a class change. RDS storage only grows; the re-check makes sure it is still the size planned from."""
    current = _instance(aws, instance_id)
    from_gib, from_iops = int(current.get("AllocatedStorage") or 0), current.get("Iops")
    change = {"AllocatedStorage": int(to_gib)} if to_gib else {"Iops": int(to_iops or 0)}
    what = f"{from_gib} → {to_gib} GiB" if to_gib else f"{from_iops or 'baseline'} → {to_iops} provisioned IOPS"
    flag = f"--allocated-storage {to_gib}" if to_gib else f"--iops {to_iops}"

    def recheck() -> str | None:
        now = _instance(aws, instance_id)
        if now.get("DBInstanceStatus") != "available":
            return f"{instance_id} is {now.get('DBInstanceStatus')!r}, not 'available'"
        if int(now.get("AllocatedStorage") or 0) != from_gib or now.get("Iops") != from_iops:
            return f"{instance_id}'s storage changed since the plan ({now.get('AllocatedStorage')} GiB)"
        return None

    def apply() -> str:
        _aws(aws).call("rds", "modify_db_instance", DBInstanceIdentifier=instance_id, ApplyImmediately=True, **change)
        now = _instance(aws, instance_id)
        pending = now.get("PendingModifiedValues") or {}
        return f"{instance_id}: {now.get('AllocatedStorage')} GiB" + (f" (pending {pending})" if pending else "")

    return Plan(
        action="rds_storage_increase",
        target=instance_id,
        reason=reason or "storage is the bottleneck",
        expected_effect=f"{what}, online (no restart); the volume optimizes for hours after, and another storage "
        "change is refused for 6 hours",
        undo="none: RDS storage cannot shrink (a smaller instance needs a dump and restore)",
        command=f"aws rds modify-db-instance --db-instance-identifier {instance_id} {flag} --apply-immediately",
        recheck=recheck,
        apply=apply,
    )


def bottleneck_actions(table: pd.DataFrame, cap: dict[str, Any], *, aws: Any = None) -> list[Plan]:
    """The runbook's "CPU: increase vCPU / Memory: increase RAM / Disk: add storage", for the bottleneck found:
    a class with more vCPU or more RAM (one resize), or a storage increase as its own action."""
    from imsnb.aws import bottleneck as bn

    found = bn.bottleneck(table)
    if found is None:
        return []
    row = table[table["resource"] == found].iloc[0]
    instance, klass = cap["instance"], cap["class"]
    why = f"{found} is the bottleneck: {row['used_ratio']:.0%} used against a limit of {row['limit']:.0%}"
    if found in ("cpu", "memory"):
        to = bn.bigger_class(klass, found)
        if to is None:
            return []
        vcpu, ram = bn.CLASS_SPECS[to]
        more = f"{vcpu} vCPU" if found == "cpu" else f"{ram} GiB RAM"
        return [rds_resize_action(instance, to, reason=f"{why}; {to} has {more}", aws=aws)]
    step = bn.storage_step(table, cap, found)
    if step is None:
        return []
    return [
        rds_storage_increase_action(
            instance, to_gib=step.get("allocated_gib"), to_iops=step.get("iops"), reason=why, aws=aws
        )
    ]


# --- ElastiCache: the cache cluster upgrade (Scaling Operations › Cache Cluster Upgrade) --------------------------


def _cache_cluster(aws: Any, cluster_id: str) -> dict[str, Any] | None:
    try:
        found = _aws(aws).call("elasticache", "describe_cache_clusters", CacheClusterId=cluster_id)["CacheClusters"]
    except Exception as exc:  # noqa: BLE001 - CacheClusterNotFound is the answer "none", other errors are not
        if "NotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return None
        raise
    return found[0] if found else None


def _cache_snapshot(aws: Any, name: str) -> dict[str, Any] | None:
    try:
        found = _aws(aws).call("elasticache", "describe_snapshots", SnapshotName=name)["Snapshots"]
    except Exception as exc:  # noqa: BLE001 - SnapshotNotFound is "none"
        if "NotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return None
        raise
    return found[0] if found else None


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
        _aws(aws).call("elasticache", "create_snapshot", CacheClusterId=cluster_id, SnapshotName=snapshot_name)
        waited = _wait_for(
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
    until available (a minute under the cell timeout at most). The old cluster is not touched."""

    def recheck() -> str | None:
        if _cache_cluster(aws, new_cluster_id) is not None:
            return f"a cache cluster named {new_cluster_id} already exists: choose another new_cluster_id"
        snap = _cache_snapshot(aws, snapshot_name)
        if snap is None or snap.get("SnapshotStatus") != "available":
            return f"snapshot {snapshot_name} is not available (was the snapshot step applied?)"
        return None

    def apply() -> str:
        _aws(aws).call(
            "elasticache",
            "create_cache_cluster",
            CacheClusterId=new_cluster_id,
            SnapshotName=snapshot_name,
            Engine="redis",
            CacheNodeType=node_type,
            NumCacheNodes=int(num_nodes),
        )
        waited = _wait_for(
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
