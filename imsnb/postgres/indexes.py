"""Indexes that exist but serve nothing: INVALID ones, left behind by a failed or interrupted
`CREATE INDEX CONCURRENTLY` (the planner never uses them; every write still maintains them)."""

from __future__ import annotations

import pandas as pd

from imsnb.findings import Finding, Severity
from imsnb.postgres.session import Database, database_or_default

__all__ = [
    "INVALID_INDEXES",
    "invalid_indexes",
    "invalid_indexes_finding",
]

# An index being built right now is also not valid yet: `building` tells it apart (pg_stat_progress_create_index).
INVALID_INDEXES = """
SELECT
    n.nspname AS schema,
    c.relname AS index,
    t.relname AS table,
    pg_get_indexdef(c.oid) AS definition,
    pg_relation_size(c.oid)::float8 AS size_bytes,
    EXISTS (
        SELECT 1 FROM pg_stat_progress_create_index AS p WHERE p.index_relid = c.oid OR p.relid = t.oid
    ) AS building
FROM pg_index AS i
JOIN pg_class AS c ON c.oid = i.indexrelid
JOIN pg_class AS t ON t.oid = i.indrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
ORDER BY n.nspname, c.relname
LIMIT %(limit)s
"""


def invalid_indexes(db: Database | None = None, *, limit: int = 50) -> pd.DataFrame:
    """INVALID indexes of the database: schema, index, table, definition, size_bytes, building (a build in
    progress, not a leftover)."""
    return database_or_default(db).frame(INVALID_INDEXES, {"limit": int(limit)})


def invalid_indexes_finding(invalid: pd.DataFrame) -> Finding:
    """WARNING per leftover INVALID index (never used for reads, still paid for on every write); a build in
    progress is INFO."""
    leftovers = invalid[~invalid["building"].astype(bool)] if not invalid.empty else invalid
    if invalid.empty:
        return Finding.ok("postgres.invalid_indexes", "no INVALID index", value=0)
    if leftovers.empty:
        names = ", ".join(invalid["index"])
        return Finding.of(
            "postgres.invalid_indexes",
            Severity.INFO,
            f"{len(invalid)} index(es) being built right now (not valid until the build ends): {names}",
            value=0,
            evidence=invalid,
        )
    names = ", ".join(f"{r.schema}.{r.index}" for r in leftovers.itertuples(index=False))
    return Finding.of(
        "postgres.invalid_indexes",
        Severity.WARNING,
        f"{len(leftovers)} INVALID index(es) left by a failed or interrupted CREATE INDEX CONCURRENTLY: {names}; "
        "the planner never uses them and every write still maintains them (a drop is planned under Mitigation)",
        value=len(leftovers),
        evidence=leftovers,
    )
