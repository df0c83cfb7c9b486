"""The tables an index could serve: their size, columns (type and pg_stats' n_distinct) and existing indexes, and
which of a statement's parse-tree candidates (`candidates.py`) they can take: a column btree can index, not served by
a valid btree index already, selective enough for the planner to want an index."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from pglast.stream import maybe_double_quote_name

from imsnb.postgres.candidates import Candidate, index_candidates
from imsnb.postgres.session import Database

__all__: list[str] = []  # used by the advice and the create_index action, not a notebook's vocabulary

LOW_SELECTIVITY = 0.1  # equality matching more than this share of the rows: the planner would scan the table anyway
NO_BTREE_TYPES = ("json", "jsonb", "point", "xml", "polygon", "circle", "box", "line", "lseg", "path", "tsvector")

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


@dataclass
class Table:
    """A table an index could serve: its size, columns (type, n_distinct from pg_stats) and indexes (INDEXES)."""

    oid: int
    schema: str
    name: str
    rows: float
    columns: dict[str, tuple[str, float | None]]  # column -> (type, n_distinct)
    indexes: list[dict[str, Any]]


def tables_named(
    db: Database, wanted: dict[tuple[str | None, str], str], *, min_rows: int, max_tables: int
) -> dict[tuple, Table]:
    """The tables `wanted` names (key -> regclass name, in the statements' order) worth an index, under the same keys
    (schema as the statement names it, table): `min_rows` rows or more, the first `max_tables` of them."""
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
        tables[key] = Table(
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


def regclass_name(schema: str | None, table: str) -> str:
    name = maybe_double_quote_name(table)
    return f"{maybe_double_quote_name(schema)}.{name}" if schema else name


def useful_candidates(text: str, scanned: dict[str, str], tables: dict[tuple, Table]) -> list[Candidate]:
    """The candidates of a statement (`text`) on its `scanned` large tables that the table has, btree can index, no
    valid index serves already, and that select few enough rows for the planner to want an index."""
    keep = []
    for candidate in index_candidates(text):
        table = tables.get((candidate.schema, candidate.table))
        if table is None or candidate.table not in scanned:
            continue
        if any(c not in table.columns or table.columns[c][0] in NO_BTREE_TYPES for c in candidate.columns):
            continue
        if served(candidate, table) or matches_too_many(candidate, table):
            continue
        keep.append(Candidate(table.name, candidate.columns, table.schema, candidate.roles))
    return list(dict.fromkeys(keep))


def index_serves(index: dict[str, Any], columns: tuple[str, ...]) -> bool:
    """A row of INDEXES that is a valid, non-partial btree index starting with exactly these columns: what the
    advice skips and what the create_index action re-checks before building."""
    usable = index["method"] == "btree" and bool(index["valid"]) and not index["partial"]
    return usable and tuple(index["columns"][: len(columns)]) == tuple(columns)


def served(candidate: Candidate, table: Table) -> bool:
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


def matches_too_many(candidate: Candidate, table: Table) -> bool:
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
