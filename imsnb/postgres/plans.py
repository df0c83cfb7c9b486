"""The planner's plan of a statement, without running it: the generic plan of a pg_stat_statements text and its shape.

A normalized text (`... WHERE sku = $1`) cannot be EXPLAINed as it is, and running it is out of the question. Its
generic plan is what the planner would do for any value: `PREPARE` it with `plan_cache_mode = force_generic_plan`,
`EXPLAIN (FORMAT JSON) EXECUTE` it with one NULL per parameter, `DEALLOCATE` (Dexter's way, ankane/dexter
`lib/dexter/indexer.rb`). Nothing is executed, never `ANALYZE`, and it works in imsnb's read-only session. PREPARE is
used on every version: 16's `EXPLAIN (GENERIC_PLAN)` gives the same plan, and one path is one path to test.

The planner checks table privileges even to explain, so the role needs to read the tables (`pg_read_all_data` or
SELECT grants; an UPDATE or DELETE also needs those privileges) or the SECURITY DEFINER function
`EXPLAIN_GENERIC_FUNCTION` (`imsnb.explain_generic`), used whenever it is there. `plan_access_gap` says which is
missing, for `postgres.visibility`.

A plan is summarized as its `PlanShape` (`plan_shape.py`); the window's statements are planned in `planned.py`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from pglast import ast, parse_sql
from pglast.parser import ParseError
from psycopg import sql as pgsql

from imsnb.errors import ImsnbError
from imsnb.postgres.session import Database, database_or_default
from imsnb.session import one_line

__all__ = [
    "EXPLAIN_GENERIC_FUNCTION",
    "PlanUnavailable",
    "generic_plan",
    "plan_access_gap",
]

FUNCTION_SCHEMA = "imsnb"
FUNCTION_NAME = "explain_generic"

# The least-privilege way: EXPLAIN only (never ANALYZE), one statement (any `;` but trailing ones is refused, as
# pganalyze's helper does), SELECT/INSERT/UPDATE/DELETE/WITH only, read-only transaction, fixed search_path. Owned
# by a role that may plan the application's statements: a NOLOGIN role with pg_read_all_data for SELECTs, the
# tables' owner for UPDATE/DELETE too. Edit `public` to the application's schemas; `imsnb_monitor` to imsnb's role.
EXPLAIN_GENERIC_FUNCTION = """
CREATE SCHEMA IF NOT EXISTS imsnb;
CREATE OR REPLACE FUNCTION imsnb.explain_generic(query text) RETURNS json
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, public, pg_temp
    SET plan_cache_mode = force_generic_plan
AS $body$
DECLARE
    statement text := regexp_replace(query, ';+\\s*$', '');
    parameters int;
    plan json;
BEGIN
    IF position(';' IN statement) > 0 THEN
        RAISE EXCEPTION 'imsnb.explain_generic explains one statement: the text holds a semicolon';
    END IF;
    IF statement !~* '^\\s*\\(*\\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES|TABLE)\\M' THEN
        RAISE EXCEPTION 'imsnb.explain_generic explains SELECT, INSERT, UPDATE, DELETE and WITH statements only';
    END IF;
    IF statement ~* 'pg_temp' THEN
        RAISE EXCEPTION 'imsnb.explain_generic does not explain statements naming pg_temp';
    END IF;
    SET LOCAL transaction_read_only = on;
    IF EXISTS (SELECT FROM pg_prepared_statements WHERE name = 'imsnb_explain_generic') THEN
        DEALLOCATE imsnb_explain_generic;
    END IF;
    EXECUTE '/* imsnb */ PREPARE imsnb_explain_generic AS ' || statement;
    BEGIN
        SELECT coalesce(array_length(parameter_types, 1), 0) INTO parameters
        FROM pg_prepared_statements
        WHERE name = 'imsnb_explain_generic';
        EXECUTE '/* imsnb */ EXPLAIN (FORMAT JSON) EXECUTE imsnb_explain_generic'
            || CASE WHEN parameters > 0
                THEN '(' || array_to_string(array_fill('NULL'::text, ARRAY[parameters]), ', ') || ')'
                ELSE ''
            END
            INTO plan;
    EXCEPTION WHEN OTHERS THEN
        DEALLOCATE imsnb_explain_generic;
        RAISE;
    END;
    DEALLOCATE imsnb_explain_generic;
    RETURN plan;
END
$body$;
REVOKE ALL ON FUNCTION imsnb.explain_generic(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA imsnb TO imsnb_monitor;
GRANT EXECUTE ON FUNCTION imsnb.explain_generic(text) TO imsnb_monitor;
""".strip()

# One name, reused: pg_stat_statements (track_utility, on by default) keeps an entry per distinct EXPLAIN EXECUTE
# text, so a fresh name per plan would add entries on every run and push the application's statements out of its
# `max` (measured). DEALLOCATE always follows; one left by a broken run is dropped before the first plan.
PREPARED = "imsnb_plan"
LEFT_PREPARED = """
SELECT count(*) AS left
FROM pg_prepared_statements
WHERE name = %(name)s
"""

GENERIC_PLANS = "SET plan_cache_mode = force_generic_plan"
PLANS_AS_BEFORE = "RESET plan_cache_mode"

PARAMETER_COUNT = """
SELECT coalesce(array_length(parameter_types, 1), 0) AS parameters
FROM pg_prepared_statements
WHERE name = %(name)s
"""

EXPLAIN_FUNCTION = """
SELECT p.oid::regprocedure::text AS function
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = %(schema)s
    AND p.proname = %(name)s
    AND has_schema_privilege(n.oid, 'USAGE')
    AND has_function_privilege(p.oid, 'EXECUTE')
LIMIT 1
"""

EXPLAIN_VIA_FUNCTION = "SELECT imsnb.explain_generic(%(query)s) AS plan"

QUERY_TEXT_SIZE = """
SELECT setting::int AS bytes
FROM pg_settings
WHERE name = 'track_activity_query_size'
"""

# Tables the role cannot read (the planner refuses their statements) and whether the function is there instead.
PLAN_ACCESS = """
SELECT
    current_user AS role,
    quote_ident(current_user) AS role_sql,
    current_setting('server_version_num')::int AS version,
    count(*) FILTER (WHERE NOT has_table_privilege(c.oid, 'SELECT')) AS unreadable,
    min(quote_ident(n.nspname) || '.' || quote_ident(c.relname))
        FILTER (WHERE NOT has_table_privilege(c.oid, 'SELECT')) AS example
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%%'
    AND n.nspname NOT LIKE 'pg\\_temp\\_%%'
"""

# pg_stat_statements replaces a typed literal's string (`interval '1 day'`) by $n, leaving `interval $1`, which the
# server refuses (pglast's parser accepts it); as a cast (`$1::interval`) it is the same type.
TYPED_PARAMETER = re.compile(
    r"\b(?P<type>interval|date|timestamptz|timestamp(?:\s+with(?:out)?\s+time\s+zone)?|time(?:\s+with(?:out)?\s+time"
    r"\s+zone)?|timetz|uuid|json|jsonb|inet|cidr|numeric|bigint|integer|int|smallint|boolean|text)\s+\$(?P<number>\d+)",
    re.IGNORECASE,
)
SQL_PREPARE = re.compile(r"^\s*PREPARE\s+\S+\s*(?:\([^)]*\))?\s*AS\s+", re.IGNORECASE)
PLANNED_STATEMENTS = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)


class PlanUnavailable(ImsnbError):
    """The statement has no plan to show; `reason` says why in a few words (what to grant or fix, when anything);
    `access`: it is the role's privileges that are missing (the statement itself could be planned)."""

    def __init__(self, reason: str, *, access: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.access = access


# --- one statement -------------------------------------------------------------------------------------------------


def generic_plan(db: Database | None, query: str) -> dict[str, Any]:
    """The generic plan (the top "Plan" dict of EXPLAIN (FORMAT JSON)) of one normalized statement, executing
    nothing. Raises PlanUnavailable (with its reason) for what cannot be planned: utility/DDL, several statements,
    text cut at track_activity_query_size, ambiguous parameter types, tables the role may not read."""
    db = database_or_default(db)
    with generic_plans(db) as explain:
        return explain(query)


@contextmanager
def generic_plans(db: Database) -> Iterator[Any]:
    """A function planning one text at a time in this session, `plan_cache_mode` forced to generic plans for the
    duration (restored after): the function `imsnb.explain_generic` when it is there, PREPARE/EXPLAIN EXECUTE as
    imsnb's own role otherwise."""
    function = explain_function(db)
    limits: dict[str, int] = {}

    def explain(query: str) -> dict[str, Any]:
        text = plannable_text(query, lambda: _query_text_size(db, limits))
        return _explain_via_function(db, text) if function else _explain_prepared(db, text)

    if function:
        yield explain
        return
    if db.scalar(LEFT_PREPARED, {"name": PREPARED}):
        _deallocate(db)
    db.execute(GENERIC_PLANS)
    try:
        yield explain
    finally:
        try:
            db.execute(PLANS_AS_BEFORE)
        except (psycopg.Error, ImsnbError):
            pass  # the connection is gone: so is the setting


def explain_function(db: Database) -> str | None:
    """`imsnb.explain_generic(text)` when it exists and this role may call it, else None."""
    return db.scalar(EXPLAIN_FUNCTION, {"schema": FUNCTION_SCHEMA, "name": FUNCTION_NAME})


def is_utility(query: str | None) -> bool:
    """True for a text that parses as one utility/DDL statement (CREATE INDEX, VACUUM, SET...): never planned, so it
    takes no place among the statements worth explaining. A text that does not parse is not called utility here."""
    if query is None or not str(query).strip():
        return False
    try:
        statements = parse_sql(SQL_PREPARE.sub("", str(query).strip().rstrip(";"), count=1))
    except ParseError:
        return False
    return len(statements) == 1 and not isinstance(statements[0].stmt, PLANNED_STATEMENTS)


def plannable_text(query: str | None, text_size: Any = None) -> str:
    """The text to PREPARE: one SELECT/INSERT/UPDATE/DELETE (WITH included) that parses, without trailing `;`.
    `text_size()`: track_activity_query_size in bytes, asked only when the text may have been cut there."""
    if query is None or not str(query).strip():
        raise PlanUnavailable("no query text (pg_stat_statements keeps none for it)")
    text = str(query).strip().rstrip(";").rstrip()
    if text == "<insufficient privilege>":
        raise PlanUnavailable(
            "query text hidden from this role: GRANT pg_read_all_stats (pg_monitor has it)", access=True
        )
    size = len(str(query).encode())
    text = SQL_PREPARE.sub("", text, count=1)  # an application's own PREPARE ... AS: plan what it prepares
    text = TYPED_PARAMETER.sub(lambda m: f"${m['number']}::{' '.join(m['type'].split())}", text)
    try:
        statements = parse_sql(text)
    except ParseError as exc:
        limit = text_size() if text_size else None
        if limit and size >= limit - 1:
            raise PlanUnavailable(f"text cut at track_activity_query_size ({limit} bytes)") from None
        if exc.args and exc.args[0] == "syntax error at end of input":
            raise PlanUnavailable("text ends mid-statement (cut off?)") from None
        raise PlanUnavailable(f"does not parse: {exc.args[0] if exc.args else exc}") from None
    if len(statements) != 1:
        raise PlanUnavailable(f"{len(statements) or 'no'} statements in one text: each needs its own plan")
    statement = statements[0].stmt
    if not isinstance(statement, PLANNED_STATEMENTS):
        words = text[statements[0].stmt_location :].split()[:2]
        what = " ".join(words if words[0].upper() in ("CREATE", "ALTER", "DROP") else words[:1]).upper()
        raise PlanUnavailable(f"{what} is utility/DDL: only SELECT, INSERT, UPDATE, DELETE are planned")
    if isinstance(statement, ast.SelectStmt) and statement.intoClause is not None:
        raise PlanUnavailable("SELECT INTO creates a table: not planned")
    if text_size and size >= 99:  # exactly the cut (the setting is 100 bytes or more): that very length is unlikely
        limit = text_size()
        if limit and size == limit - 1:
            raise PlanUnavailable(f"text cut at track_activity_query_size ({limit} bytes)")
    return text


def _query_text_size(db: Database, cache: dict[str, int]) -> int:
    if "bytes" not in cache:
        cache["bytes"] = int(db.scalar(QUERY_TEXT_SIZE) or 0)
    return cache["bytes"]


def _explain_prepared(db: Database, text: str) -> dict[str, Any]:
    prepared = False
    try:
        try:
            db.execute(pgsql.SQL("PREPARE {} AS ").format(pgsql.Identifier(PREPARED)) + pgsql.SQL(text))  # type: ignore[arg-type]
            prepared = True
            count = int(db.scalar(PARAMETER_COUNT, {"name": PREPARED}) or 0)
            arguments = pgsql.SQL("({})").format(pgsql.SQL(", ").join([pgsql.NULL] * count)) if count else pgsql.SQL("")
            explain = pgsql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}{}").format(pgsql.Identifier(PREPARED), arguments)
            output = db.scalar(explain)
        except psycopg.Error as exc:
            raise _refused(exc, via_function=False) from None
    finally:
        if prepared:
            _deallocate(db)
    return _top_plan(output)


def _deallocate(db: Database) -> None:
    try:
        db.execute(pgsql.SQL("DEALLOCATE {}").format(pgsql.Identifier(PREPARED)))
    except (psycopg.Error, ImsnbError):
        pass  # the connection is gone: so is the prepared statement


def _explain_via_function(db: Database, text: str) -> dict[str, Any]:
    try:
        output = db.scalar(EXPLAIN_VIA_FUNCTION, {"query": text})
    except psycopg.Error as exc:
        raise _refused(exc, via_function=True) from None
    return _top_plan(output)


def _top_plan(output: Any) -> dict[str, Any]:
    if isinstance(output, str):
        output = json.loads(output)
    if not output or "Plan" not in output[0]:
        raise PlanUnavailable("EXPLAIN returned no plan")
    return output[0]["Plan"]


def _refused(exc: psycopg.Error, *, via_function: bool) -> PlanUnavailable:
    """`access` only for the application's data (tables, views, sequences, schemas): a function the role may not
    execute (an admin's `SELECT pg_stat_statements_reset()`) is no gap in what the advice could read."""
    access = isinstance(exc, psycopg.errors.InsufficientPrivilege) and "for function" not in str(exc)
    return PlanUnavailable(_refusal(exc, via_function=via_function), access=access)


def _refusal(exc: psycopg.Error, *, via_function: bool) -> str:
    """Why the server would not plan it, in a few words, with what to grant or fix."""
    text = one_line(exc).removeprefix("ERROR: ")
    first = text.split(" CONTEXT:")[0].split(" LINE ")[0]
    if isinstance(exc, psycopg.errors.IndeterminateDatatype | psycopg.errors.AmbiguousFunction):
        return f"ambiguous parameter types ({first})"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        # "permission denied for table items" said as what it means here: the role may not read it
        first = re.sub(r"^permission denied for (\w+) (.+)$", r"this role may not read \1 \2", first)
        if via_function:
            return (
                f"{first}: the owner of {FUNCTION_SCHEMA}.{FUNCTION_NAME} may not plan it (make it the tables' owner)"
            )
        return (
            f"{first}: the planner checks table privileges; GRANT pg_read_all_data (SELECT; an UPDATE or DELETE "
            f"needs its own privilege) or create {FUNCTION_SCHEMA}.{FUNCTION_NAME} "
            "(docs/plans-and-index-advice.md, Privileges)"
        )
    if isinstance(exc, psycopg.errors.LockNotAvailable):
        return "a lock on its tables was not granted within lock_timeout (a migration holding it?)"
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return "planning did not finish within statement_timeout"
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedFunction):
        return f"{first} (another database, or a search_path imsnb's session does not have)"
    if isinstance(exc, psycopg.errors.RaiseException):
        return first
    return f"not plannable here: {first}"


# --- privileges, for postgres.visibility ---------------------------------------------------------------------------


def plan_access_gap(db: Database) -> str | None:
    """What keeps the planner from planning the application's statements for this role, and the grant or function
    that fixes it; None when it can (it reads every table, or `imsnb.explain_generic` is there to call)."""
    if explain_function(db):
        return None
    row = db.frame(PLAN_ACCESS).iloc[0]
    if not int(row["unreadable"] or 0):
        return None
    role = row["role"]
    grant = (
        f"GRANT pg_read_all_data TO {row['role_sql']}"
        if int(row["version"]) >= 140000
        else f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {row['role_sql']}"
    )
    return (
        f"role {role} cannot read {int(row['unreadable'])} table(s) (e.g. {row['example']}), and the planner will not "
        f"plan statements on a table its role cannot read: no plans or index advice for them; {grant}, or create "
        f"the function {FUNCTION_SCHEMA}.{FUNCTION_NAME} (docs/plans-and-index-advice.md, Privileges)"
    )
