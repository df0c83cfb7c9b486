"""postgres.index_advice: the indexes a statement lacks, from its parse tree, kept only when the planner uses them.

For a statement whose generic plan reads a table of meaningful size by a sequential scan (or by an index scan that
filters rows away), the candidates come from the parse tree (pglast, `candidates.py`): columns compared by
`=`/`IN`/`= ANY` (equality), join keys, ranges (`<`, `>`, `BETWEEN`) and `ORDER BY`; single columns, then
equality-first multi-column ones of at most three columns. With HypoPG in the database each candidate becomes a
hypothetical index, the statement is prepared again (a prepared statement keeps its cached plan and would ignore it) and
explained; a candidate is kept when the planner uses it and the cost drops by `min_cost_drop` (half) or more, and of
those the smallest that gets nearly all (`NEAR_BEST`) of the best drop is advised. `hypopg_reset()` always follows.
Without HypoPG the advice is the equality-first guess, marked not verified.

Taken from Dexter (ankane/dexter, `lib/dexter/indexer.rb`): generic plans of normalized statements (PREPARE with
`force_generic_plan`, one NULL per parameter counted from `pg_prepared_statements.parameter_types`), hypothetical
indexes through HypoPG, the 50% cost-saving bar, existing valid btree indexes covering a candidate's leading columns
count as "already indexed", single- then multi-column candidates, each index tried alone before it is advised
(Dexter's pass 3), and no btree on json/jsonb/point. Not taken: Dexter tries every referenced column and every
two-column permutation in batches; here only the columns whose role an index serves, equality first, and each
candidate alone, which also names the statements each index helps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from imsnb.findings import Finding, Severity, judge, unjudged
from imsnb.findings.finding import evidence_rows
from imsnb.period import FRAME_ATTR, Period
from imsnb.postgres.candidates import Candidate, index_candidates, waits_instead_of_scanning
from imsnb.postgres.hypothetical import hypopg_schema, hypothetical_indexes
from imsnb.postgres.indexable import Table, regclass_name, tables_named, useful_candidates
from imsnb.postgres.literals import excerpt
from imsnb.postgres.plan_shape import plan_nodes
from imsnb.postgres.planned import Planned, planned_statements
from imsnb.postgres.plans import PlanUnavailable, generic_plans
from imsnb.postgres.session import Database, database_or_default

__all__ = ["index_advice", "index_advice_finding"]

CHECK = "postgres.index_advice"
ADVICE_ATTR = "imsnb.index_advice"  # what the advice examined, in the frame's attrs (for the finding)
MIN_ROWS = 10_000  # a table smaller than this is read whole faster than through an index: never advised
NEAR_BEST = 0.9  # a smaller index that gets this share of the best cost drop is preferred
VERIFIED = "verified by the planner (HypoPG)"
NOT_VERIFIED = "not verified: HypoPG is not installed — CREATE EXTENSION hypopg (allowed on RDS, Aurora and Cloud SQL)"
ADVICE_COLUMNS = [
    "schema",
    "table",
    "index",
    "columns",
    "statement",
    "queryids",
    "calls_per_s",
    "time_share",
    "cost_before",
    "cost_after",
    "size_bytes",
    "verified",
    "note",
    "detail",
]


# --- verified by the planner ---------------------------------------------------------------------------------------


@dataclass
class _Statement:
    planned: Planned
    calls_per_s: float
    time_share: float
    targets: dict[str, str] = field(default_factory=dict)  # relation -> "seq" or "filter"
    candidates: list[Candidate] = field(default_factory=list)
    tried: dict[Candidate, tuple[float, float]] = field(default_factory=dict)  # -> (cost with it, size), when used

    @property
    def cost(self) -> float:
        assert self.planned.shape is not None
        return self.planned.shape.total_cost

    def drop(self, candidate: Candidate) -> float:
        return (self.cost - self.tried[candidate][0]) / self.cost if self.cost > 0 else 0.0


def index_advice(
    db: Database | None,
    statements: pd.DataFrame,
    *,
    min_rows: int = MIN_ROWS,
    min_cost_drop: float = 0.5,
    max_tables: int = 5,
    period: Period | None = None,
    limit: int = 20,
    window_ms: float | None = None,
) -> pd.DataFrame:
    """Indexes the window's statements lack, one row per index: schema, table, index (its name), columns, statement
    (`CREATE INDEX CONCURRENTLY IF NOT EXISTS ...`), queryids it helps, their calls_per_s and time_share (of
    `window_ms`, default the frame's total_ms), cost_before and cost_after (the planner's, summed over those
    statements), size_bytes (HypoPG's estimate), verified, note, detail (per statement: queryid, query, costs).

    `statements`: pg_stat_statements rows (queryid, query; calls, total_ms, calls_per_s when known), most important
    first; the first `limit` are planned. Only tables of `min_rows` rows or more that a statement reads by a
    sequential scan (or an index scan with a filter) are considered, the first `max_tables` of them. Never advised:
    small tables, candidates an existing valid btree index serves (same leading columns), equality on a column
    that matches more than LOW_SELECTIVITY of the rows, statements that wait (pg_sleep, advisory locks).
    """
    db = database_or_default(db)
    period = period if period is not None else statements.attrs.get(FRAME_ATTR)
    window_ms = _window_ms(statements, window_ms)
    examined: dict[str, Any] = {
        "planned": 0,
        "skipped": [],  # (queryid, why)
        "unreadable": 0,  # of them, for the role's privileges
        "tables": [],
        "hypopg": False,
        "min_rows": min_rows,
    }
    planned = planned_statements(db, statements, limit=limit)
    work = _scanning(planned, examined, window_ms, period)
    tables = _tables(db, work, min_rows=min_rows, max_tables=max_tables)
    examined["tables"] = [f"{t.schema}.{t.name}" for t in tables.values()]
    for statement in work:
        statement.candidates = useful_candidates(statement.planned.text or "", statement.targets, tables)
    hypopg = hypopg_schema(db)
    examined["hypopg"] = hypopg is not None
    if hypopg is not None:
        _try_candidates(db, hypopg, [s for s in work if s.candidates])
        chosen = _chosen_verified(work, min_cost_drop)
    else:
        chosen = _chosen_unverified(work, tables)
    advice = _advice_frame(chosen, tables, verified=hypopg is not None)
    advice.attrs[ADVICE_ATTR] = examined
    if period is not None:
        advice.attrs[FRAME_ATTR] = period
    return advice


def _scanning(
    planned: list[Planned], examined: dict[str, Any], window_ms: float | None, period: Period | None
) -> list[_Statement]:
    """The planned statements that scan a table (sequentially, or by an index with a filter), with their rates;
    `examined` counts what was planned and says why each other statement was skipped."""
    work: list[_Statement] = []
    for item in planned:
        if item.shape is None:
            examined["skipped"].append((item.queryid, item.skipped))
            examined["unreadable"] += item.access
            continue
        examined["planned"] += 1
        waits = waits_instead_of_scanning(item.text or "")
        if waits:
            examined["skipped"].append((item.queryid, f"its time is {waits}, not scanning"))
            continue
        targets = _scanned(item.plan or {})
        if targets:
            work.append(_Statement(item, *_rates(item.row, window_ms, period), targets=targets))
    return work


def _window_ms(statements: pd.DataFrame, window_ms: float | None) -> float | None:
    if window_ms is not None:
        return float(window_ms)
    if "total_ms" in statements and len(statements):
        total = float(pd.to_numeric(statements["total_ms"], errors="coerce").sum())
        return total if total > 0 else None
    return None


def _rates(row: dict[str, Any], window_ms: float | None, period: Period | None) -> tuple[float, float]:
    calls_per_s = _number(row.get("calls_per_s"))
    if math.isnan(calls_per_s) and period is not None and period.seconds:
        calls_per_s = _number(row.get("calls")) / period.seconds
    share = _number(row.get("total_ms")) / window_ms if window_ms else math.nan
    return calls_per_s, share


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _scanned(plan: dict[str, Any]) -> dict[str, str]:
    """Relations the plan reads whole (Seq Scan) or through an index while filtering rows away."""
    found: dict[str, str] = {}
    for node in plan_nodes(plan):
        relation = node.get("Relation Name")
        if not relation:
            continue
        kind = node.get("Node Type")
        if kind == "Seq Scan":
            found[relation] = "seq"
        elif kind in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan") and node.get("Filter"):
            found.setdefault(relation, "filter")
    return found


def _tables(db: Database, work: list[_Statement], *, min_rows: int, max_tables: int) -> dict[tuple, Table]:
    """The tables worth an index, keyed by (schema as the statement names it, table): large enough, scanned, the
    first `max_tables` in the statements' order."""
    wanted: dict[tuple[str | None, str], str] = {}
    for statement in work:
        for candidate in index_candidates(statement.planned.text or ""):
            if candidate.table in statement.targets:
                key = (candidate.schema, candidate.table)
                wanted.setdefault(key, regclass_name(*key))
    return tables_named(db, wanted, min_rows=min_rows, max_tables=max_tables) if wanted else {}


def _try_candidates(db: Database, hypopg: str, work: list[_Statement]) -> None:
    """Each candidate alone as a hypothetical index, every statement it may serve planned again with it; records
    the cost and the index's estimated size where the planner used it."""
    users: dict[Candidate, list[_Statement]] = {}
    for statement in work:
        for candidate in statement.candidates:
            users.setdefault(candidate, []).append(statement)
    if not users:
        return
    with generic_plans(db) as explain, hypothetical_indexes(db, hypopg) as create:
        for candidate, statements in users.items():
            made = create(candidate)
            if made is None:
                continue
            name, size = made
            for statement in statements:
                try:
                    plan = explain(statement.planned.text)
                except PlanUnavailable:
                    continue
                if any(node.get("Index Name") == name for node in plan_nodes(plan)):
                    statement.tried[candidate] = (float(plan.get("Total Cost") or 0.0), size)


def _chosen_verified(work: list[_Statement], min_cost_drop: float) -> dict[Candidate, list[tuple[_Statement, float]]]:
    """Per statement, of the candidates the planner used with a drop of `min_cost_drop` or more, the smallest that
    gets NEAR_BEST of the best drop; a statement's choice moves to a longer chosen index that starts with it when
    that one is as good for it (one index, not two)."""
    near: dict[int, list[Candidate]] = {}
    pick: dict[int, Candidate] = {}
    for number, statement in enumerate(work):
        kept = [c for c in statement.tried if statement.drop(c) >= min_cost_drop]
        if not kept:
            continue
        best = max(statement.drop(c) for c in kept)
        near[number] = [c for c in kept if statement.drop(c) >= NEAR_BEST * best]
        pick[number] = min(near[number], key=lambda c, s=statement: (s.tried[c][1], s.tried[c][0], len(c.columns)))
    for number, candidate in list(pick.items()):
        longer = [
            other
            for other in set(pick.values())
            if other.table == candidate.table
            and other.schema == candidate.schema
            and len(other.columns) > len(candidate.columns)
            and other.columns[: len(candidate.columns)] == candidate.columns
            and other in near[number]
        ]
        if longer:
            pick[number] = max(longer, key=lambda c: len(c.columns))
    chosen: dict[Candidate, list[tuple[_Statement, float]]] = {}
    for number, candidate in pick.items():
        statement = work[number]
        chosen.setdefault(candidate, []).append((statement, statement.tried[candidate][0]))
    return chosen


def _chosen_unverified(
    work: list[_Statement], tables: dict[tuple, Table]
) -> dict[Candidate, list[tuple[_Statement, float]]]:
    """Without the planner's word: per sequentially scanned table, its equality columns (two at most) and then a
    range or the ORDER BY column, when the statement compares any column by equality. Join keys alone and ranges
    alone are left to the planner (a generic plan assumes a range matches a third of the rows)."""
    chosen: dict[Candidate, list[tuple[_Statement, float]]] = {}
    for statement in work:
        for table in {(c.schema, c.table) for c in statement.candidates}:
            if statement.targets.get(table[1]) != "seq":
                continue
            mine = [c for c in statement.candidates if (c.schema, c.table) == table]
            equality = [c for c in mine if c.roles and c.roles[0] == "equality" and "join" not in c.roles]
            if not equality:
                continue
            guess = max(equality, key=lambda c: (len(c.columns), -mine.index(c)))
            chosen.setdefault(guess, []).append((statement, math.nan))
    return chosen


def _advice_frame(
    chosen: dict[Candidate, list[tuple[_Statement, float]]], tables: dict[tuple, Table], *, verified: bool
) -> pd.DataFrame:
    rows = []
    for candidate, helped in chosen.items():
        detail = [
            {
                "queryid": s.planned.queryid,
                "query": s.planned.query,
                "cost_before": s.cost,
                "cost_after": after,
                "calls_per_s": s.calls_per_s,
                "time_share": s.time_share,
            }
            for s, after in helped
        ]
        table = next(t for t in tables.values() if t.schema == candidate.schema and t.name == candidate.table)
        sizes = [s.tried[candidate][1] for s, _ in helped if candidate in s.tried]
        rows.append(
            {
                "schema": candidate.schema,
                "table": candidate.table,
                "index": candidate.name,
                "columns": candidate.columns,
                "statement": candidate.statement(),
                "queryids": [d["queryid"] for d in detail],
                "calls_per_s": _sum_known(d["calls_per_s"] for d in detail),
                "time_share": _sum_known(d["time_share"] for d in detail),
                "cost_before": sum(d["cost_before"] for d in detail),
                "cost_after": sum(d["cost_after"] for d in detail) if verified else math.nan,
                "size_bytes": sizes[0] if sizes else math.nan,
                "verified": verified,
                "note": _note(candidate, table, verified),
                "detail": detail,
            }
        )
    frame = pd.DataFrame(rows, columns=ADVICE_COLUMNS)
    if not frame.empty:
        frame = frame.sort_values(["time_share", "cost_before"], ascending=False, na_position="last")
    return frame.reset_index(drop=True)


def _sum_known(values: Iterable[float]) -> float:
    known = [v for v in values if not math.isnan(v)]
    return sum(known) if known else math.nan


def _note(candidate: Candidate, table: Table, verified: bool) -> str:
    notes = [VERIFIED if verified else NOT_VERIFIED]
    for index in table.indexes:
        if not index["valid"] and tuple(index["columns"][: len(candidate.columns)]) == candidate.columns:
            notes.append(f"an INVALID index {index['index']} (a failed build) is on these columns: drop it first")
    return "; ".join(notes)


# --- the finding ---------------------------------------------------------------------------------------------------


def index_advice_finding(advice: pd.DataFrame, period: Period | None = None) -> Finding:
    """INFO per advised index: its CREATE INDEX, the statements it helps (calls/s, share of the window's statement
    time), the planner's cost before → after, its size, verified or not. WARNING when verified advice helps
    statements that carry the catalogue's share (half) of the window's statement time or more: a missing index
    behind most of the time is likely the incident's cause, not an improvement for later. Unverified advice stays
    INFO: a guess does not page. OK when the statements were planned and none lacks an index."""
    period = period if period is not None else advice.attrs.get(FRAME_ATTR)
    examined = advice.attrs.get(ADVICE_ATTR, {})
    if advice.empty:
        return _no_advice(examined, period)
    verified = bool(advice["verified"].all())
    parts = []
    for row in advice.itertuples():
        helps = f"helps {len(row.queryids)} statement(s)"
        rates = []
        if not math.isnan(row.calls_per_s):
            rates.append(f"{row.calls_per_s:.1f} calls/s")
        if not math.isnan(row.time_share):
            rates.append(f"{row.time_share:.0%} of the window's statement time")
        if rates:
            helps += f" ({', '.join(rates)})"
        cost = f"planner cost {row.cost_before:.0f}"
        cost += f" → {row.cost_after:.0f}" if not math.isnan(row.cost_after) else " (after: not verified)"
        size = f", ~{_size(row.size_bytes)}" if not math.isnan(row.size_bytes) else ""
        parts.append(f"{row.statement}: {helps}, {cost}{size}; {row.note}")
    message = f"{len(advice)} index(es) advised: " + "; ".join(parts)
    share = _sum_known(_unique_shares(advice))
    value = None if math.isnan(share) else round(share, 4)
    evidence = evidence_rows(_evidence(advice))
    if verified and value is not None:
        return judge(CHECK, value, message, floor=Severity.INFO, evidence=evidence, period=period)
    return unjudged(CHECK, Severity.INFO, message, evidence=evidence, period=period)


def _no_advice(examined: dict[str, Any], period: Period | None) -> Finding:
    planned = int(examined.get("planned", 0))
    skipped = examined.get("skipped", [])
    reasons = "; ".join(dict.fromkeys(reason for _, reason in skipped))
    if planned == 0 and skipped:
        return unjudged(
            CHECK,
            Severity.INFO,
            f"no advice: none of {len(skipped)} statement(s) could be planned ({excerpt(reasons, 400)})",
            period=period,
        )
    unreadable = int(examined.get("unreadable", 0))
    if unreadable:  # an OK would vouch for statements nobody looked at
        return unjudged(
            CHECK,
            Severity.INFO,
            f"no advice for {planned} statement(s) planned, but {unreadable} could not be planned with this role's "
            f"privileges ({excerpt(reasons, 400)})",
            period=period,
        )
    if planned == 0:
        return unjudged(CHECK, Severity.OK, "no statement to examine", period=period)
    how = VERIFIED if examined.get("hypopg") else NOT_VERIFIED
    tables = ", ".join(examined.get("tables", [])) or "none"
    message = (
        f"no index advised: {planned} statement(s) planned; tables of {int(examined.get('min_rows', MIN_ROWS)):,} "
        f"rows or more scanned without a fitting index: {tables}; {how}"
    )
    if skipped:
        message += f"; {len(skipped)} not planned ({excerpt(reasons, 200)})"
    return unjudged(CHECK, Severity.OK, message, value=0, period=period)


def _unique_shares(advice: pd.DataFrame) -> list[float]:
    shares: dict[str, float] = {}
    for detail in advice["detail"]:
        for entry in detail:
            shares.setdefault(str(entry["queryid"]), entry["time_share"])
    return list(shares.values())


def _evidence(advice: pd.DataFrame) -> pd.DataFrame:
    shown = advice[["table", "statement", "queryids", "calls_per_s", "time_share", "cost_before", "cost_after"]].copy()
    shown.insert(1, "columns", advice["columns"].map(lambda columns: ", ".join(columns)))
    shown["queryids"] = shown["queryids"].map(lambda ids: ", ".join(str(i) for i in ids if i))
    shown["size"] = advice["size_bytes"].map(lambda b: "" if math.isnan(b) else _size(b))
    shown["verified"] = advice["verified"]
    return shown


def _size(size_bytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:.1f} {unit}"
    return f"{size_bytes:.0f} B"
