"""The window's statements planned: each one's raw normalized text (by queryid: the frames imsnb shows carry masked
text, which would not prepare) and its generic plan (`plans.py`), or why it has none."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import psycopg

from imsnb.postgres.literals import mask_literals
from imsnb.postgres.plan_shape import PlanShape, plan_shape
from imsnb.postgres.plans import PlanUnavailable, generic_plans
from imsnb.postgres.session import Database, database_or_default

__all__ = ["statement_plans"]

PLAN_COLUMNS = ["queryid", "query", "shape", "nodes", "cost", "rows", "plan_hash", "skipped"]

# The raw normalized text: the frames imsnb shows carry masked text, which would not prepare. A statement without
# constants has the queryid of imsnb's own "PREPARE imsnb_plan AS ..." of it (recorded under imsnb's role when
# pg_stat_statements.track = all): the application's text first.
STATEMENT_TEXTS = """
SELECT DISTINCT ON (s.queryid)
    s.queryid::text AS queryid,
    s.query
FROM pg_stat_statements AS s
WHERE s.queryid = ANY(%(queryids)s::bigint[])
    AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.queryid, s.query LIKE '/* imsnb */%%', s.query LIKE 'PREPARE %%', s.calls DESC
"""


@dataclass
class Planned:
    """One statement's plan, with the raw text it was planned from (kept off the frames imsnb shows)."""

    queryid: str | None
    query: str  # masked, for display
    text: str | None  # the normalized text as pg_stat_statements has it
    plan: dict[str, Any] | None = None
    shape: PlanShape | None = None
    skipped: str = ""
    access: bool = False  # skipped for the role's privileges, not for what the statement is
    row: dict[str, Any] = field(default_factory=dict)  # the statement's row of the frame given


def statement_plans(db: Database | None, statements: pd.DataFrame, *, limit: int = 20) -> pd.DataFrame:
    """One row per statement (the first `limit` of `statements`, which has `queryid` and `query` as
    pg_stat_statements gives them): queryid, query (masked), shape (a PlanShape, None when skipped), nodes (its
    text), cost, rows, plan_hash, skipped (why it has no plan: a reason, never an error)."""
    planned = planned_statements(database_or_default(db), statements, limit=limit)
    rows = [
        {
            "queryid": p.queryid,
            "query": p.query,
            "shape": p.shape,
            "nodes": p.shape.text if p.shape else "",
            "cost": p.shape.total_cost if p.shape else float("nan"),
            "rows": p.shape.rows if p.shape else float("nan"),
            "plan_hash": p.shape.hash if p.shape else "",
            "skipped": p.skipped,
        }
        for p in planned
    ]
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def planned_statements(db: Database, statements: pd.DataFrame, *, limit: int = 20) -> list[Planned]:
    """The generic plan of each of the first `limit` statements, its raw text fetched by queryid (the frames imsnb
    shows carry masked text); statements of another database are skipped with that reason."""
    if "query" not in statements and "queryid" not in statements:
        raise ValueError("statement_plans: the frame needs a `queryid` or a `query` column (pg_stat_statements')")
    head = statements.head(int(limit))
    records = head.to_dict(orient="records")
    queryids = [str(r["queryid"]) for r in records if r.get("queryid") not in (None, "") and pd.notna(r["queryid"])]
    texts = raw_texts(db, queryids)
    here = db.connection().info.dbname
    planned = []
    for record in records:
        queryid = record.get("queryid")
        queryid = None if queryid is None or (isinstance(queryid, float) and pd.isna(queryid)) else str(queryid)
        text = texts.get(queryid) if queryid else None
        if text is None:
            text = record.get("query")
        planned.append(Planned(queryid, mask_literals(text) or "", text, row=record))
    with generic_plans(db) as explain:
        for item in planned:
            database = item.row.get("database")
            if isinstance(database, str) and database and database != here:
                item.skipped = f"in database {database}: plan it connected there"
                continue
            try:
                item.plan = explain(item.text)
            except PlanUnavailable as exc:
                item.skipped, item.access = exc.reason, exc.access
                continue
            item.shape = plan_shape(item.plan)
    return planned


def raw_texts(db: Database, queryids: list[str]) -> dict[str, str]:
    """queryid -> the normalized text pg_stat_statements keeps (in this database); {} without the extension."""
    ids = [q for q in dict.fromkeys(queryids) if re.fullmatch(r"-?\d+", q)]
    if not ids:
        return {}
    try:
        frame = db.frame(STATEMENT_TEXTS, {"queryids": ids})
    except psycopg.Error:
        return {}  # no pg_stat_statements here: the frame's own text is all there is
    return dict(zip(frame["queryid"], frame["query"], strict=True))
