"""Judge the incident, not the server's lifetime: cumulative counters sampled over the run.

    sample = sampling.Sample(sample_s, db=db, cache=redis, window=span, taken_by="db_performance")  # setup cell
    ...
    top = sample.statements()            # in a section: waits only for what remains of sample_s, then deltas

The first snapshot of every source is taken in the setup cell, the second when a section asks for it; findings are
judged on the difference (per-statement calls and time keyed by queryid, user and database; hit rates, evictions/s
and ops/s). A counter that went down between the snapshots (a restart or stats reset) is detected and said. When the
history store (`imsnb.history`) holds a snapshot near the start of the incident window, it replaces this run's first
snapshot, so the numbers cover the window. With `sample_s=0` sampling is off and lifetime totals are read, labelled
"since restart".

Sources: pg_stat_statements (read without query text: text is fetched only for the statements shown),
pg_stat_database, pg_stat_user_tables, and Redis INFO stats + commandstats.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from imsnb import postgres
from imsnb.findings import Finding, Severity, judge, threshold
from imsnb.history import History, Snapshot
from imsnb.period import Period, since
from imsnb.window import Window

PG_STATEMENTS = "pg_stat_statements"
PG_DATABASE = "pg_stat_database"
PG_TABLES = "pg_stat_user_tables"
REDIS_INFO = "redis_info"
PG_SOURCES = (PG_STATEMENTS, PG_DATABASE, PG_TABLES)

MIN_LOOKUPS = 20  # Redis lookups in the sample needed to judge its hit rate
MIN_BLOCKS = 1000  # buffer accesses in the sample needed to judge a database's hit ratio
REGRESSION_MIN_CALLS = 3  # calls in the window before a statement's mean is compared
REGRESSION_MIN_HISTORY_CALLS = 100  # calls before the window for their mean to serve as the reference
REGRESSION_MIN_MEAN_MS = 1.0  # below this a "regression" is noise (0.01 -> 0.06 ms)

# --- SQL ------------------------------------------------------------------------------------------------------------

SERVER_EPOCH = """
SELECT
    pg_postmaster_start_time() AS started_at,
    (SELECT stats_reset FROM pg_stat_statements_info) AS statements_reset
"""
SERVER_EPOCH_PG13 = "SELECT pg_postmaster_start_time() AS started_at, NULL::timestamptz AS statements_reset"
STATEMENTS_INFO = "SELECT to_regclass('pg_stat_statements_info') IS NOT NULL AS has_info"

# Counters only: showtext := false costs a fifth of the read with text (STACK.md); {total} from the version's names.
STATEMENTS_SNAPSHOT = """
SELECT
    s.queryid::text AS queryid,
    d.datname AS database,
    r.rolname AS user,
    sum(s.calls)::float8 AS calls,
    sum(s.{total})::float8 AS total_ms,
    sum(s.rows)::float8 AS rows,
    sum(s.shared_blks_hit)::float8 AS blks_hit,
    sum(s.shared_blks_read)::float8 AS blks_read
FROM pg_stat_statements(false) AS s
LEFT JOIN pg_database AS d ON d.oid = s.dbid
LEFT JOIN pg_roles AS r ON r.oid = s.userid
WHERE s.queryid IS NOT NULL
GROUP BY 1, 2, 3
"""

STATEMENT_TEXTS = """
SELECT DISTINCT ON (s.queryid) s.queryid::text AS queryid, s.query
FROM pg_stat_statements AS s
WHERE s.queryid = ANY(%(queryids)s::bigint[])
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

TABLES_SNAPSHOT = """
SELECT
    schemaname AS schema,
    relname AS table,
    coalesce(seq_scan, 0)::float8 AS seq_scan,
    coalesce(seq_tup_read, 0)::float8 AS seq_tup_read,
    coalesce(idx_scan, 0)::float8 AS idx_scan,
    coalesce(idx_tup_fetch, 0)::float8 AS idx_tup_fetch,
    n_live_tup::float8 AS live_rows
FROM pg_stat_user_tables
ORDER BY seq_tup_read DESC
LIMIT %(limit)s
"""

STATEMENT_COLUMNS = ["queryid", "database", "user", "calls", "total_ms", "rows", "blks_hit", "blks_read"]
DATABASE_COLUMNS = ["database", "blks_hit", "blks_read", "xact_commit", "xact_rollback"]
TABLE_COLUMNS = ["schema", "table", "seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "live_rows"]
REDIS_COUNTERS = (
    "keyspace_hits",
    "keyspace_misses",
    "evicted_keys",
    "expired_keys",
    "total_commands_processed",
    "total_connections_received",
)
MAX_TABLES = 500


# --- snapshots ------------------------------------------------------------------------------------------------------


def postgres_target(db: postgres.Database) -> str:
    db.connection()  # the label names the server actually reached
    return f"postgres {db.label}"


def redis_target(cache: Any) -> str:
    return f"redis {cache.label}"


def postgres_snapshot(db: postgres.Database, source: str, taken_by: str = "imsnb") -> Snapshot:
    """One snapshot of `source` (pg_stat_statements, pg_stat_database or pg_stat_user_tables)."""
    target = postgres_target(db)
    if source == PG_STATEMENTS:
        has_info = bool(db.scalar(STATEMENTS_INFO))
        epoch_row = db.frame(SERVER_EPOCH if has_info else SERVER_EPOCH_PG13).iloc[0]
        names = postgres.statement_time_columns(db)
        frame = db.frame(STATEMENTS_SNAPSHOT.format(total=names["total"]))
        epoch = f"{_iso(epoch_row['started_at'])}|{_iso(epoch_row['statements_reset'])}"
        data = frame[STATEMENT_COLUMNS].values.tolist()
    elif source == PG_DATABASE:
        started = db.scalar("SELECT pg_postmaster_start_time()")
        frame = db.frame(DATABASE_SNAPSHOT)
        resets = frame["stats_reset"].dropna()
        epoch = f"{_iso(started)}|{_iso(resets.max()) if len(resets) else None}"
        data = frame[DATABASE_COLUMNS].values.tolist()
    elif source == PG_TABLES:
        started = db.scalar("SELECT pg_postmaster_start_time()")
        frame = db.frame(TABLES_SNAPSHOT, {"limit": MAX_TABLES})
        epoch = f"{_iso(started)}|None"
        data = frame[TABLE_COLUMNS].values.tolist()
    else:
        raise ValueError(f"unknown PostgreSQL source {source!r}: use one of {PG_SOURCES}")
    return Snapshot(target, source, datetime.now(UTC), taken_by, epoch, data)


def redis_snapshot(cache: Any, taken_by: str = "imsnb") -> Snapshot:
    """INFO stats (hits, misses, evictions, commands) and commandstats; the epoch is the server's run_id."""
    info = cache.call("info", "everything")
    counters = {name: int(info.get(name, 0)) for name in REDIS_COUNTERS}
    counters["uptime_s"] = int(info.get("uptime_in_seconds", 0))
    commands = {
        name.removeprefix("cmdstat_"): {"calls": int(v.get("calls", 0)), "usec": int(v.get("usec", 0))}
        for name, v in info.items()
        if name.startswith("cmdstat_") and isinstance(v, dict)
    }
    epoch = str(info.get("run_id", ""))
    data = {**counters, "commands": commands}
    return Snapshot(redis_target(cache), REDIS_INFO, datetime.now(UTC), taken_by, epoch, data)


def _iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


# --- deltas ---------------------------------------------------------------------------------------------------------


@dataclass
class Delta:
    """Two snapshots of one source and what lies between them."""

    before: Snapshot | None  # None: sampling off or the first snapshot failed (lifetime totals)
    after: Snapshot
    period: Period
    reset: str = ""  # "a restart/stats reset between the snapshots: ..." when counters went down

    @property
    def seconds(self) -> float:
        return max(self.period.seconds or 0.0, 1e-9)


def period_of(before: Snapshot | None, after: Snapshot, basis: str, note: str = "") -> Period:
    if before is None:
        started = _epoch_start(after.epoch)
        return since(started, after.taken_at, note)
    return Period(before.taken_at, after.taken_at, basis, note)


def _epoch_start(epoch: str) -> datetime | None:
    """The latest of the restart / reset times recorded in an epoch string (what lifetime counters count from)."""
    times = []
    for part in epoch.split("|"):
        try:
            times.append(datetime.fromisoformat(part).astimezone(UTC))
        except ValueError:
            continue
    return max(times) if times else None


def _epoch_reset_note(before: Snapshot, after: Snapshot) -> str:
    if before.epoch == after.epoch:
        return ""
    if after.source == REDIS_INFO:
        return f"Redis restarted between {before.taken_at:%H:%M:%S} and {after.taken_at:%H:%M:%S} (new run_id)"
    old, new = before.epoch.split("|"), after.epoch.split("|")
    what = "server restarted" if old[0] != new[0] else "statistics were reset"
    when = _epoch_start(after.epoch)
    at = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if when else ""
    return f"{what}{at}, between the snapshots: numbers count from then"


def _went_down_note(before: Snapshot, after: Snapshot) -> str:
    """Counters lower than before without a new epoch: a partial reset (pg_stat_statements_reset of one statement,
    Redis CONFIG RESETSTAT)."""
    if after.source == PG_STATEMENTS:
        return statement_delta(before, after)[1]
    if after.source == REDIS_INFO:
        down = [n for n in REDIS_COUNTERS if int(after.data.get(n, 0)) < int(before.data.get(n, 0))]
        if down:
            return f"Redis counters went down between the snapshots ({', '.join(down)}: CONFIG RESETSTAT?)"
    return ""


def statement_delta(before: Snapshot | None, after: Snapshot) -> tuple[pd.DataFrame, str]:
    """Per statement (queryid, database, user): calls, time and rows between the snapshots, and the mean before them.

    A statement whose calls went down was reset (or the server restarted): its numbers since then are used.
    Returns the frame and a note when a reset was seen ("" otherwise)."""
    now = pd.DataFrame(after.data, columns=STATEMENT_COLUMNS)
    keys = ["queryid", "database", "user"]
    if before is None:
        then = pd.DataFrame(columns=STATEMENT_COLUMNS)
    else:
        then = pd.DataFrame(before.data, columns=STATEMENT_COLUMNS)
    merged = now.merge(then, on=keys, how="left", suffixes=("", "_before")).fillna(
        {f"{c}_before": 0.0 for c in STATEMENT_COLUMNS[3:]}
    )
    epoch_reset = before is not None and before.epoch != after.epoch
    went_down = merged["calls"] < merged["calls_before"]
    if epoch_reset:
        went_down[:] = True
    for column in STATEMENT_COLUMNS[3:]:
        merged[f"d_{column}"] = merged[column].where(went_down, merged[column] - merged[f"{column}_before"])
    note = ""
    if epoch_reset:
        note = _epoch_reset_note(before, after)
    elif went_down.any():
        note = f"{int(went_down.sum())} statement(s) were reset between the snapshots: their numbers count from then"
    frame = pd.DataFrame(
        {
            "queryid": merged["queryid"],
            "database": merged["database"],
            "user": merged["user"],
            "calls": merged["d_calls"].astype(int),
            "total_ms": merged["d_total_ms"],
            "rows": merged["d_rows"].astype(int),
            "hit_ratio": merged["d_blks_hit"] / (merged["d_blks_hit"] + merged["d_blks_read"]).where(lambda s: s > 0),
            "before_calls": merged["calls_before"].where(~went_down, 0).astype(int),
            "before_mean_ms": (merged["total_ms_before"] / merged["calls_before"].where(lambda s: s > 0)).where(
                ~went_down
            ),
        }
    )
    frame = frame[frame["calls"] > 0].copy()
    frame.insert(5, "mean_ms", frame["total_ms"] / frame["calls"])
    return frame.reset_index(drop=True), note


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


@dataclass
class RedisDelta:
    hits: int
    misses: int
    evicted: int
    expired: int
    commands: int
    seconds: float
    lifetime_hits: int
    lifetime_misses: int
    lifetime_evicted: int
    uptime_s: int
    by_command: pd.DataFrame

    @property
    def hit_rate(self) -> float | None:
        return self.hits / (self.hits + self.misses) if self.hits + self.misses else None

    @property
    def lifetime_hit_rate(self) -> float | None:
        total = self.lifetime_hits + self.lifetime_misses
        return self.lifetime_hits / total if total else None

    @property
    def evictions_per_s(self) -> float:
        return self.evicted / self.seconds

    @property
    def ops_per_s(self) -> float:
        return self.commands / self.seconds


def redis_delta(before: Snapshot | None, after: Snapshot, seconds: float) -> RedisDelta:
    now, then = after.data, (before.data if before else {})
    restarted = before is not None and before.epoch != after.epoch

    def diff(name: str) -> int:
        value = int(now.get(name, 0)) - int(then.get(name, 0)) if then and not restarted else int(now.get(name, 0))
        return value if value >= 0 else int(now.get(name, 0))

    rows = []
    for name, counters in now.get("commands", {}).items():
        old = {} if restarted else then.get("commands", {}).get(name, {})
        calls = counters["calls"] - old.get("calls", 0)
        usec = counters["usec"] - old.get("usec", 0)
        if calls < 0:
            calls, usec = counters["calls"], counters["usec"]
        if calls > 0:
            rows.append({"command": name, "calls": calls, "per_s": calls / seconds, "usec_per_call": usec / calls})
    by_command = pd.DataFrame(rows, columns=["command", "calls", "per_s", "usec_per_call"])
    return RedisDelta(
        diff("keyspace_hits"),
        diff("keyspace_misses"),
        diff("evicted_keys"),
        diff("expired_keys"),
        diff("total_commands_processed"),
        seconds,
        int(now.get("keyspace_hits", 0)),
        int(now.get("keyspace_misses", 0)),
        int(now.get("evicted_keys", 0)),
        int(now.get("uptime_s", 0)),
        by_command.sort_values("calls", ascending=False).reset_index(drop=True),
    )


# --- the sample -----------------------------------------------------------------------------------------------------


class Sample:
    """First snapshots now; second snapshots (and deltas) when a section asks, after what remains of `sample_s`.

    Never raises in the constructor: a source that cannot be read now (unreachable, locked, not installed) is
    retried when its section runs, where the failure becomes that section's finding.
    """

    def __init__(
        self,
        sample_s: float = 10.0,
        *,
        db: postgres.Database | None = None,
        cache: Any = None,
        window: Window | None = None,
        taken_by: str = "imsnb",
        history: History | None = None,
        store: bool = True,
    ):
        if not isinstance(sample_s, (int, float)) or sample_s < 0:
            raise ValueError(f"sample_s must be a number of seconds, 0 or more (0: off), not {sample_s!r}")
        self.sample_s = float(sample_s)
        self.db, self.cache, self.window, self.taken_by = db, cache, window, taken_by
        self.history = history if history is not None else History()
        self.store = store
        self.started = time.monotonic()
        self.first: dict[str, Snapshot] = {}
        self.second: dict[str, Snapshot] = {}
        self.first_errors: dict[str, str] = {}
        self._deltas: dict[str, Delta] = {}
        self._baselines: dict[str, dict[str, Any] | None] = {}
        if self.sample_s > 0:
            for source in self.sources:
                try:
                    self.first[source] = self._snapshot(source)
                except Exception as exc:  # noqa: BLE001 - retried (and reported) by the section
                    self.first_errors[source] = " ".join(str(exc).split()) or type(exc).__name__
            self._store(list(self.first.values()))
            self.started = time.monotonic()  # the sample runs from the end of the first snapshots

    @property
    def sources(self) -> list[str]:
        return ([*PG_SOURCES] if self.db is not None else []) + ([REDIS_INFO] if self.cache is not None else [])

    def _snapshot(self, source: str) -> Snapshot:
        if source == REDIS_INFO:
            return redis_snapshot(self.cache, self.taken_by)
        return postgres_snapshot(self.db, source, self.taken_by)

    def _store(self, snapshots: list[Snapshot]) -> None:
        if self.store and snapshots:
            try:
                self.history.add(*snapshots)
            except Exception as exc:  # noqa: BLE001 - a full disk must not cost the diagnosis
                print(f"history store not written ({self.history.path}): {exc}")

    def remaining_s(self) -> float:
        return max(0.0, self.sample_s - (time.monotonic() - self.started))

    def wait(self) -> None:
        """Sleep for what remains of the sample (nothing when the other sections took longer)."""
        remaining = self.remaining_s()
        if remaining > 0:
            print(f"sampling: waiting {remaining:.1f} s for the end of the {self.sample_s:g} s sample")
            time.sleep(remaining)

    def delta(self, source: str) -> Delta:
        """The before/after snapshots of `source` and the period they cover (sample, history or since restart)."""
        if source in self._deltas:
            return self._deltas[source]
        if self.sample_s > 0 and source in self.first:
            self.wait()
        after = self._snapshot(source)
        self.second[source] = after
        self._store([after])
        before, basis, note = self.first.get(source), "sample", ""
        if self.sample_s <= 0:
            note = "sampling off (sample_s=0): lifetime totals"
        elif before is None:
            note = f"no first snapshot ({self.first_errors.get(source, 'not taken')}): lifetime totals"
        stored = self._from_history(source, after)
        if stored is not None and before is not None:
            if stored.epoch == after.epoch:
                before, basis = stored, "history"
                note = f"from a snapshot taken by {stored.taken_by} at {stored.taken_at:%H:%M:%S} UTC"
            else:
                note = (
                    f"the stored snapshot of {stored.taken_at:%H:%M:%S} UTC predates a restart or reset "
                    f"({_epoch_reset_note(stored, after)}): this run's sample is used"
                )
        reset = ""
        if before is not None:
            reset = _epoch_reset_note(before, after) or _went_down_note(before, after)
        period = period_of(before, after, basis, "; ".join(p for p in (note, reset) if p))
        if before is not None and reset and (start := _epoch_start(after.epoch)) and start > before.taken_at:
            period = Period(start, after.taken_at, basis, period.note)
        self._deltas[source] = Delta(before, after, period, reset)
        return self._deltas[source]

    def _from_history(self, source: str, after: Snapshot) -> Snapshot | None:
        """The stored snapshot nearest the window's start, when one lies within the window (before this run's)."""
        if self.window is None or self.sample_s <= 0 or source not in self.first:
            return None
        first = self.first[source]
        slack = min(timedelta(seconds=self.window.seconds / 4), timedelta(minutes=15))
        latest = first.taken_at - timedelta(seconds=0.5)  # any stored snapshot older than this run's first
        earliest = self.window.start - slack
        if latest <= earliest:
            return None
        try:
            return self.history.nearest(after.target, source, self.window.start, earliest=earliest, latest=latest)
        except Exception as exc:  # noqa: BLE001
            print(f"history store not read ({self.history.path}): {exc}")
            return None

    # -- what the sections ask for ---------------------------------------------------------------------------------

    def statements(self, *, limit: int = 10, by: str = "total", min_mean_ms: float = 0.0) -> pd.DataFrame:
        """Statements in the period, by total (or mean) time, with query text (literals masked) for those shown.

        Columns as `postgres.statements()` plus calls_per_s, before_calls and before_mean_ms (the mean before the
        period: the reference a regression is measured against when no baseline was saved)."""
        if by not in ("total", "mean"):
            raise ValueError(f"statements(by={by!r}): use 'total' or 'mean'")
        delta = self.delta(PG_STATEMENTS)
        frame, _ = statement_delta(delta.before, delta.after)
        frame = frame[frame["mean_ms"] >= float(min_mean_ms)]
        frame = frame.sort_values(f"{by}_ms", ascending=False).head(int(limit)).reset_index(drop=True)
        frame["calls_per_s"] = frame["calls"] / delta.seconds
        saved = self.baseline_statements()
        frame["baseline_mean_ms"] = [
            (saved.get(statement_key(r.queryid, r.database, r.user)) or {}).get("mean_ms")
            for r in frame.itertuples(index=False)
        ]
        return self._with_text(frame)

    # -- baseline and trail ----------------------------------------------------------------------------------------

    def target(self, source: str) -> str:
        return redis_target(self.cache) if source == REDIS_INFO else postgres_target(self.db)

    def baseline(self, source: str) -> dict[str, Any] | None:
        """The saved baseline of this target for `source` (saved by performance_baseline), or None."""
        if source in self._baselines:
            return self._baselines[source]
        try:
            found = self.history.baseline(self.target(source), source)
        except Exception as exc:  # noqa: BLE001 - no baseline is not a failure of the section
            print(f"baseline not read ({self.history.path}): {exc}")
            found = None
        self._baselines[source] = None if found is None else {**found.data, "saved_at": found.saved_at.isoformat()}
        return self._baselines[source]

    def baseline_statements(self) -> dict[str, dict]:
        return (self.baseline(PG_STATEMENTS) or {}).get("statements", {}) if self.db is not None else {}

    def trail(self, *statements: pd.DataFrame) -> pd.DataFrame:
        """The tables the given statements read, with their scans and rows read in the same period."""
        frames = [f for f in statements if f is not None and not f.empty]
        if not frames:
            return table_trail(pd.DataFrame(columns=["queryid", "query"]), pd.DataFrame(columns=TABLE_COLUMNS))
        shown = pd.concat([f[["queryid", "query"]] for f in frames]).drop_duplicates("queryid")
        return table_trail(shown, self.tables())

    def save_baseline(self, *sources: str) -> pd.DataFrame:
        """Save per-statement rates and means, hit ratios and ops/s of the period as this target's baseline.

        `sources`: PG_STATEMENTS and/or REDIS_INFO (default: every configured one). Returns one row per saved
        source (what, how many items, the period it covers)."""
        sources = sources or tuple(s for s in (PG_STATEMENTS, REDIS_INFO) if s in self.sources)
        rows = []
        if PG_STATEMENTS in sources:
            delta = self.delta(PG_STATEMENTS)
            frame = statement_delta(delta.before, delta.after)[0]
            statements = {
                statement_key(r.queryid, r.database, r.user): {
                    "calls": int(r.calls),
                    "calls_per_s": r.calls / delta.seconds,
                    "mean_ms": r.mean_ms,
                }
                for r in frame.itertuples(index=False)
            }
            databases = self.databases()
            data = {
                "statements": statements,
                "hit_ratio": {r.database: r.hit_ratio for r in databases.itertuples() if pd.notna(r.hit_ratio)},
            }
            self._save(PG_STATEMENTS, data, delta.period)
            target = self.target(PG_STATEMENTS)
            rows.append({"source": PG_STATEMENTS, "items": len(statements), "period": delta.period, "target": target})
        if REDIS_INFO in sources:
            sampled = self.redis()
            period = self.period(REDIS_INFO)
            data = {
                "hit_rate": sampled.hit_rate,
                "ops_per_s": sampled.ops_per_s,
                "evictions_per_s": sampled.evictions_per_s,
            }
            self._save(REDIS_INFO, data, period)
            rows.append({"source": REDIS_INFO, "items": 3, "period": period, "target": self.target(REDIS_INFO)})
        return pd.DataFrame(rows, columns=["source", "target", "items", "period"])

    def _save(self, source: str, data: dict[str, Any], period: Period) -> None:
        self.history.save_baseline(self.target(source), source, data, taken_by=self.taken_by, period=period.to_dict())
        self._baselines.pop(source, None)

    def all_statements(self) -> pd.DataFrame:
        delta = self.delta(PG_STATEMENTS)
        return statement_delta(delta.before, delta.after)[0]

    def _with_text(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            frame["query"] = pd.Series(dtype=str)
            return frame
        texts = self.db.frame(STATEMENT_TEXTS, {"queryids": [int(q) for q in frame["queryid"]]})
        known = dict(zip(texts["queryid"], texts["query"], strict=True))
        frame["query"] = [postgres.mask_literals(known.get(q)) for q in frame["queryid"]]
        return frame

    def tables(self) -> pd.DataFrame:
        delta = self.delta(PG_TABLES)
        frame = table_delta(delta.before, delta.after)
        frame["seq_scans_per_s"] = frame["seq_scan"] / delta.seconds
        return frame

    def databases(self) -> pd.DataFrame:
        delta = self.delta(PG_DATABASE)
        return database_delta(delta.before, delta.after)

    def redis(self) -> RedisDelta:
        delta = self.delta(REDIS_INFO)
        return redis_delta(delta.before, delta.after, delta.seconds)

    def period(self, source: str) -> Period:
        return self.delta(source).period


# --- findings -------------------------------------------------------------------------------------------------------


def _cap_lifetime(finding: Finding, period: Period) -> Finding:
    """A since-restart number alone may still warn (nothing better exists), but the message says so."""
    finding.period = period
    if period.lifetime and finding.severity >= Severity.WARNING:
        finding.message += " (judged on lifetime totals: no sample was available)"
    return finding


def slow_queries_finding(
    slow: pd.DataFrame, period: Period, min_mean_ms: float | None = None, trail: pd.DataFrame | None = None
) -> Finding:
    """`postgres.slow_queries_finding` on the statements of the period; the message says what span they cover,
    the slowest statement's baseline (when saved) and the tables it read in the same period (`trail`)."""
    finding = postgres.slow_queries_finding(slow, min_mean_ms)
    finding.message = f"{_in(period)}: {finding.message}"
    if not slow.empty:
        keep = [
            c
            for c in ("queryid", "calls", "mean_ms", "before_mean_ms", "baseline_mean_ms", "total_ms", "query")
            if c in slow
        ]
        finding.evidence = Finding("x", "database", Severity.OK, evidence=slow[keep]).evidence
        worst = slow.sort_values("mean_ms", ascending=False).iloc[0]
        if pd.notna(worst.get("baseline_mean_ms")):
            finding.message += f" (baseline {worst['baseline_mean_ms']:.1f} ms)"
        text = trail_text(trail, worst["queryid"], period) if trail is not None else ""
        if text:
            finding.message += f". Tables it read: {text}"
    return _cap_lifetime(finding, period)


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
    """WARNING when a statement's mean is `postgres.statement_regression` times its reference (default 5x)."""
    limit = threshold("postgres.statement_regression")
    flagged = regressed[regressed["ratio"] >= limit.warning] if not regressed.empty else regressed
    if flagged.empty:
        compared = len(regressed)
        return Finding(
            "postgres.statement_regression",
            "database",
            Severity.OK,
            round(float(regressed["ratio"].max()), 2) if compared else None,
            limit.warning,
            "x",
            f"{_in(period)}: no statement runs {limit.warning:g}x slower than its baseline "
            f"({compared} compared with a baseline or their earlier calls)",
            period=period,
        )
    worst = flagged.iloc[0]
    text = trail_text(trail, worst["queryid"], period) if trail is not None else ""
    finding = judge(
        "postgres.statement_regression",
        "database",
        round(float(worst["ratio"]), 1),
        f"{_in(period)}: {len(flagged)} statement(s) regressed; worst {worst['ratio']:.0f}x: "
        f"{worst['mean_ms']:.1f} ms mean over {int(worst['calls'])} calls vs {worst['reference_ms']:.2f} ms "
        f"({worst['reference']}): {postgres.excerpt(worst['query'])}" + (f". Tables it read: {text}" if text else ""),
        evidence=flagged[["queryid", "calls", "mean_ms", "reference_ms", "reference", "ratio", "query"]],
        period=period,
    )
    finding.severity = max(finding.severity, Severity.WARNING)
    return _cap_lifetime(finding, period)


def statement_key(queryid: Any, database: Any, user: Any) -> str:
    return f"{queryid}|{database}|{user}"


_NAME = r'(?:"[^"]+"|[A-Za-z_][\w$]*)'
_TABLE_REFERENCE = re.compile(rf"\b(?:FROM|JOIN|UPDATE|INTO)\s+({_NAME}(?:\.{_NAME})?)", re.I)


def tables_read(query: str | None) -> list[str]:
    """Table names a statement mentions after FROM/JOIN/UPDATE/INTO (unqualified, lower-cased unless quoted)."""
    names = []
    for match in _TABLE_REFERENCE.finditer(query or ""):
        last = match.group(1).split(".")[-1]
        name = last.strip('"') if last.startswith('"') else last.lower()
        if name not in names:
            names.append(name)
    return names


def table_trail(statements: pd.DataFrame, tables: pd.DataFrame) -> pd.DataFrame:
    """For each statement shown, the tables it reads with their scans and rows read in the same period."""
    rows = []
    for stmt in statements.itertuples(index=False):
        for name in tables_read(stmt.query):
            for table in tables[tables["table"] == name].itertuples(index=False):
                rows.append(
                    {
                        "queryid": stmt.queryid,
                        "table": f"{table.schema}.{table.table}",
                        "seq_scan": table.seq_scan,
                        "seq_tup_read": table.seq_tup_read,
                        "idx_scan": table.idx_scan,
                        "idx_tup_fetch": table.idx_tup_fetch,
                        "live_rows": int(table.live_rows),
                    }
                )
    return pd.DataFrame(
        rows, columns=["queryid", "table", "seq_scan", "seq_tup_read", "idx_scan", "idx_tup_fetch", "live_rows"]
    )


def trail_text(trail: pd.DataFrame, queryid: Any, period: Period) -> str:
    """'public.items: 30 sequential scans reading 6,000,000 rows, 0 index scans in 10 s'."""
    parts = [
        f"{t.table}: {t.seq_scan:,} sequential scans reading {t.seq_tup_read:,} rows, {t.idx_scan:,} index scans"
        for t in trail[trail["queryid"] == queryid].itertuples(index=False)
    ]
    span = f" in {period.seconds:.0f} s" if period.seconds else ""
    return "; ".join(parts) + span if parts else ""


def hit_rate_finding(
    sampled: RedisDelta, period: Period, min_lookups: int = MIN_LOOKUPS, baseline: dict[str, Any] | None = None
) -> Finding:
    """Redis hit rate in the period; the since-restart rate (and the baseline's, when saved) is context."""
    lifetime = sampled.lifetime_hit_rate
    context = (
        f"since restart {lifetime:.1%} over {sampled.uptime_s / 3600:.1f} h" if lifetime is not None else "no lifetime"
    )
    if baseline and baseline.get("hit_rate") is not None:
        context += f"; baseline {baseline['hit_rate']:.1%}"
    lookups = sampled.hits + sampled.misses
    if not period.lifetime and (sampled.hit_rate is None or lookups < min_lookups):
        return Finding(
            "cache.hit_rate",
            "cache",
            Severity.OK,
            sampled.hit_rate,
            threshold("cache.hit_rate").warning,
            "ratio",
            f"{_in(period)}: too few lookups to judge ({lookups}); {context}",
            period=period,
        )
    finding = judge(
        "cache.hit_rate",
        "cache",
        round(sampled.hit_rate, 4) if sampled.hit_rate is not None else 1.0,
        f"{_in(period)}: hit rate {sampled.hit_rate or 0:.1%} ({sampled.hits:,} hits, {sampled.misses:,} misses); "
        f"{context}",
        period=period,
    )
    if sampled.hit_rate is None:
        finding.severity = Severity.OK
    return _cap_lifetime(finding, period)


def evictions_finding(sampled: RedisDelta, period: Period) -> Finding:
    """Keys evicted in the period (runbook: evictions = 0); lifetime evictions are context, not the verdict."""
    finding = judge(
        "cache.evictions",
        "cache",
        sampled.evicted,
        f"{_in(period)}: {sampled.evicted:,} keys evicted ({sampled.evictions_per_s:.1f}/s); "
        f"{sampled.lifetime_evicted:,} since restart {sampled.uptime_s / 3600:.1f} h ago (runbook: evictions = 0)",
        period=period,
    )
    return _cap_lifetime(finding, period)


def ops_finding(sampled: RedisDelta, period: Period, baseline: dict[str, Any] | None = None) -> Finding:
    top = ", ".join(f"{r.command} {r.per_s:.1f}/s" for r in sampled.by_command.head(3).itertuples())
    if baseline and baseline.get("ops_per_s") is not None:
        top += f"; baseline {baseline['ops_per_s']:.1f}/s"
    return Finding(
        "cache.ops_per_s",
        "cache",
        Severity.OK,  # throughput is context for the other findings, not a verdict
        round(sampled.ops_per_s, 1),
        None,
        "ops/s",
        f"{_in(period)}: {sampled.ops_per_s:.1f} commands/s ({top or 'none'})",
        evidence=sampled.by_command,
        period=period,
    )


def database_hit_finding(databases: pd.DataFrame, period: Period, min_blocks: int = MIN_BLOCKS) -> Finding:
    """`postgres.cache_hit_finding` on buffer accesses in the period."""
    finding = postgres.cache_hit_finding(databases, min_blocks=min_blocks)
    finding.message = f"{_in(period)}: {finding.message}"
    finding.period = period
    if period.lifetime and finding.severity > Severity.INFO:
        finding.message += " (judged on lifetime totals: no sample was available)"
    return finding


def baseline_saved_finding(saved: pd.DataFrame, component: str) -> Finding:
    """OK (a record, not an alert): what was saved as the baseline and the period it covers."""
    row = saved.iloc[0]
    period = row["period"]
    what = "statements" if row["source"] == PG_STATEMENTS else "rates"
    check = "postgres.baseline" if component == "database" else "cache.baseline"
    note = " (lifetime totals: set sample_s above 0 for a baseline of the present)" if period.lifetime else ""
    return Finding(
        check,
        component,
        Severity.OK,
        int(row["items"]),
        None,
        what,
        f"baseline of {row['target']} saved: {int(row['items'])} {what} over the {period.label()}{note}",
        period=period,
    )


def _in(period: Period) -> str:
    return f"in the {period.label()}" if not period.lifetime else period.label()
