"""Why a statement got slow: its plan now against the plans stored before it (history, baseline).

Every run and every `imsnb record` round takes the generic plans of the statements worth explaining
(`postgres.statement_plans`: nothing is executed) and stores their shapes in the history store, only when a shape
changed. `plan_changes` compares the plans taken now with that history and with the saved baseline, and names the
statements whose plan changed in the window: before → after, when, and whether an index the old plan used is gone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from imsnb import postgres
from imsnb.findings import Finding, Severity, threshold
from imsnb.history import History, Snapshot, StoredPlan
from imsnb.period import Period
from imsnb.postgres.plan_shape import PlanShape
from imsnb.postgres.planned import raw_texts
from imsnb.postgres.plans import is_utility
from imsnb.sampling.deltas import PG_STATEMENTS
from imsnb.sampling.own import own_statements
from imsnb.sampling.postgres import postgres_snapshot, postgres_target, statement_delta
from imsnb.state.backends import store_errors

__all__ = [
    "EXPLAIN_TOP",
    "explain",
    "plan_change_finding",
    "plan_changes",
    "plans_and_changes",
    "record_plans",
    "statements_to_explain",
    "store_plans",
]

EXPLAIN_TOP = 20  # statements explained per run (and per record round), at most
RECORD_TOP = 20
UTILITY_ALLOWANCE = 5  # `imsnb record` reads the texts of up to 5x RECORD_TOP statements to find RECORD_TOP plannable

# Which of the named indexes exist now (an index the old plan used that is gone is the classic cause).
INDEXES_PRESENT = """
SELECT c.relname AS index
FROM pg_class AS c
WHERE c.relkind IN ('i', 'I')
    AND c.relname = ANY(%(names)s)
"""

CHANGE_COLUMNS = [
    "queryid",
    "query",
    "before",
    "after",
    "reference",
    "last_seen_before",
    "first_seen_after",
    "cost_before",
    "cost_after",
    "lost_indexes",
    "before_hash",
    "after_hash",
]


def statements_to_explain(*frames: pd.DataFrame | None, limit: int = EXPLAIN_TOP) -> pd.DataFrame:
    """The statements worth explaining: those of the given frames (top by total time, slow, regressed), each once,
    by total time in the period, at most `limit`."""
    shown = [f for f in frames if f is not None and not f.empty and "queryid" in f]
    if not shown:
        return pd.DataFrame(columns=["queryid", "calls", "total_ms", "mean_ms"])
    frame = pd.concat(shown, ignore_index=True).drop_duplicates("queryid")
    if "query" in frame:  # DDL and other utility statements are never planned: they take no place in the limit
        frame = frame[~frame["query"].map(is_utility)]
    if "total_ms" in frame:
        frame = frame.sort_values("total_ms", ascending=False)
    return frame.head(int(limit)).reset_index(drop=True)


def explain(db: postgres.Database, statements: pd.DataFrame, *, limit: int = EXPLAIN_TOP) -> pd.DataFrame:
    """`postgres.statement_plans` of the first `limit` statements (their normalized text is fetched by queryid;
    what is shown is masked)."""
    if statements.empty:
        statements = pd.DataFrame(columns=["queryid", "query"])
    return postgres.statement_plans(db, statements, limit=limit)


def plan_hashes(plans: pd.DataFrame) -> dict[str, tuple[str, dict[str, Any]]]:
    """{queryid: (plan hash, shape as a dict)} of the statements that could be planned."""
    return {
        str(row.queryid): (row.plan_hash, row.shape.to_dict())
        for row in plans.itertuples(index=False)
        if row.shape is not None
    }


def store_plans(
    history: History, target: str, plans: pd.DataFrame, *, taken_by: str, taken_at: datetime | None = None
) -> int:
    """Store the shapes of `plans` where they changed; returns how many new shapes were stored."""
    return history.add_plans(target, plan_hashes(plans), taken_at=taken_at or datetime.now(UTC), taken_by=taken_by)


def record_plans(
    db: postgres.Database,
    history: History,
    *,
    taken_by: str,
    limit: int = RECORD_TOP,
    statements: Snapshot | None = None,
) -> int:
    """`imsnb record`'s plans: the statements with the most time since the previous stored snapshot (or since
    restart, without one), explained and stored where their shape changed. `statements`: the pg_stat_statements
    snapshot just taken (else one is taken). Returns the new shapes stored."""

    target = postgres_target(db)
    own = own_statements(db)  # imsnb's own statements are not the application's: their plans are not recorded
    now = statements if statements is not None else postgres_snapshot(db, PG_STATEMENTS, taken_by)
    before = history.nearest(
        target,
        PG_STATEMENTS,
        now.taken_at,
        earliest=now.taken_at - timedelta(days=1),
        latest=now.taken_at - timedelta(seconds=0.5),
    )
    moved = statement_delta(before, now, own)[0] if before is not None and before.epoch == now.epoch else None
    if moved is None or moved.empty:
        moved = statement_delta(None, now, own)[0]
    top = moved.sort_values("total_ms", ascending=False).head(int(limit) * UTILITY_ALLOWANCE)
    texts = raw_texts(db, [str(q) for q in top["queryid"]])
    top = top[[not is_utility(texts.get(str(q))) for q in top["queryid"]]].head(int(limit))
    plans = explain(db, top, limit=limit)
    return store_plans(history, target, plans, taken_by=taken_by, taken_at=now.taken_at)


def plan_changes(
    plans: pd.DataFrame,
    history: History,
    target: str,
    *,
    window_start: datetime,
    baseline_plans: dict[str, dict[str, Any]] | None = None,
    now: datetime | None = None,
) -> pd.DataFrame:
    """Statements whose plan now differs from the one they had before the window: from the history store (the last
    other shape seen, when the present shape first appeared inside the window) or else from the saved baseline.

    `frame.attrs`: `compared` (statements with a plan from before to compare with) and `unknown` (none stored)."""

    now = now or datetime.now(UTC)
    baseline_plans = baseline_plans or {}
    rows, compared, unknown = [], 0, 0
    for row in plans.itertuples(index=False):
        if row.shape is None:
            continue
        queryid = str(row.queryid)
        stored = [p for p in history.plans(target, queryid, until=now) if p.first_seen <= now]
        change = _change_in_history(stored, row.plan_hash, window_start, now)
        reference = "history"
        if change is None and queryid in baseline_plans:
            saved = PlanShape.from_dict(baseline_plans[queryid])
            if saved.hash != row.plan_hash:
                change = (saved, None, None)
                reference = "baseline"
        if stored or queryid in baseline_plans:
            compared += 1
        else:
            unknown += 1
        if change is None:
            continue
        before, last_seen, first_seen = change
        rows.append(
            {
                "queryid": queryid,
                "query": row.query,
                "before": before.text,
                "after": row.shape.text,
                "reference": reference,
                "last_seen_before": last_seen,
                "first_seen_after": first_seen,
                "cost_before": before.total_cost,
                "cost_after": row.shape.total_cost,
                "lost_indexes": list(before.indexes),
                "before_hash": before.hash,
                "after_hash": row.plan_hash,
            }
        )
    frame = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    frame.attrs.update(compared=compared, unknown=unknown)
    return frame


def _change_in_history(
    stored: list[StoredPlan], plan_hash: str, window_start: datetime, now: datetime
) -> tuple[Any, datetime | None, datetime | None] | None:
    """(the shape before, when it was last seen, when the present shape was first seen) when the present shape
    first appeared inside the window after another one; None when the plan has not changed in the window."""

    first_seen = None
    for stored_plan in reversed(stored):
        if stored_plan.plan_hash == plan_hash:
            first_seen = stored_plan.first_seen
            continue
        if first_seen is not None and first_seen < window_start:
            return None  # the present shape was already there before the window: not this incident's change
        return PlanShape.from_dict(stored_plan.shape), stored_plan.last_seen, first_seen or now
    return None


def with_lost_indexes(db: postgres.Database, changes: pd.DataFrame) -> pd.DataFrame:
    """`lost_indexes` keeps only the indexes the old plan used that no longer exist."""
    if changes.empty:
        return changes
    names = sorted({name for names in changes["lost_indexes"] for name in names})
    present = set(db.frame(INDEXES_PRESENT, {"names": names})["index"]) if names else set()
    out = changes.copy()
    out["lost_indexes"] = [", ".join(n for n in names if n not in present) for names in changes["lost_indexes"]]
    out.attrs.update(changes.attrs)
    return out


def plan_change_finding(changes: pd.DataFrame, regressed: pd.DataFrame | None, period: Period) -> Finding:
    """`postgres.plan_change`: ERROR when a statement whose plan changed also regressed (the cause of the
    regression, named); WARNING when an index the old plan used no longer exists; INFO for a plan change alone
    (plans change legitimately as data grows: worth knowing, not a page); OK when no plan changed."""
    compared, unknown = changes.attrs.get("compared", 0), changes.attrs.get("unknown", 0)
    if changes.empty:
        no_history = f"; {unknown} without a stored plan (run `imsnb record` to keep plan history)" if unknown else ""
        return Finding.ok(
            "postgres.plan_change",
            f"no statement's plan changed ({compared} compared with their stored plans{no_history})",
            value=0,
            period=period,
        )
    limit = threshold("postgres.statement_regression").warning
    ratios: dict[str, float] = {}
    if regressed is not None and not regressed.empty:
        ratios = {str(r.queryid): float(r.ratio) for r in regressed.itertuples(index=False) if r.ratio >= limit}
    frame = changes.copy()
    frame["regressed_x"] = [round(ratios[q], 1) if q in ratios else None for q in frame["queryid"]]
    frame["lost"] = frame["lost_indexes"].astype(str).str.len() > 0
    frame = frame.sort_values(["regressed_x", "lost"], ascending=False, na_position="last").reset_index(drop=True)
    worst = frame.iloc[0]
    if pd.notna(worst["regressed_x"]):
        severity = Severity.ERROR
    elif worst["lost"]:
        severity = Severity.WARNING
    else:
        severity = Severity.INFO
    message = (
        f"the plan of {len(frame)} statement(s) changed; {postgres.excerpt(worst['query'])}: "
        f"{worst['before']} → {worst['after']} ({_when(worst)})"
    )
    if worst["lost"]:
        message += f"; {worst['lost_indexes']} no longer exists"
    if pd.notna(worst["regressed_x"]):
        message += f"; it runs {worst['regressed_x']:g}x slower than before"
    shown = [c for c in CHANGE_COLUMNS if c != "query" and not c.endswith("_hash")]
    evidence = frame[[*shown, "regressed_x", "query"]]
    return Finding.of(
        "postgres.plan_change",
        severity,
        message,
        value=len(frame),
        evidence=evidence,
        period=period,
    )


def _when(change: Any) -> str:
    if change["reference"] == "baseline":
        return "the baseline's plan"
    last, first = change["last_seen_before"], change["first_seen_after"]
    if pd.notna(last) and pd.notna(first):
        return f"changed between {last:%H:%M:%S} and {first:%H:%M:%S} UTC"
    if pd.notna(last):
        return f"last seen {last:%Y-%m-%d %H:%M:%S} UTC, changed since"
    return "changed"


def plans_and_changes(
    sample: Any, *frames: pd.DataFrame | None, limit: int = EXPLAIN_TOP
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For a run (`Sample`): the plans of the statements in `frames` worth explaining, and their changes against the
    history store and the saved baseline (compared before this run's plans are stored, so they compare with the
    past only)."""

    target = postgres_target(sample.db)
    plans = explain(sample.db, statements_to_explain(*frames, limit=limit), limit=limit)
    now = datetime.now(UTC)
    start = sample.window.start if sample.window is not None else now - timedelta(hours=1)
    saved = (sample.baseline(PG_STATEMENTS) or {}).get("plans") or {}
    try:
        changes = plan_changes(plans, sample.history, target, window_start=start, baseline_plans=saved, now=now)
    except store_errors() as exc:  # the stored plans cannot be read: compared with the baseline's alone
        sample.store_problems.failed("stored plans not read", exc, missed="plans")
        changes = plan_changes(plans, _NoPlans(), target, window_start=start, baseline_plans=saved, now=now)
    changes = with_lost_indexes(sample.db, changes)
    if sample.store:
        try:
            store_plans(sample.history, target, plans, taken_by=sample.taken_by, taken_at=now)
        except Exception as exc:  # noqa: BLE001 - a full disk or an unreachable store must not cost the diagnosis
            sample.store_problems.failed("plans not stored in the history", exc, missed="plans")
    return plans, changes


class _NoPlans:
    """A history that holds no plan (the store could not be read)."""

    def plans(self, *args: Any, **kwargs: Any) -> list[StoredPlan]:
        return []
