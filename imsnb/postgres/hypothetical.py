"""HypoPG: hypothetical indexes the planner sees in this session only, one at a time, reset when done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pglast.stream import maybe_double_quote_name
from psycopg import sql as pgsql

from imsnb.errors import ImsnbError
from imsnb.postgres.candidates import Candidate
from imsnb.postgres.indexable import regclass_name
from imsnb.postgres.session import Database

__all__: list[str] = []  # used by the advice

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


def hypopg_schema(db: Database) -> str | None:
    """The schema HypoPG is installed in, when this role may use it (None: not installed or not usable)."""
    return db.scalar(HYPOPG)


@contextmanager
def hypothetical_indexes(db: Database, hypopg: str) -> Iterator[Any]:
    """`create(candidate)` -> (its hypothetical name, estimated size) or None, one at a time (the previous one is
    reset first); `hypopg_reset()` when done, whatever happened."""
    reset = pgsql.SQL(HYPOTHETICAL_RESET).format(hypopg=pgsql.Identifier(hypopg))
    make = pgsql.SQL(HYPOTHETICAL_INDEX).format(hypopg=pgsql.Identifier(hypopg))

    def create(candidate: Candidate) -> tuple[str, float] | None:
        db.scalar(reset)
        target = regclass_name(candidate.schema, candidate.table)
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
