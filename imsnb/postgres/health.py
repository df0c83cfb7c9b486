"""Slow-burning health: buffer cache hit ratio, database sizes, transaction ID wraparound, replication lag."""

from __future__ import annotations

import pandas as pd

from imsnb.findings import Finding, Severity, judge, unjudged
from imsnb.findings.confidence import judge_ratio
from imsnb.period import Period
from imsnb.postgres.session import Database, database_or_default

__all__ = [
    "CACHE_HIT_RATIO",
    "DATABASE_SIZES",
    "MIN_BLOCKS",
    "MIN_BLOCKS_SAMPLED",
    "REPLICATION_LAG_PRIMARY",
    "REPLICATION_LAG_REPLICA",
    "TRANSACTION_ID_AGE",
    "XID_LIMIT",
    "cache_hit_finding",
    "cache_hit_ratio",
    "database_sizes",
    "replication_lag",
    "replication_lag_finding",
    "transaction_id_age",
    "xid_age_finding",
]

XID_LIMIT = 2**31
MIN_BLOCKS = 10_000  # buffer accesses since the statistics started needed to judge a database's hit ratio
MIN_BLOCKS_SAMPLED = 1000  # the same in a period's deltas (a sample of seconds, a window)


CACHE_HIT_RATIO = """
SELECT
    datname AS database,
    blks_hit,
    blks_read,
    (blks_hit::float8 / nullif(blks_hit + blks_read, 0)) AS hit_ratio
FROM pg_stat_database
WHERE datname IS NOT NULL
    AND datname NOT IN ('template0', 'template1')
ORDER BY blks_hit + blks_read DESC
LIMIT %(limit)s
"""


def cache_hit_ratio(db: Database | None = None, *, limit: int = 20) -> pd.DataFrame:
    """Shared-buffer hit ratio per database (blks_hit / (blks_hit + blks_read))."""
    return database_or_default(db).frame(CACHE_HIT_RATIO, {"limit": int(limit)})


def cache_hit_finding(hits: pd.DataFrame, min_blocks: int | None = None, *, period: Period | None = None) -> Finding:
    """Judged only for databases with enough traffic (`min_blocks` buffer accesses) to mean anything, each on the
    upper bound of its ratio's 95% interval (`judge_ratio`): the most severe one is the finding.

    `period`: the span the counts cover (a sample's deltas, `Sample.databases`), None for the lifetime totals
    `cache_hit_ratio` reads. `min_blocks` defaults to MIN_BLOCKS for lifetime totals, MIN_BLOCKS_SAMPLED for a
    period's. A `baseline_hit_ratio` column (from `Sample.databases`) is said beside the judged database's ratio."""
    if min_blocks is None:
        min_blocks = MIN_BLOCKS if period is None or period.lifetime else MIN_BLOCKS_SAMPLED
    busy = hits[(hits["blks_hit"] + hits["blks_read"]) >= min_blocks]
    if busy.empty:
        return unjudged(
            "postgres.cache_hit_ratio",
            Severity.OK,
            f"too little traffic to judge (under {min_blocks:,} buffer accesses)",
            period=period,
        )
    judged = []
    for row in busy.itertuples(index=False):
        accesses = float(row.blks_hit + row.blks_read)
        baseline = getattr(row, "baseline_hit_ratio", None)
        finding = judge_ratio(  # under PgHero's 99% is INFO, worth knowing, not an alert: the catalogue's `first`
            "postgres.cache_hit_ratio",
            float(row.blks_hit),
            accesses,
            f"buffer cache hit ratio of {row.database}: {row.hit_ratio:.2%} "
            f"({accesses:,.0f} buffer accesses, {row.blks_read:,.0f} reads)",
            nouns=("buffer accesses", "reads"),
            context=f"baseline {baseline:.2%}" if baseline is not None and pd.notna(baseline) else "",
            evidence=busy,
            seconds=None if period is None else period.seconds,
            period=period,
        )
        judged.append((finding.severity, -(row.hit_ratio if pd.notna(row.hit_ratio) else 1.0), finding))
    return max(judged, key=lambda item: item[:2])[2]


DATABASE_SIZES = """
SELECT
    database,
    size_bytes,
    pg_size_pretty(size_bytes) AS size
FROM (
    SELECT datname AS database, pg_database_size(datname)::bigint AS size_bytes
    FROM pg_database
    WHERE datallowconn
) AS sizes
ORDER BY size_bytes DESC
LIMIT %(limit)s
"""


def database_sizes(db: Database | None = None, *, limit: int = 20) -> pd.DataFrame:
    return database_or_default(db).frame(DATABASE_SIZES, {"limit": int(limit)})


# -- from PgHero's transaction_id_danger
TRANSACTION_ID_AGE = """
SELECT
    datname AS database,
    age(datfrozenxid)::bigint AS xid_age,
    (age(datfrozenxid)::float8 / %(xid_limit)s) AS wraparound_ratio,
    current_setting('autovacuum_freeze_max_age')::bigint AS freeze_max_age
FROM pg_database
ORDER BY xid_age DESC
LIMIT %(limit)s
"""


def transaction_id_age(db: Database | None = None, *, limit: int = 20) -> pd.DataFrame:
    """Age of each database's oldest unfrozen transaction ID, and how far that is toward wraparound (2^31)."""
    return database_or_default(db).frame(TRANSACTION_ID_AGE, {"xid_limit": XID_LIMIT, "limit": int(limit)})


def xid_age_finding(ages: pd.DataFrame) -> Finding:
    worst = ages.iloc[ages["wraparound_ratio"].argmax()]
    return judge(
        "postgres.xid_age",
        round(float(worst["wraparound_ratio"]), 4),
        f"{worst['database']}: {int(worst['xid_age']):,} transactions since the oldest freeze "
        f"({worst['wraparound_ratio']:.1%} of the way to wraparound)",
    )


REPLICATION_LAG_PRIMARY = """
SELECT
    'primary' AS role,
    application_name AS replica,
    client_addr::text AS client,
    state,
    coalesce(extract(epoch FROM replay_lag), 0)::float8 AS lag_s,
    pg_wal_lsn_diff(sent_lsn, replay_lsn)::float8 AS lag_bytes
FROM pg_stat_replication
ORDER BY lag_s DESC
"""

REPLICATION_LAG_REPLICA = """
SELECT
    'replica' AS role,
    coalesce(nullif(current_setting('cluster_name'), ''), 'this server') AS replica,
    NULL::text AS client,
    'streaming' AS state,
    CASE
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
        ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())
    END::float8 AS lag_s,
    pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS lag_bytes
"""


def replication_lag(db: Database | None = None) -> pd.DataFrame:
    """On a primary: one row per attached replica (pg_stat_replication). On a replica: its own replay delay."""
    db = database_or_default(db)
    in_recovery = bool(db.scalar("SELECT pg_is_in_recovery()"))
    return db.frame(REPLICATION_LAG_REPLICA if in_recovery else REPLICATION_LAG_PRIMARY)


def replication_lag_finding(lag: pd.DataFrame) -> Finding:
    if lag.empty:
        return unjudged("postgres.replication_lag", Severity.OK, "no replica is attached to this primary")
    worst = lag.iloc[lag["lag_s"].argmax()]
    return judge(
        "postgres.replication_lag",
        round(float(worst["lag_s"]), 2),
        f"{worst['role']} {worst['replica']}: replay lag {worst['lag_s']:.1f} s",
        evidence=lag,
    )
