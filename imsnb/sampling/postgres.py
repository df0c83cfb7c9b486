"""PostgreSQL counters over the period: statements (slow, regressed), databases (hit ratio), tables (the trail).

Snapshots of pg_stat_statements (read without query text: text is fetched only for the statements shown),
pg_stat_database and pg_stat_user_tables; deltas between two of them; the judges of the sampled numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from imsnb import postgres
from imsnb.findings import Finding, Severity, judge, threshold, unjudged
from imsnb.history import Snapshot
from imsnb.period import Period
from imsnb.postgres.statements import HIDDEN_STATEMENTS_ATTR
from imsnb.postgres.trail import trail_text
from imsnb.sampling.deltas import (
    PG_DATABASE,
    PG_SOURCES,
    PG_STATEMENTS,
    PG_TABLES,
    epoch_reset_note,
    iso,
    same_counters,
)
from imsnb.sampling.own import OwnKeys, is_own

__all__ = [
    "DATABASE_COLUMNS",
    "HIDDEN_QUERYID",
    "MAX_TABLES",
    "REGRESSION_MIN_CALLS",
    "REGRESSION_MIN_HISTORY_CALLS",
    "REGRESSION_MIN_MEAN_MS",
    "STATEMENT_COLUMNS",
    "TABLE_COLUMNS",
    "database_delta",
    "own_load",
    "postgres_snapshot",
    "postgres_target",
    "regressions",
    "statement_delta",
    "statement_key",
    "statement_regression_finding",
    "table_delta",
]

REGRESSION_MIN_CALLS = 3  # calls in the window before a statement's mean is compared
REGRESSION_MIN_HISTORY_CALLS = 100  # calls before the window for their mean to serve as the reference
REGRESSION_MIN_MEAN_MS = 1.0  # below this a "regression" is noise (0.01 -> 0.06 ms)


SERVER_EPOCH = """
SELECT
    pg_postmaster_start_time() AS started_at,
    (SELECT stats_reset FROM pg_stat_statements_info) AS statements_reset
"""
SERVER_EPOCH_PG13 = "SELECT pg_postmaster_start_time() AS started_at, NULL::timestamptz AS statements_reset"
STATEMENTS_INFO = "SELECT to_regclass('pg_stat_statements_info') IS NOT NULL AS has_info"

# When pg_stat_database / pg_stat_user_tables count from. PostgreSQL keeps them across a clean restart and discards
# them after a crash or an immediate stop (measured on 15), stamping the shared statistics' stats_reset then; a
# database's own stats_reset is its last pg_stat_reset(). Both shared views are reset together only by a discard.
STATISTICS_START = """
SELECT
    pg_postmaster_start_time() AS started_at,
    least(b.stats_reset, a.stats_reset) AS shared_reset,
    (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()) AS database_reset
FROM pg_stat_bgwriter AS b
CROSS JOIN pg_stat_archiver AS a
"""
DISCARD_AFTER_START = timedelta(minutes=1)  # a discard happens while the server starts; a later shared reset is manual

# Another role's entries, to a role without pg_read_all_stats, show their counters but no queryid and no text: they
# are summed per database, user and top-level flag under HIDDEN_QUERYID (pg_stat_statements never keeps a queryid of
# 0). A sum of many statements is no statement: it is never judged, planned or compared with a baseline, only
# counted over the period (`statement_delta` keeps its top-level calls and time in HIDDEN_STATEMENTS_ATTR), so the
# slow-statement check can say what it could not tell apart, and warn when even their mean is slow.
HIDDEN_QUERYID = "0"

# Counters only: showtext := false costs a fifth of the read with text (STACK.md); {total} and {toplevel} from the
# version's names. Top-level and nested entries stay apart: imsnb's PREPARE of an application statement is a nested
# entry under the application's queryid (pg_stat_statements.track = all), imsnb's time, not the application's.
STATEMENTS_SNAPSHOT = """
SELECT
    coalesce(s.queryid::text, '0') AS queryid,
    d.datname AS database,
    r.rolname AS user,
    sum(s.calls)::float8 AS calls,
    sum(s.{total})::float8 AS total_ms,
    sum(s.rows)::float8 AS rows,
    sum(s.shared_blks_hit)::float8 AS blks_hit,
    sum(s.shared_blks_read)::float8 AS blks_read,
    {toplevel} AS toplevel
FROM pg_stat_statements(false) AS s
LEFT JOIN pg_database AS d ON d.oid = s.dbid
LEFT JOIN pg_roles AS r ON r.oid = s.userid
GROUP BY 1, 2, 3, 9
"""

# One text per queryid: the application's, not imsnb's own PREPARE of it when plans are taken (with
# pg_stat_statements.track = all the nested statement is an entry of its own under the same queryid).
STATEMENT_TEXTS = """
SELECT DISTINCT ON (s.queryid) s.queryid::text AS queryid, s.query
FROM pg_stat_statements AS s
WHERE s.queryid = ANY(%(queryids)s::bigint[])
ORDER BY s.queryid, s.query LIKE '/* imsnb */%%', s.query LIKE 'PREPARE %%', s.calls DESC
"""

DATABASE_SNAPSHOT = """
SELECT
    datname AS database,
    blks_hit::float8 AS blks_hit,
    blks_read::float8 AS blks_read,
    xact_commit::float8 AS xact_commit,
    xact_rollback::float8 AS xact_rollback,
    stats_reset
FROM pg_stat_database
WHERE datname IS NOT NULL
    AND datname NOT IN ('template0', 'template1')
"""

# pg_stat_user_tables' columns, without its cost: the view sums every index's counters for every table (72 ms at
# 20,000 tables, bench/table_snapshot.py) before LIMIT keeps the top few. The per-table counters come first, cheap,
# and the index sums only for the tables kept. Same rows and values as the view (tests/test_table_snapshot.py).
TABLES_SNAPSHOT = """
SELECT
    t.schema,
    t.table,
    t.seq_scan,
    t.seq_tup_read,
    coalesce(i.idx_scan, 0)::float8 AS idx_scan,
    coalesce(i.idx_tup_fetch + t.heap_fetched, 0)::float8 AS idx_tup_fetch,
    t.live_rows
FROM (
    SELECT
        c.oid,
        n.nspname AS schema,
        c.relname AS table,
        pg_stat_get_numscans(c.oid)::float8 AS seq_scan,
        pg_stat_get_tuples_returned(c.oid)::float8 AS seq_tup_read,
        pg_stat_get_tuples_fetched(c.oid) AS heap_fetched,
        pg_stat_get_live_tuples(c.oid)::float8 AS live_rows
    FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 't', 'm', 'p')
        AND n.nspname NOT IN ('pg_catalog', 'information_schema')
        AND n.nspname !~ '^pg_toast'
    ORDER BY seq_tup_read DESC
    LIMIT %(limit)s
) AS t
LEFT JOIN LATERAL (
    SELECT
        sum(pg_stat_get_numscans(x.indexrelid)) AS idx_scan,
        sum(pg_stat_get_tuples_fetched(x.indexrelid)) AS idx_tup_fetch
    FROM pg_index AS x
    WHERE x.indrelid = t.oid
) AS i ON true
ORDER BY t.seq_tup_read DESC
"""

STATEMENT_COLUMNS = ["queryid", "database", "user", "calls", "total_ms", "rows", "blks_hit", "blks_read", "toplevel"]
STATEMENT_KEY = ["queryid", "database", "user", "toplevel"]
STATEMENT_COUNTERS = ["calls", "total_ms", "rows", "blks_hit", "blks_read"]
DATABASE_COLUMNS = ["database", "blks_hit", "blks_read", "xact_commit", "xact_rollback"]
TABLE_COLUMNS = ["schema", "table", "seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "live_rows"]


MAX_TABLES = 500


def postgres_target(db: postgres.Database) -> str:
    db.connection()  # the label names the server actually reached
    return f"postgres {db.label}"


def postgres_snapshot(db: postgres.Database, source: str, taken_by: str = "imsnb") -> Snapshot:
    """One snapshot of `source` (pg_stat_statements, pg_stat_database or pg_stat_user_tables)."""
    target = postgres_target(db)
    if source == PG_STATEMENTS:
        has_info = bool(db.scalar(STATEMENTS_INFO))
        epoch_row = db.frame(SERVER_EPOCH if has_info else SERVER_EPOCH_PG13).iloc[0]
        names = postgres.statement_time_columns(db)
        frame = db.frame(STATEMENTS_SNAPSHOT.format(total=names["total"], toplevel=names["toplevel"]))
        epoch = f"{iso(epoch_row['started_at'])}|{iso(epoch_row['statements_reset'])}"
        data = frame[STATEMENT_COLUMNS].values.tolist()
    elif source == PG_DATABASE:
        start = db.frame(STATISTICS_START).iloc[0]
        frame = db.frame(DATABASE_SNAPSHOT)
        resets = frame["stats_reset"]
        every_database_reset = resets.min() if len(resets) and resets.notna().all() else None
        epoch = f"{iso(start['started_at'])}|{iso(latest(discarded_at(start), every_database_reset))}"
        data = frame[DATABASE_COLUMNS].values.tolist()
    elif source == PG_TABLES:
        start = db.frame(STATISTICS_START).iloc[0]
        frame = db.frame(TABLES_SNAPSHOT, {"limit": MAX_TABLES})
        epoch = f"{iso(start['started_at'])}|{iso(latest(discarded_at(start), start['database_reset']))}"
        data = frame[TABLE_COLUMNS].values.tolist()
    else:
        raise ValueError(f"unknown PostgreSQL source {source!r}: use one of {PG_SOURCES}")
    return Snapshot(target, source, datetime.now(UTC), taken_by, epoch, data)


def discarded_at(start: pd.Series) -> datetime | None:
    """When PostgreSQL last discarded its cumulative statistics (a fresh cluster, a crash, an immediate stop): the
    shared statistics' reset time when it falls before the server was up; None when a later manual
    pg_stat_reset_shared() hides it."""
    shared, started = start["shared_reset"], start["started_at"]
    if iso(shared) is None or iso(started) is None or shared > started + DISCARD_AFTER_START:
        return None
    return shared


def latest(*times: Any) -> Any:
    """The latest of the times given that are known (None when none is)."""
    known = [t for t in times if iso(t) is not None]
    return max(known) if known else None


def statement_rows(snapshot: Snapshot | None) -> pd.DataFrame:
    """A pg_stat_statements snapshot as a frame; one stored before entries were split by `toplevel` counts them as
    top-level (its rows summed both)."""
    rows = [list(r) + [True] * (len(STATEMENT_COLUMNS) - len(r)) for r in (snapshot.data if snapshot else [])]
    frame = pd.DataFrame(rows, columns=STATEMENT_COLUMNS)
    frame["toplevel"] = frame["toplevel"].astype(bool)
    return frame


def _counter_deltas(before: Snapshot | None, after: Snapshot) -> tuple[pd.DataFrame, bool, pd.Series]:
    """Per entry (STATEMENT_KEY): the snapshots' counters side by side and d_<counter> between them; whether the
    whole epoch was reset; which entries went down (reset: their numbers since then are used)."""
    now, then = statement_rows(after), statement_rows(before)
    merged = now.merge(then, on=STATEMENT_KEY, how="left", suffixes=("", "_before")).fillna(
        {f"{c}_before": 0.0 for c in STATEMENT_COUNTERS}
    )
    epoch_reset = before is not None and not same_counters(before, after)
    went_down = merged["calls"] < merged["calls_before"]
    if epoch_reset:
        went_down[:] = True
    for column in STATEMENT_COUNTERS:
        merged[f"d_{column}"] = merged[column].where(went_down, merged[column] - merged[f"{column}_before"])
    return merged, epoch_reset, went_down


def statement_delta(before: Snapshot | None, after: Snapshot, own: OwnKeys = frozenset()) -> tuple[pd.DataFrame, str]:
    """Per statement (queryid, database, user): calls, time and rows between the snapshots, and the mean before them;
    imsnb's own entries (`own`, from `own_statements`) left out, top-level and nested entries of a statement summed.

    A statement whose calls went down was reset (or the server restarted): its numbers since then are used.
    Returns the frame and a note when a reset was seen ("" otherwise)."""
    merged, epoch_reset, went_down = _counter_deltas(before, after)
    hidden = merged["queryid"] == HIDDEN_QUERYID
    other_roles = _hidden_load(before, merged[hidden], went_down[hidden])
    merged, went_down = merged[~hidden], went_down[~hidden]
    note = ""
    if epoch_reset:
        note = epoch_reset_note(before, after)
    elif went_down.any():
        note = f"{int(went_down.sum())} statement(s) were reset between the snapshots: their numbers count from then"
    if own:
        mine = is_own(merged, own)
        merged, went_down = merged[~mine], went_down[~mine]
    merged = merged.assign(
        before_calls=merged["calls_before"].where(~went_down, 0.0),
        before_total_ms=merged["total_ms_before"].where(~went_down, 0.0),
        reset=went_down,
    )
    summed = [*(f"d_{c}" for c in STATEMENT_COUNTERS), "before_calls", "before_total_ms", "reset"]
    merged = merged.groupby(["queryid", "database", "user"], as_index=False, dropna=False, sort=False)[summed].sum()
    frame = pd.DataFrame(
        {
            "queryid": merged["queryid"],
            "database": merged["database"],
            "user": merged["user"],
            "calls": merged["d_calls"].astype(int),
            "total_ms": merged["d_total_ms"],
            "rows": merged["d_rows"].astype(int),
            "hit_ratio": merged["d_blks_hit"] / (merged["d_blks_hit"] + merged["d_blks_read"]).where(lambda s: s > 0),
            "before_calls": merged["before_calls"].astype(int),
            "before_mean_ms": (merged["before_total_ms"] / merged["before_calls"].where(lambda s: s > 0)).where(
                merged["reset"] == 0
            ),
        }
    )
    frame = frame[frame["calls"] > 0].copy()
    frame.insert(5, "mean_ms", frame["total_ms"] / frame["calls"])
    frame = frame.reset_index(drop=True)
    frame.attrs[HIDDEN_STATEMENTS_ATTR] = other_roles
    return frame, note


def _hidden_load(before: Snapshot | None, rows: pd.DataFrame, went_down: pd.Series) -> dict[str, float] | None:
    """Other roles' hidden statements between the snapshots: their top-level calls and time (a nested statement's
    time is inside its top-level one's); None when the sums cannot be compared (no earlier snapshot of them, or an
    entry evicted or reset in between: a sum of many entries that lost one is no count of the period)."""
    top = rows[rows["toplevel"].astype(bool)]
    if top.empty:
        return {"calls": 0, "total_ms": 0.0}
    known = set() if before is None else set(map(tuple, statement_rows(before)[STATEMENT_KEY].itertuples(index=False)))
    comparable = all(tuple(key) in known for key in top[STATEMENT_KEY].itertuples(index=False))
    if not comparable or went_down[top.index].any() or (top["d_total_ms"] < 0).any():
        return None
    return {"calls": float(top["d_calls"].sum()), "total_ms": float(top["d_total_ms"].sum())}


def own_load(before: Snapshot | None, after: Snapshot, own: OwnKeys) -> pd.DataFrame:
    """Per database: the calls, time and buffer accesses of imsnb's own top-level statements between the snapshots
    (their nested entries are inside them), beside every top-level statement's. Columns: database, calls, total_ms,
    blks_hit, blks_read, all_total_ms, all_blks."""
    merged = _counter_deltas(before, after)[0]
    merged = merged[merged["toplevel"]]
    mine = is_own(merged, own) if own else pd.Series(False, index=merged.index)
    counters = [f"d_{c}" for c in ("calls", "total_ms", "blks_hit", "blks_read")]
    frame = merged[mine].groupby("database", dropna=False)[counters].sum()
    every = merged.groupby("database", dropna=False)[["d_total_ms", "d_blks_hit", "d_blks_read"]].sum()
    out = pd.DataFrame(
        {
            "calls": frame["d_calls"],
            "total_ms": frame["d_total_ms"],
            "blks_hit": frame["d_blks_hit"],
            "blks_read": frame["d_blks_read"],
        },
        index=every.index,
    ).fillna(0.0)
    out["all_total_ms"] = every["d_total_ms"]
    out["all_blks"] = every["d_blks_hit"] + every["d_blks_read"]
    return out.rename_axis("database").reset_index()


def table_delta(before: Snapshot | None, after: Snapshot) -> pd.DataFrame:
    """Per table: sequential and index scans and rows read between the snapshots."""
    now = pd.DataFrame(after.data, columns=TABLE_COLUMNS)
    then = pd.DataFrame(before.data if before else [], columns=TABLE_COLUMNS)
    merged = now.merge(then, on=["schema", "table"], how="left", suffixes=("", "_before")).fillna(0.0)
    out = merged[["schema", "table", "live_rows"]].copy()
    for column in ("seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch"):
        diff = merged[column] - merged[f"{column}_before"]
        out[column] = diff.where(diff >= 0, merged[column]).astype(int)
    return out.sort_values("seq_tup_read", ascending=False).reset_index(drop=True)


def database_delta(before: Snapshot | None, after: Snapshot) -> pd.DataFrame:
    now = pd.DataFrame(after.data, columns=DATABASE_COLUMNS)
    then = pd.DataFrame(before.data if before else [], columns=DATABASE_COLUMNS)
    merged = now.merge(then, on="database", how="left", suffixes=("", "_before")).fillna(0.0)
    out = merged[["database"]].copy()
    for column in DATABASE_COLUMNS[1:]:
        diff = merged[column] - merged[f"{column}_before"]
        out[column] = diff.where(diff >= 0, merged[column]).astype(int)
    accesses = out["blks_hit"] + out["blks_read"]
    out["hit_ratio"] = out["blks_hit"] / accesses.where(accesses > 0)
    return out.sort_values("blks_hit", ascending=False).reset_index(drop=True)


def regressions(statements: pd.DataFrame, baseline: dict[str, dict] | None = None) -> pd.DataFrame:
    """Statements whose mean in the period is a multiple of their reference mean: the saved baseline's when there is
    one for the statement, else the mean of their calls before the period (when there were enough of them)."""
    rows = []
    baseline = baseline or {}
    for row in statements.itertuples(index=False):
        if row.calls < REGRESSION_MIN_CALLS or row.mean_ms < REGRESSION_MIN_MEAN_MS:
            continue
        saved = baseline.get(statement_key(row.queryid, row.database, row.user))
        if saved and saved.get("mean_ms"):
            reference, basis = float(saved["mean_ms"]), "baseline"
        elif row.before_calls >= REGRESSION_MIN_HISTORY_CALLS and row.before_mean_ms and row.before_mean_ms > 0:
            reference, basis = float(row.before_mean_ms), f"its {int(row.before_calls):,} earlier calls"
        else:
            continue
        rows.append({**row._asdict(), "reference_ms": reference, "reference": basis, "ratio": row.mean_ms / reference})
    columns = [*statements.columns, "reference_ms", "reference", "ratio"]
    return pd.DataFrame(rows, columns=columns).sort_values("ratio", ascending=False).reset_index(drop=True)


def statement_regression_finding(regressed: pd.DataFrame, period: Period, trail: pd.DataFrame | None = None) -> Finding:
    """WARNING when a statement's mean in `period` is `postgres.statement_regression` times its reference (default
    5x): "4,580x slower: <statement>, 8.6 ms vs 0.0019 ms (its 1,000 earlier calls) over 95 calls"."""
    limit = threshold("postgres.statement_regression")
    flagged = regressed[regressed["ratio"] >= limit.warning] if not regressed.empty else regressed
    if flagged.empty:
        compared = len(regressed)
        return unjudged(
            "postgres.statement_regression",
            Severity.OK,
            f"no statement runs {limit.warning:g}x slower than its baseline "
            f"({compared} compared with a baseline or their earlier calls)",
            value=round(float(regressed["ratio"].max()), 2) if compared else None,
            period=period,
        )
    worst = flagged.iloc[0]
    tables = trail_text(trail, worst["queryid"])
    others = f"; {len(flagged) - 1} more statement(s) regressed" if len(flagged) > 1 else ""
    return judge(
        "postgres.statement_regression",
        round(float(worst["ratio"]), 1),
        f"{worst['ratio']:,.0f}x slower: {postgres.excerpt(worst['query'])}, {milliseconds(worst['mean_ms'])} ms vs "
        f"{milliseconds(worst['reference_ms'])} ms ({worst['reference']}) over {int(worst['calls']):,} calls{others}"
        + (f". Tables it read: {tables}" if tables else ""),
        evidence=flagged[["queryid", "calls", "mean_ms", "reference_ms", "reference", "ratio", "query"]],
        period=period,
        floor=Severity.WARNING,
    )


def milliseconds(value: float) -> str:
    """A mean in ms as a reader compares it: one decimal from 1 ms up, three significant digits below (0.00346)."""
    return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"


def statement_key(queryid: Any, database: Any, user: Any) -> str:
    return f"{queryid}|{database}|{user}"
