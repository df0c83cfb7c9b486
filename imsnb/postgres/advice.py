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
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg
from pglast.stream import maybe_double_quote_name
from psycopg import sql as pgsql

from imsnb.errors import ImsnbError
from imsnb.findings import Finding, Severity, judge, unjudged
from imsnb.findings.finding import evidence_rows
from imsnb.period import FRAME_ATTR, Period
from imsnb.postgres.candidates import Candidate, index_candidates, waits_instead_of_scanning
from imsnb.postgres.literals import excerpt
from imsnb.postgres.plan_shape import plan_nodes
from imsnb.postgres.plans import Planned, PlanUnavailable, generic_plans, planned_statements
from imsnb.postgres.session import Database, database_or_default

__all__ = ["index_advice", "index_advice_finding"]

CHECK = "postgres.index_advice"
ADVICE_ATTR = "imsnb.index_advice"  # what the advice examined, in the frame's attrs (for the finding)
MIN_ROWS = 10_000  # a table smaller than this is read whole faster than through an index: never advised
NEAR_BEST = 0.9  # a smaller index that gets this share of the best cost drop is preferred
LOW_SELECTIVITY = 0.1  # equality matching more than this share of the rows: the planner would scan the table anyway
NO_BTREE_TYPES = ("json", "jsonb", "point", "xml", "polygon", "circle", "box", "line", "lseg", "path", "tsvector")
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

HYPOPG = """
SELECT n.nspname AS schema
FROM pg_extension AS e
JOIN pg_namespace AS n ON n.oid = e.extnamespace
WHERE e.extname = 'hypopg'
    AND has_schema_privilege(n.oid, 'USAGE')
    AND has_function_privilege(
        to_regprocedure(quote_ident(n.nspname) || '.hypopg_create_index(text)'), 'EXECUTE'
    )
"""

HYPOTHETICAL_INDEX = """
SELECT
    h.indexrelid::int8 AS oid,
    h.indexname AS name,
    {hypopg}.hypopg_relation_size(h.indexrelid)::float8 AS size_bytes
FROM {hypopg}.hypopg_create_index(%(statement)s) AS h
"""

HYPOTHETICAL_RESET = "SELECT {hypopg}.hypopg_reset()"

TABLES = """
SELECT
    t.name AS given,
    c.oid::int8 AS oid,
    n.nspname AS schema,
    c.relname AS table,
    greatest(c.reltuples, 0)::float8 AS rows
FROM unnest(%(names)s::text[]) AS t(name)
JOIN pg_class AS c ON c.oid = to_regclass(t.name)
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
"""

COLUMNS = """
SELECT
    a.attrelid::int8 AS oid,
    a.attname AS column,
    format_type(a.atttypid, NULL) AS type,
    s.n_distinct::float8 AS n_distinct
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
LEFT JOIN pg_stats AS s
    ON s.schemaname = n.nspname
    AND s.tablename = c.relname
    AND s.attname = a.attname
    AND s.inherited = (c.relkind = 'p')
WHERE a.attrelid = ANY(%(oids)s::oid[])
    AND a.attnum > 0
    AND NOT a.attisdropped
"""

# -- after Dexter's `indexes`: key columns in order, expressions named as such
INDEXES = """
SELECT
    i.indrelid::int8 AS oid,
    c.relname AS index,
    am.amname AS method,
    i.indisvalid AS valid,
    i.indpred IS NOT NULL AS partial,
    ARRAY(
        SELECT coalesce(a.attname::text, '(expression)')
        FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
        LEFT JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        ORDER BY k.ord
    ) AS columns
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
JOIN pg_am AS am ON am.oid = c.relam
WHERE i.indrelid = ANY(%(oids)s::oid[])
ORDER BY i.indrelid, c.relname
"""


# --- candidates from the parse tree --------------------------------------------------------------------------------


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


@dataclass
class _Table:
    oid: int
    schema: str
    name: str
    rows: float
    columns: dict[str, tuple[str, float | None]]  # column -> (type, n_distinct)
    indexes: list[dict[str, Any]]


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
    tables = _tables(db, work, min_rows=min_rows, max_tables=max_tables)
    examined["tables"] = [f"{t.schema}.{t.name}" for t in tables.values()]
    for statement in work:
        statement.candidates = _useful(statement, tables)
    hypopg = _hypopg_schema(db)
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


def _tables(db: Database, work: list[_Statement], *, min_rows: int, max_tables: int) -> dict[tuple, _Table]:
    """The tables worth an index, keyed by (schema as the statement names it, table): large enough, scanned, the
    first `max_tables` in the statements' order."""
    wanted: dict[tuple[str | None, str], str] = {}
    for statement in work:
        for candidate in index_candidates(statement.planned.text or ""):
            if candidate.table in statement.targets:
                key = (candidate.schema, candidate.table)
                wanted.setdefault(key, _regclass_name(*key))
    if not wanted:
        return {}
    found = db.frame(TABLES, {"names": list(dict.fromkeys(wanted.values()))})
    by_name = {r["given"]: r for r in found.to_dict(orient="records")}
    chosen: dict[tuple, dict[str, Any]] = {}
    for key, name in wanted.items():
        row = by_name.get(name)
        if row is None or row["rows"] < min_rows:
            continue
        kept = {r["oid"] for r in chosen.values()}
        if row["oid"] in kept or len(kept) < max_tables:
            chosen[key] = row
    if not chosen:
        return {}
    oids = sorted({int(r["oid"]) for r in chosen.values()})
    columns = db.frame(COLUMNS, {"oids": oids})
    indexes = db.frame(INDEXES, {"oids": oids})
    tables = {}
    for key, row in chosen.items():
        mine = columns[columns["oid"] == row["oid"]]
        tables[key] = _Table(
            oid=int(row["oid"]),
            schema=row["schema"],
            name=row["table"],
            rows=float(row["rows"]),
            columns={
                c: (t, None if pd.isna(n) else float(n))
                for c, t, n in zip(mine["column"], mine["type"], mine["n_distinct"], strict=True)
            },
            indexes=indexes[indexes["oid"] == row["oid"]].to_dict(orient="records"),
        )
    return tables


def _regclass_name(schema: str | None, table: str) -> str:
    name = maybe_double_quote_name(table)
    return f"{maybe_double_quote_name(schema)}.{name}" if schema else name


def _useful(statement: _Statement, tables: dict[tuple, _Table]) -> list[Candidate]:
    """The statement's candidates on its scanned, large tables that the table has, btree can index, no valid index
    serves already, and that select few enough rows for the planner to want an index."""
    keep = []
    for candidate in index_candidates(statement.planned.text or ""):
        table = tables.get((candidate.schema, candidate.table))
        if table is None or candidate.table not in statement.targets:
            continue
        if any(c not in table.columns or table.columns[c][0] in NO_BTREE_TYPES for c in candidate.columns):
            continue
        if _served(candidate, table) or _matches_too_many(candidate, table):
            continue
        keep.append(Candidate(table.name, candidate.columns, table.schema, candidate.roles))
    return list(dict.fromkeys(keep))


def index_serves(index: dict[str, Any], columns: tuple[str, ...]) -> bool:
    """A row of INDEXES that is a valid, non-partial btree index starting with exactly these columns: what the
    advice skips and what the create_index action re-checks before building."""
    usable = index["method"] == "btree" and bool(index["valid"]) and not index["partial"]
    return usable and tuple(index["columns"][: len(columns)]) == tuple(columns)


def _served(candidate: Candidate, table: _Table) -> bool:
    """An existing valid, non-partial btree index starts with the candidate's columns (its equality columns in any
    order)."""
    width = len(candidate.columns)
    for index in table.indexes:
        if index_serves(index, candidate.columns):
            return True
        usable = index["method"] == "btree" and index["valid"] and not index["partial"]
        if usable and len(candidate.keys) == width and set(index["columns"][:width]) == set(candidate.columns):
            return True
    return False


def _matches_too_many(candidate: Candidate, table: _Table) -> bool:
    """Equality on these columns matches more than LOW_SELECTIVITY of the rows (by pg_stats' n_distinct) and there is
    no range or order after them: the planner would read the table anyway. Unknown statistics: not refused."""
    if len(candidate.keys) != len(candidate.columns):
        return False
    share = 1.0
    for column in candidate.columns:
        distinct = table.columns[column][1]
        if distinct is None or distinct == 0:
            return False
        distinct = distinct if distinct > 0 else -distinct * max(table.rows, 1.0)
        share *= 1.0 / max(distinct, 1.0)
    return share > LOW_SELECTIVITY


def _hypopg_schema(db: Database) -> str | None:
    return db.scalar(HYPOPG)


def _try_candidates(db: Database, hypopg: str, work: list[_Statement]) -> None:
    """Each candidate alone as a hypothetical index, every statement it may serve planned again with it; records
    the cost and the index's estimated size where the planner used it."""
    users: dict[Candidate, list[_Statement]] = {}
    for statement in work:
        for candidate in statement.candidates:
            users.setdefault(candidate, []).append(statement)
    if not users:
        return
    with generic_plans(db) as explain, _hypothetical(db, hypopg) as create:
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


@contextmanager
def _hypothetical(db: Database, hypopg: str) -> Iterator[Any]:
    """`create(candidate)` -> (its hypothetical name, estimated size) or None, one at a time (the previous one is
    reset first); `hypopg_reset()` when done, whatever happened."""
    reset = pgsql.SQL(HYPOTHETICAL_RESET).format(hypopg=pgsql.Identifier(hypopg))
    make = pgsql.SQL(HYPOTHETICAL_INDEX).format(hypopg=pgsql.Identifier(hypopg))

    def create(candidate: Candidate) -> tuple[str, float] | None:
        db.scalar(reset)
        target = _regclass_name(candidate.schema, candidate.table)
        columns = ", ".join(maybe_double_quote_name(c) for c in candidate.columns)
        try:
            row = db.frame(make, {"statement": f"CREATE INDEX ON {target} ({columns})"})
        except psycopg.Error:  # e.g. no btree operator class for the type
            return None
        return str(row.iat[0, 1]), float(row.iat[0, 2])

    try:
        yield create
    finally:
        try:
            db.scalar(reset)
        except (psycopg.Error, ImsnbError):
            pass  # the connection is gone: hypothetical indexes live and die with it


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
    work: list[_Statement], tables: dict[tuple, _Table]
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
    chosen: dict[Candidate, list[tuple[_Statement, float]]], tables: dict[tuple, _Table], *, verified: bool
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


def _note(candidate: Candidate, table: _Table, verified: bool) -> str:
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
