"""PostgreSQL indexes: build the index the planner verified (`postgres.index_advice`), drop INVALID leftovers.

The diagnostics' session is read-only and stays so: an index is built on a connection opened only when both keys
are turned, right before applying, with `lock_timeout` set (a build waits behind long transactions; it must not
queue every writer behind it) and a `statement_timeout` cap. `CREATE INDEX CONCURRENTLY` takes no write lock but
cannot run inside a transaction; a build that fails or is interrupted leaves an INVALID index, which the next run
finds (`postgres.invalid_indexes`) and plans dropping.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pandas as pd
import psycopg
from pglast.stream import maybe_double_quote_name

from imsnb import config, postgres
from imsnb.actions.gate import Changed, Plan
from imsnb.limits import check_max_indexes
from imsnb.postgres.candidates import create_index_statement, index_name
from imsnb.postgres.indexable import INDEXES, index_serves

__all__ = [
    "MAX_INDEXES",
    "create_index_action",
    "create_index_actions",
    "drop_invalid_index_action",
    "drop_invalid_index_actions",
]

MAX_INDEXES = 2  # indexes built per run, at most (the hard limit is imsnb.limits.MAX_INDEXES_LIMIT)
LOCK_TIMEOUT_MS = 5_000
BUILD_TIMEOUT_MS = 15 * 60_000

TABLE_EXISTS = "SELECT to_regclass(%(table)s) IS NOT NULL AS present"

# The table's oid, for the advice's own index query (imsnb.postgres.indexable.INDEXES).
TABLE_OID = "SELECT to_regclass(%(table)s)::oid::int8 AS oid"

INDEX_STATE = """
SELECT i.indisvalid AS valid, pg_relation_size(i.indexrelid)::float8 AS size_bytes
FROM pg_index AS i
WHERE i.indexrelid = to_regclass(%(index)s)
"""


def _split_table(table: str, schema: str | None = None) -> tuple[str, str]:
    if schema:
        return schema, table.split(".")[-1]
    parts = table.split(".")
    return (parts[0], parts[1]) if len(parts) == 2 else ("public", parts[0])


def _columns(value: Any) -> list[str]:
    if isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    return [str(c) for c in value]


def drop_index_sql(schema: str, name: str) -> str:
    return f"DROP INDEX CONCURRENTLY IF EXISTS {maybe_double_quote_name(schema)}.{maybe_double_quote_name(name)}"


def write_connection(
    db: postgres.Database | None, *, statement_timeout_ms: int = BUILD_TIMEOUT_MS
) -> psycopg.Connection:
    """A connection that may write, opened at apply time only: autocommit (CONCURRENTLY needs it), lock_timeout and
    statement_timeout set, named imsnb/actions so it is never a candidate for imsnb's own backend actions."""
    settings = getattr(postgres.database_or_default(db), "_settings", None) or config.postgres_settings()
    return psycopg.connect(
        **settings,
        connect_timeout=postgres.CONNECT_TIMEOUT_S,
        application_name="imsnb/actions",
        options=f"-c lock_timeout={LOCK_TIMEOUT_MS} -c statement_timeout={int(statement_timeout_ms)}",
        autocommit=True,
    )


def serving_index(db: postgres.Database | None, qualified: str, columns: list[str]) -> str | None:
    """The name of an index of the table that serves `columns` by the advice's own rule (`index_serves`: a valid,
    non-partial btree index starting with them), or None."""
    session = postgres.database_or_default(db)
    oid = session.scalar(TABLE_OID, {"table": qualified})
    if oid is None or pd.isna(oid):
        return None
    for index in session.frame(INDEXES, {"oids": [int(oid)]}).to_dict(orient="records"):
        if index_serves(index, tuple(columns)):
            return str(index["index"])
    return None


def create_index_actions(
    db: postgres.Database | None, advice: pd.DataFrame, *, max_indexes: int = MAX_INDEXES
) -> list[Plan]:
    """One `create_index` plan per advised index, verified ones first; at most `max_indexes` within the cap."""
    check_max_indexes(max_indexes)
    if advice is None or advice.empty:
        return []
    ordered = advice.sort_values("verified", ascending=False) if "verified" in advice else advice
    return [
        create_index_action(db, row, within_cap=i < max_indexes, max_indexes=max_indexes)
        for i, row in enumerate(ordered.to_dict(orient="records"))
    ]


def create_index_action(
    db: postgres.Database | None, advice: dict[str, Any], *, within_cap: bool = True, max_indexes: int = MAX_INDEXES
) -> Plan:
    """`CREATE INDEX CONCURRENTLY IF NOT EXISTS imsnb_<table>_<cols>` for one row of `postgres.index_advice`."""
    schema, table = _split_table(str(advice["table"]), advice.get("schema"))
    columns = _columns(advice["columns"])
    name = str(advice.get("index") or index_name(table, columns))
    qualified = f"{schema}.{table}"
    ddl = create_index_statement(schema, table, columns)
    verified = bool(advice.get("verified"))
    before, after = advice.get("cost_before"), advice.get("cost_after")
    proof = (
        f"the planner's cost {before:,.0f} → {after:,.0f} with it (HypoPG)"
        if verified and before is not None and after is not None
        else "not verified by the planner (HypoPG is not installed)"
    )

    def recheck() -> str | None:
        session = postgres.database_or_default(db)
        if not bool(session.scalar(TABLE_EXISTS, {"table": qualified})):
            return f"table {qualified} no longer exists"
        serving = serving_index(session, qualified, columns)
        if serving is not None:
            return f"{serving} now serves ({', '.join(columns)}) on {qualified}: nothing to build"
        state = session.frame(INDEX_STATE, {"index": f"{schema}.{name}"})
        if not state.empty and not bool(state.iat[0, 0]):
            return f"an INVALID {name} exists from an interrupted build: drop it first (planned as drop_invalid_index)"
        return None

    def apply() -> str:
        started = time.monotonic()
        with write_connection(db) as conn:
            try:
                conn.execute(ddl)
            except psycopg.Error as exc:
                state = conn.execute(INDEX_STATE, {"index": f"{schema}.{name}"}).fetchone()
                left = " It left an INVALID index: the next run plans dropping it." if state and not state[0] else ""
                raise RuntimeError(f"{' '.join(str(exc).split())}.{left}") from None
            state = conn.execute(INDEX_STATE, {"index": f"{schema}.{name}"}).fetchone()
        if state is None or not state[0]:
            raise Changed(f"{name} is not valid after the build: the next run plans dropping it")
        return f"built {schema}.{name} (valid, {state[1] / 2**20:.1f} MiB) in {time.monotonic() - started:.1f} s"

    helps = advice.get("queryids")
    helped = f" for {len(helps)} statement(s)" if isinstance(helps, (list, tuple)) and helps else ""
    return Plan(
        action="create_index",
        target=qualified,
        reason=f"statements scan {qualified}{helped}; {proof}",
        expected_effect=(
            f"an index on {qualified} ({', '.join(columns)}), built without blocking writes; those statements use it"
        ),
        undo=drop_index_sql(schema, name),
        command=ddl,
        recheck=recheck,
        apply=apply,
        within_cap=within_cap,
        cap_note=f"over the cap of {max_indexes} index(es) per run: not built",
    )


def drop_invalid_index_actions(db: postgres.Database | None, invalid: pd.DataFrame) -> list[Plan]:
    """A `drop_invalid_index` plan per leftover INVALID index (not one being built right now)."""
    if invalid is None or invalid.empty:
        return []
    leftovers = invalid[~invalid["building"].astype(bool)]
    return [drop_invalid_index_action(db, row) for row in leftovers.to_dict(orient="records")]


def drop_invalid_index_action(db: postgres.Database | None, row: dict[str, Any]) -> Plan:
    """`DROP INDEX CONCURRENTLY IF EXISTS` one INVALID index, re-checked still invalid and not being built."""
    schema, name = str(row["schema"]), str(row["index"])
    qualified = f"{schema}.{name}"
    ddl = drop_index_sql(schema, name)
    definition = str(row.get("definition") or "")
    rebuild = re.sub(r"^CREATE (UNIQUE )?INDEX", r"CREATE \1INDEX CONCURRENTLY", definition) or "its definition"

    def recheck() -> str | None:
        found = postgres.invalid_indexes(db)
        mine = found[(found["schema"] == schema) & (found["index"] == name)]
        if mine.empty:
            return f"{qualified} is gone or valid now: nothing to drop"
        if bool(mine.iloc[0]["building"]):
            return f"{qualified} is being built right now: not touched"
        return None

    def apply() -> str:
        with write_connection(db, statement_timeout_ms=LOCK_TIMEOUT_MS * 12) as conn:
            conn.execute(ddl)
        return f"dropped {qualified}"

    return Plan(
        action="drop_invalid_index",
        target=qualified,
        reason=f"INVALID index on {row.get('table')} left by a failed or interrupted build: unused, still maintained",
        expected_effect="the leftover is gone; writes to the table stop maintaining it",
        undo=f"rebuild: {rebuild}",
        command=ddl,
        recheck=recheck,
        apply=apply,
    )
