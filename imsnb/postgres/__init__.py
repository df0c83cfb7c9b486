"""PostgreSQL diagnostics, one module per topic, each holding its SQL, its fetcher and its judge together.

    session.py      Database (read-only, bounded, opened on first use), the default session, the timeouts
    literals.py     mask_literals: query text with its literals and comments replaced by `?`
    connections.py  server info, reachability, connections by state against max_connections
    activity.py     long-running statements, sessions idle in a transaction
    locks.py        blocked queries (pg_blocking_pids)
    statements.py   pg_stat_statements: slow and slowest statements (judged over a sample's period when given one)
    trail.py        the tables a statement reads, with their scans in the same period (named in its finding)
    indexes.py      INVALID indexes left by an interrupted CREATE INDEX CONCURRENTLY
    health.py       cache hit ratio, database sizes, transaction ID wraparound, replication lag
    row_counts.py   exact row counts judged against expected counts, on the server a restore is verified on
    plans.py        generic plans of normalized statements (nothing executed) and their shapes; the explain function
    advice.py       index advice from the parse tree, verified with HypoPG's hypothetical indexes

Every fetcher returns a DataFrame (or a number) named for what it holds; query text shown anywhere is masked.
A new check is one fetcher and one judge in the topic's module, exported here (import and `__all__`), plus a
catalogue entry in `imsnb.findings`.
"""

from imsnb.postgres.activity import (
    IDLE_IN_TRANSACTION,
    RUNNING_QUERIES,
    idle_in_transaction,
    idle_in_transaction_finding,
    long_running_finding,
    long_running_queries,
    running_queries,
)
from imsnb.postgres.advice import Candidate, index_advice, index_advice_finding, index_candidates
from imsnb.postgres.connections import (
    CONNECTIONS_BY_STATE,
    MAX_CONNECTIONS,
    SERVER_INFO,
    VISIBILITY,
    connections_by_state,
    connections_finding,
    max_connections,
    reachable_finding,
    server_info,
    visibility_finding,
)
from imsnb.postgres.health import (
    CACHE_HIT_RATIO,
    DATABASE_SIZES,
    MIN_BLOCKS,
    MIN_BLOCKS_SAMPLED,
    REPLICATION_LAG_PRIMARY,
    REPLICATION_LAG_REPLICA,
    TRANSACTION_ID_AGE,
    XID_LIMIT,
    cache_hit_finding,
    cache_hit_ratio,
    database_sizes,
    replication_lag,
    replication_lag_finding,
    transaction_id_age,
    xid_age_finding,
)
from imsnb.postgres.indexes import INVALID_INDEXES, invalid_indexes, invalid_indexes_finding
from imsnb.postgres.literals import excerpt, mask_literals, masked
from imsnb.postgres.locks import BLOCKED_QUERIES, blocked_queries, blocked_queries_finding
from imsnb.postgres.plans import (
    EXPLAIN_GENERIC_FUNCTION,
    PlanShape,
    PlanUnavailable,
    generic_plan,
    plan_access_gap,
    plan_shape,
    statement_plans,
)
from imsnb.postgres.row_counts import (
    ROW_COUNT,
    expected_row_counts,
    row_count_findings,
    table_row_counts,
    verification_database,
)
from imsnb.postgres.session import (
    CLIENT_GRACE_S,
    CONNECT_TIMEOUT_S,
    LOCK_TIMEOUT_MS,
    STATEMENT_TIMEOUT_MS,
    Database,
    database_or_default,
    default_database,
)
from imsnb.postgres.statements import (
    ENABLE_STATEMENTS,
    STATEMENT_TIME_COLUMNS,
    STATEMENTS_COLUMNS,
    STATEMENTS_EXTENSION,
    STATEMENTS_TEMPLATE,
    slow_queries,
    slow_queries_finding,
    slowest_statements,
    statement_time_columns,
    statements,
)
from imsnb.postgres.trail import TRAIL_COLUMNS, table_trail, tables_read, trail_text

__all__ = [
    "INVALID_INDEXES",
    "invalid_indexes",
    "invalid_indexes_finding",
    "BLOCKED_QUERIES",
    "CACHE_HIT_RATIO",
    "CLIENT_GRACE_S",
    "CONNECTIONS_BY_STATE",
    "CONNECT_TIMEOUT_S",
    "DATABASE_SIZES",
    "ENABLE_STATEMENTS",
    "EXPLAIN_GENERIC_FUNCTION",
    "IDLE_IN_TRANSACTION",
    "LOCK_TIMEOUT_MS",
    "MAX_CONNECTIONS",
    "REPLICATION_LAG_PRIMARY",
    "REPLICATION_LAG_REPLICA",
    "ROW_COUNT",
    "RUNNING_QUERIES",
    "SERVER_INFO",
    "VISIBILITY",
    "STATEMENTS_COLUMNS",
    "STATEMENTS_EXTENSION",
    "STATEMENTS_TEMPLATE",
    "STATEMENT_TIMEOUT_MS",
    "STATEMENT_TIME_COLUMNS",
    "TRANSACTION_ID_AGE",
    "XID_LIMIT",
    "MIN_BLOCKS",
    "MIN_BLOCKS_SAMPLED",
    "TRAIL_COLUMNS",
    "table_trail",
    "tables_read",
    "trail_text",
    "Candidate",
    "Database",
    "PlanShape",
    "PlanUnavailable",
    "blocked_queries",
    "blocked_queries_finding",
    "cache_hit_finding",
    "cache_hit_ratio",
    "connections_by_state",
    "connections_finding",
    "database_or_default",
    "database_sizes",
    "default_database",
    "excerpt",
    "generic_plan",
    "expected_row_counts",
    "idle_in_transaction",
    "idle_in_transaction_finding",
    "index_advice",
    "index_advice_finding",
    "index_candidates",
    "long_running_finding",
    "long_running_queries",
    "mask_literals",
    "masked",
    "max_connections",
    "plan_access_gap",
    "plan_shape",
    "reachable_finding",
    "replication_lag",
    "replication_lag_finding",
    "row_count_findings",
    "running_queries",
    "server_info",
    "visibility_finding",
    "slow_queries",
    "slow_queries_finding",
    "slowest_statements",
    "statement_plans",
    "statement_time_columns",
    "statements",
    "table_row_counts",
    "verification_database",
    "transaction_id_age",
    "xid_age_finding",
]
