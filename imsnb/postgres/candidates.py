"""The indexes worth asking the planner about, from a statement's parse tree (pglast).

Per table, the columns whose role an index serves: compared by `=`/`IN`/`= ANY` (equality), join keys, ranges
(`<`, `>`, `BETWEEN`) and the first `ORDER BY` column; single columns first, then equality-first pairs and triples.
Aliases, CTEs and subqueries are resolved by scope, so a column is charged to the table it belongs to.
`imsnb.postgres.advice` keeps the candidates the planner uses (HypoPG).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pglast import ast, enums, parse_sql
from pglast.parser import ParseError
from pglast.stream import maybe_double_quote_name

__all__ = ["Candidate", "index_candidates"]

MAX_COLUMNS = 3
MAX_CANDIDATES_PER_TABLE = 12
NOT_SCANNING = {  # statements whose time goes to waiting, not reading: an index cannot help them
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
}
ROLE_ORDER = {"equality": 0, "join": 1, "range": 2, "order": 3}
EQUALITY_KINDS = (enums.A_Expr_Kind.AEXPR_IN, enums.A_Expr_Kind.AEXPR_OP_ANY)
RANGE_KINDS = (enums.A_Expr_Kind.AEXPR_BETWEEN, enums.A_Expr_Kind.AEXPR_BETWEEN_SYM)


@dataclass(frozen=True)
class Candidate:
    """An index worth asking the planner about: `columns` of `table` (`schema` when the statement names one), each
    column's role in the statement (equality, join, range, order) in `roles`."""

    table: str
    columns: tuple[str, ...]
    schema: str | None = None
    roles: tuple[str, ...] = field(default=(), compare=False)  # the same index whatever role its columns play

    @property
    def name(self) -> str:
        return index_name(self.table, self.columns)

    def statement(self, schema: str | None = None) -> str:
        """`CREATE INDEX CONCURRENTLY IF NOT EXISTS imsnb_<table>_<cols> ON <schema>.<table> (<cols>)`."""
        return create_index_statement(schema or self.schema, self.table, self.columns)

    @property
    def keys(self) -> tuple[str, ...]:
        """The equality and join columns (an index serves them in any order among themselves)."""
        return tuple(c for c, r in zip(self.columns, self.roles, strict=False) if r in ("equality", "join"))


def index_name(table: str, columns: Iterable[str]) -> str:
    """imsnb_<table>_<col>_<col>, cut to PostgreSQL's 63 bytes with a short hash when longer."""
    name = "_".join(["imsnb", table, *columns])
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name.encode()[:54].decode(errors="ignore") + "_" + digest


def create_index_statement(schema: str | None, table: str, columns: Iterable[str]) -> str:
    columns = list(columns)
    target = maybe_double_quote_name(table)
    if schema:
        target = f"{maybe_double_quote_name(schema)}.{target}"
    listed = ", ".join(maybe_double_quote_name(c) for c in columns)
    return (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {maybe_double_quote_name(index_name(table, columns))} "
        f"ON {target} ({listed})"
    )


def index_candidates(query: str) -> list[Candidate]:
    """Candidate indexes for one statement, from its parse tree: per table, the single columns (equality and join
    keys first, then ranges, then the first ORDER BY column), then equality-first pairs and triples (keys, then a
    range or the ORDER BY column). An unqualified column in a statement over several tables is offered for each of
    them; `index_advice` keeps the ones the table has. [] for what does not parse."""
    try:
        statements = parse_sql(query)
    except ParseError:
        return []
    walker = _Walker()
    for raw in statements:
        walker.statement(raw.stmt, None)
    by_table: dict[tuple[str | None, str], dict[str, str]] = {}
    for schema, table, column, role in walker.uses:
        roles = by_table.setdefault((schema, table), {})
        if column not in roles or ROLE_ORDER[role] < ROLE_ORDER[roles[column]]:
            roles[column] = role
    candidates = []
    for (schema, table), roles in by_table.items():
        candidates += _table_candidates(schema, table, roles, walker.order_of(schema, table))
    return candidates


def _table_candidates(schema: str | None, table: str, roles: dict[str, str], order: list[str]) -> list[Candidate]:
    keys = [c for c, r in roles.items() if r == "equality"] + [c for c, r in roles.items() if r == "join"]
    ranges = [c for c, r in roles.items() if r == "range"]
    ordered = [c for c in order if c not in keys][:1]
    trailing = list(dict.fromkeys(ranges[:2] + ordered))
    shapes: list[tuple[str, ...]] = [(c,) for c in dict.fromkeys(keys + ranges + ordered)]
    shapes += [(a, b) for i, a in enumerate(keys) for b in keys[i + 1 :]]
    shapes += [(k, t) for k in keys for t in trailing]
    shapes += [(a, b, t) for i, a in enumerate(keys) for b in keys[i + 1 :] for t in trailing + keys[i + 2 :] if t != b]
    found = []
    for columns in dict.fromkeys(s for s in shapes if len(s) <= MAX_COLUMNS):
        column_roles = tuple(roles.get(c, "order") for c in columns)
        found.append(Candidate(table, columns, schema, column_roles))
    return found[:MAX_CANDIDATES_PER_TABLE]


class _Scope:
    """The relations a (sub)query can name: alias (or table name) -> (schema, table); CTE names map to None."""

    def __init__(self, parent: _Scope | None):
        self.parent = parent
        self.relations: dict[str, tuple[str | None, str] | None] = {}
        self.ctes: set[str] = set() if parent is None else set(parent.ctes)

    def add(self, node: ast.RangeVar) -> None:
        alias = node.alias.aliasname if node.alias is not None else node.relname
        if node.schemaname is None and node.relname in self.ctes:
            self.relations[alias] = None
        else:
            self.relations[alias] = (node.schemaname, node.relname)

    def tables(self) -> list[tuple[str | None, str]]:
        return [t for t in self.relations.values() if t is not None]

    def resolve(self, ref: ast.ColumnRef) -> tuple[str, list[tuple[str | None, str]]] | None:
        """(column, the tables it may belong to), or None (a `*`, a CTE's or a subquery's column)."""
        names = [f.sval for f in ref.fields if isinstance(f, ast.String)]
        if len(names) != len(ref.fields) or not names:
            return None
        column = names[-1]
        if len(names) == 1:
            scope: _Scope | None = self
            while scope is not None and not scope.relations:
                scope = scope.parent
            return (column, scope.tables()) if scope is not None else None
        qualifier = names[-2]
        scope = self
        while scope is not None:
            if qualifier in scope.relations:
                found = scope.relations[qualifier]
                if found is None or (len(names) > 2 and found[0] not in (None, names[-3])):
                    return None
                return column, [found]
            scope = scope.parent
        return None


class _Walker:
    """Collects (schema, table, column, role) for every column an index could serve, through subqueries and CTEs."""

    def __init__(self) -> None:
        self.uses: list[tuple[str | None, str, str, str]] = []
        self.orders: dict[tuple[str | None, str], list[str]] = {}

    def order_of(self, schema: str | None, table: str) -> list[str]:
        return self.orders.get((schema, table), [])

    def statement(self, node: Any, parent: _Scope | None) -> None:
        if isinstance(node, ast.PrepareStmt | ast.ExplainStmt):  # an application's own PREPARE ... AS, an EXPLAIN
            self.statement(node.query, parent)
            return
        if isinstance(node, ast.SelectStmt):
            self.select(node, parent)
            return
        scope = _Scope(parent)
        self.ctes(getattr(node, "withClause", None), scope, parent)
        if isinstance(node, ast.InsertStmt):
            if node.selectStmt is not None:
                self.statement(node.selectStmt, scope)
            return
        if isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
            scope.add(node.relation)
            extra = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
            for item in extra or ():
                self.from_item(item, scope)
            self.conditions(node.whereClause, scope)

    def ctes(self, with_clause: Any, scope: _Scope, parent: _Scope | None) -> None:
        if with_clause is None:
            return
        for cte in with_clause.ctes or ():
            scope.ctes.add(cte.ctename)
            self.statement(cte.ctequery, parent)

    def select(self, node: ast.SelectStmt, parent: _Scope | None) -> None:
        scope = _Scope(parent)
        self.ctes(node.withClause, scope, parent)
        if node.op != enums.SetOperation.SETOP_NONE:
            for branch in (node.larg, node.rarg):
                if branch is not None:
                    self.statement(branch, scope)
            return
        for item in node.fromClause or ():
            self.from_item(item, scope)
        self.conditions(node.whereClause, scope)
        for target in node.targetList or ():
            self.sublinks(target, scope)
        order = []
        for sort in node.sortClause or ():
            if isinstance(sort.node, ast.ColumnRef):
                resolved = scope.resolve(sort.node)
                if resolved is not None:
                    order.append(resolved)
        tables = {t for _, ts in order for t in ts}
        if order and len(tables) == 1:  # an ORDER BY over one table's columns: an index can give that order
            table = tables.pop()
            self.orders.setdefault(table, [c for c, _ in order])
            for column, _ in order:
                self.uses.append((*table, column, "order"))

    def from_item(self, item: Any, scope: _Scope) -> None:
        if isinstance(item, ast.RangeVar):
            scope.add(item)
        elif isinstance(item, ast.JoinExpr):
            self.from_item(item.larg, scope)
            self.from_item(item.rarg, scope)
            for name in item.usingClause or ():
                for side in (item.larg, item.rarg):
                    if isinstance(side, ast.RangeVar) and not (side.schemaname is None and side.relname in scope.ctes):
                        self.uses.append((side.schemaname, side.relname, name.sval, "join"))
            self.conditions(item.quals, scope)
        elif isinstance(item, ast.RangeSubselect):
            self.statement(item.subquery, scope)

    def conditions(self, node: Any, scope: _Scope) -> None:
        if node is None:
            return
        if isinstance(node, ast.BoolExpr):
            if node.boolop == enums.BoolExprType.AND_EXPR:
                for arg in node.args:
                    self.conditions(arg, scope)
            else:  # OR / NOT: one index does not serve them; their subqueries still may be indexed
                self.sublinks(node, scope)
        elif isinstance(node, ast.A_Expr):
            self.comparison(node, scope)
        elif isinstance(node, ast.SubLink):
            self.sublink(node, scope)

    def comparison(self, node: ast.A_Expr, scope: _Scope) -> None:
        operator = node.name[-1].sval if node.name else ""
        kind = node.kind
        if kind == enums.A_Expr_Kind.AEXPR_OP and operator in ("=", "<", ">", "<=", ">="):
            sides = [(node.lexpr, node.rexpr), (node.rexpr, node.lexpr)]
            for column, other in sides:
                if not isinstance(column, ast.ColumnRef):
                    continue
                others = _column_refs(other)
                if not others:
                    self.use(column, scope, "equality" if operator == "=" else "range")
                elif operator == "=":
                    mine = scope.resolve(column)
                    theirs = [scope.resolve(r) for r in others]
                    if mine and any(t and set(t[1]) != set(mine[1]) for t in theirs):
                        self.use(column, scope, "join")
        elif isinstance(node.lexpr, ast.ColumnRef) and not _column_refs(node.rexpr):
            if kind in EQUALITY_KINDS and operator == "=":  # col IN ($1, $2), col = ANY($1)
                self.use(node.lexpr, scope, "equality")
            elif kind in RANGE_KINDS:  # col BETWEEN $1 AND $2
                self.use(node.lexpr, scope, "range")
        self.sublinks(node, scope)

    def sublink(self, node: ast.SubLink, scope: _Scope) -> None:
        if isinstance(node.testexpr, ast.ColumnRef):  # col IN (SELECT ...): a semi-join on col
            self.use(node.testexpr, scope, "join")
        if node.subselect is not None:
            self.statement(node.subselect, scope)

    def sublinks(self, node: Any, scope: _Scope) -> None:
        for sub in _nodes_of(node, ast.SubLink):
            self.sublink(sub, scope)

    def use(self, ref: ast.ColumnRef, scope: _Scope, role: str) -> None:
        resolved = scope.resolve(ref)
        if resolved is None:
            return
        column, tables = resolved
        for schema, table in tables:
            self.uses.append((schema, table, column, role))


def _nodes_of(node: Any, kind: type, *, into_sublinks: bool = False) -> Iterator[Any]:
    """The nodes of type `kind` under `node` (not inside subqueries unless asked), outermost first."""
    if node is None:
        return
    if isinstance(node, list | tuple):
        for item in node:
            yield from _nodes_of(item, kind, into_sublinks=into_sublinks)
        return
    if not isinstance(node, ast.Node):
        return
    if isinstance(node, kind):
        yield node
        if kind is ast.SubLink:
            return
    if isinstance(node, ast.SubLink) and not into_sublinks:
        return
    for slot in node.__slots__:
        yield from _nodes_of(getattr(node, slot, None), kind, into_sublinks=into_sublinks)


def _column_refs(node: Any) -> list[ast.ColumnRef]:
    return list(_nodes_of(node, ast.ColumnRef))


def waits_instead_of_scanning(text: str) -> str | None:
    """The function that makes a statement's time a wait (pg_sleep, an advisory lock), if it calls one."""
    try:
        tree = parse_sql(text)
    except ParseError:
        return None
    for call in _nodes_of(list(tree), ast.FuncCall, into_sublinks=True):
        name = call.funcname[-1].sval if call.funcname else ""
        if name in NOT_SCANNING:
            return name
    return None
