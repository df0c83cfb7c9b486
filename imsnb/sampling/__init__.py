"""Judge the incident, not the server's lifetime: cumulative counters sampled over the run.

    sample = sampling.Sample(sample_s, db=db, cache=redis, window=span, taken_by="db_performance")  # setup cell
    ...
    top = sample.statements()            # in a section: waits only for what remains of sample_s, then deltas

The first snapshot of every source is taken in the setup cell, the second when a section asks for it; findings are
judged on the difference (per-statement calls and time keyed by queryid, user and database; hit rates, evictions/s
and ops/s). A counter that went down between the snapshots (a restart or stats reset) is detected and said. With an
incident window, the window rule (`start.py`) says where the numbers start: statistics that started inside the window
are its figures (their totals since then); else a snapshot from the history store (`imsnb.history`) at or before the
window's start, else the earliest one inside it, replaces this run's first snapshot; only without any does the sample
stand alone, saying how much of the window it leaves out. With `sample_s=0` and nothing better, lifetime totals are
read, labelled "since restart".

Sources: pg_stat_statements (read without query text: text is fetched only for the statements shown),
pg_stat_database, pg_stat_user_tables, and Redis INFO stats + commandstats.

    deltas.py    the source names, two snapshots and the period between them, restart and reset notes
    postgres.py  PostgreSQL snapshots and deltas; regressed statements (slow ones, the database hit ratio and the
                 tables a statement read are judged in imsnb.postgres, given the period)
    plans.py     the statements' generic plans now against the stored ones (history, baseline): plan_change;
                 plan shapes stored by every run and every `imsnb record` round, only when they change
    redis.py     Redis INFO snapshots and deltas; hit rate, evictions, ops/s
    start.py     the window rule: where a window's numbers start (statistics' start, stored snapshots, the sample)
    sample.py    Sample (the snapshots of one run, the history store, the baseline), baseline_saved_finding and
                 redis_findings (hit rate and evictions of a sample, as health_check and triage judge them)
"""

from imsnb.sampling.deltas import (
    PG_DATABASE,
    PG_SOURCES,
    PG_STATEMENTS,
    PG_TABLES,
    REDIS_INFO,
    Delta,
    counters_since,
    period_of,
    same_counters,
)
from imsnb.sampling.plans import (
    EXPLAIN_TOP,
    explain,
    plan_change_finding,
    plan_changes,
    plans_and_changes,
    record_plans,
    statements_to_explain,
    store_plans,
)
from imsnb.sampling.postgres import (
    DATABASE_COLUMNS,
    MAX_TABLES,
    REGRESSION_MIN_CALLS,
    REGRESSION_MIN_HISTORY_CALLS,
    REGRESSION_MIN_MEAN_MS,
    STATEMENT_COLUMNS,
    TABLE_COLUMNS,
    database_delta,
    own_load,
    own_load_text,
    own_statements,
    postgres_snapshot,
    postgres_target,
    regressions,
    statement_delta,
    statement_key,
    statement_regression_finding,
    table_delta,
)
from imsnb.sampling.redis import (
    MIN_LOOKUPS,
    REDIS_COUNTERS,
    RedisDelta,
    evictions_finding,
    hit_rate_finding,
    ops_finding,
    redis_delta,
    redis_snapshot,
    redis_target,
)
from imsnb.sampling.sample import Sample, baseline_saved_finding, redis_findings
from imsnb.sampling.start import Start, window_start

__all__ = [
    "EXPLAIN_TOP",
    "explain",
    "plan_change_finding",
    "plan_changes",
    "plans_and_changes",
    "record_plans",
    "statements_to_explain",
    "store_plans",
    "DATABASE_COLUMNS",
    "Delta",
    "MAX_TABLES",
    "MIN_LOOKUPS",
    "PG_DATABASE",
    "PG_SOURCES",
    "PG_STATEMENTS",
    "PG_TABLES",
    "REDIS_COUNTERS",
    "REDIS_INFO",
    "REGRESSION_MIN_CALLS",
    "REGRESSION_MIN_HISTORY_CALLS",
    "REGRESSION_MIN_MEAN_MS",
    "RedisDelta",
    "STATEMENT_COLUMNS",
    "Sample",
    "Start",
    "TABLE_COLUMNS",
    "baseline_saved_finding",
    "counters_since",
    "database_delta",
    "evictions_finding",
    "hit_rate_finding",
    "ops_finding",
    "own_load",
    "own_load_text",
    "own_statements",
    "period_of",
    "postgres_snapshot",
    "postgres_target",
    "redis_delta",
    "redis_findings",
    "redis_snapshot",
    "redis_target",
    "regressions",
    "same_counters",
    "statement_delta",
    "statement_key",
    "statement_regression_finding",
    "table_delta",
    "window_start",
]
