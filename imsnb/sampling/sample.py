"""The Sample: first snapshots in the setup cell, second ones (and deltas) when a section asks; the baseline; the
Redis findings of a sample (health_check, triage)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pandas as pd

from imsnb import postgres
from imsnb.findings import Finding, Severity
from imsnb.history import History, Snapshot
from imsnb.period import Period
from imsnb.postgres.trail import table_trail
from imsnb.sampling.cache import (
    RedisDelta,
    counters_went_down,
    evictions_finding,
    hit_rate_finding,
    redis_delta,
    redis_snapshot,
    redis_target,
)
from imsnb.sampling.deltas import (
    PG_DATABASE,
    PG_SOURCES,
    PG_STATEMENTS,
    PG_TABLES,
    REDIS_INFO,
    Delta,
    epoch_reset_note,
    lifetime_start,
    period_of,
)
from imsnb.sampling.own import OwnKeys, own_load_text, own_statements, without_own_blocks
from imsnb.sampling.plans import EXPLAIN_TOP, explain, plan_hashes
from imsnb.sampling.postgres import (
    STATEMENT_TEXTS,
    TABLE_COLUMNS,
    database_delta,
    own_load,
    postgres_snapshot,
    postgres_target,
    statement_delta,
    statement_key,
    table_delta,
)
from imsnb.sampling.start import Start, uncovered_note, window_start
from imsnb.sampling.stored import StoreProblems
from imsnb.window import Window

__all__ = [
    "Sample",
    "baseline_saved_finding",
    "redis_findings",
]


def _same_since(first: Snapshot, after: Snapshot) -> bool:
    """The same counters in both snapshots, never reset between them: where the window's numbers start is the same."""
    return first.epoch == after.epoch and not _went_down_note(first, after)


def _went_down_note(before: Snapshot, after: Snapshot) -> str:
    """Counters lower than before without a new epoch: a partial reset (pg_stat_statements_reset of one statement,
    Redis CONFIG RESETSTAT)."""
    if after.source == PG_STATEMENTS:
        return statement_delta(before, after)[1]
    if after.source == REDIS_INFO:
        down = counters_went_down(before, after)
        if down:
            return f"Redis counters went down between the snapshots ({', '.join(down)}: CONFIG RESETSTAT?)"
    return ""


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
        self.store_problems = StoreProblems(self.history)  # said as they happen, then as `store_finding()`
        self.started = time.monotonic()
        self.first: dict[str, Snapshot] = {}
        self.second: dict[str, Snapshot] = {}
        self.first_errors: dict[str, str] = {}
        self._deltas: dict[str, Delta] = {}
        self._starts: dict[str, tuple[Start | None, str]] = {}  # the window's start found from the first snapshot
        self._first_look_failed: set[str] = set()  # ... or the store failed then: not asked again before the delta
        self._baselines: dict[str, dict[str, Any] | None] = {}
        self._own: OwnKeys | None = None
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
            except Exception as exc:  # noqa: BLE001 - a full disk or an unreachable store must not cost the diagnosis
                self.store_problems.failed("history store not written", exc, snapshots=len(snapshots))

    def store_finding(self) -> Finding | None:
        """WARNING `host.state_store` when the store could not be used during the run (once), else None."""
        return self.store_problems.finding()

    def remaining_s(self, source: str | None = None) -> float:
        """What remains of the sample; for `source`, 0 when its window start is found without the sample."""
        if source is not None and (source not in self.first or self._start_found_without_sample(source)):
            return 0.0
        return max(0.0, self.sample_s - (time.monotonic() - self.started))

    def wait(self) -> None:
        """Sleep for what remains of the sample (nothing when the other sections took longer)."""
        remaining = self.remaining_s()
        if remaining > 0:
            print(f"sampling: waiting {remaining:.1f} s for the end of the {self.sample_s:g} s sample")
            time.sleep(remaining)

    def delta(self, source: str) -> Delta:
        """The before/after snapshots of `source` and the period they cover, by the window rule (`start.py`):
        statistics that started inside the window (basis `window`), else a stored snapshot at or before the window's
        start, else the earliest one inside it (`history`), else this run's sample (`sample`, saying how much of the
        window it leaves out), else lifetime totals (`since restart`)."""
        if source in self._deltas:
            return self._deltas[source]
        if self.remaining_s(source) > 0:
            self.wait()
        after = self._snapshot(source)
        self.second[source] = after
        self._store([after])
        self._deltas[source] = self._delta_of(source, after)
        return self._deltas[source]

    def _start_found_without_sample(self, source: str) -> bool:
        """Whether the window rule already has the window's start (statistics that started inside it, or a stored
        snapshot standing for it) as of this run's first snapshot: the sample's end would then only move the
        period's end by a few seconds, so its wait is skipped. A reset before the second snapshot leads to rule 1,
        which needs no sample either. The start found is kept for the delta (`_delta_of`)."""
        if source in self._first_look_failed:
            return False
        if source not in self._starts:
            first = self.first[source]
            if self.window is None or self._past_window_note(first):
                self._starts[source] = (None, "")
            else:
                try:
                    self._starts[source] = self._read_window_start(first, first, live=True)
                except Exception:  # noqa: BLE001 - not kept: the delta reads the store again, once, and says so
                    self._first_look_failed.add(source)
                    return False
        return self._starts[source][0] is not None

    def _delta_of(self, source: str, after: Snapshot) -> Delta:
        first = self.first.get(source)
        past = self._past_window_note(after)
        kept = self._starts.get(source)
        if kept is not None and not past and first is not None and _same_since(first, after):
            chosen, void = kept  # what the first snapshot found holds for the second: same counters, not reset
        else:
            chosen, void = self._window_start(after, first, live=not past)
        if chosen is not None:
            before, basis, note = chosen.before, chosen.basis, chosen.note
        elif first is not None:
            before, basis, note = first, "sample", ""
        elif self.sample_s <= 0:
            before, basis, note = None, "since restart", "sampling off (sample_s=0): lifetime totals"
        else:
            error = self.first_errors.get(source, "not taken")
            before, basis, note = None, "since restart", f"no first snapshot ({error}): lifetime totals"
        reset = (epoch_reset_note(before, after) or _went_down_note(before, after)) if before is not None else ""
        if chosen is not None and before is None:
            period = Period(chosen.start, after.taken_at, basis)
        else:
            period = period_of(before, after, basis)
        if before is not None and reset and (start := lifetime_start(after)) and start > before.taken_at:
            period = Period(start, after.taken_at, basis)
        covered = ""
        if self.window is not None and not past and basis in ("sample", "history") and period.seconds is not None:
            covered = uncovered_note(self.window, period.seconds, basis)
        notes = "; ".join(p for p in (void, note, covered, reset, past) if p)
        period = Period(period.start, period.end, period.basis, notes)
        return Delta(before, after, period, reset)

    def _past_window_note(self, after: Snapshot) -> str:
        """A window that ended well before now (`-p end` in the past) is not what live counters cover: say so."""
        if self.window is None:
            return ""
        late = (after.taken_at - self.window.end).total_seconds()
        if late <= max(300.0, 2 * self.sample_s):
            return ""
        return (
            f"the window ended {self.window.end:%Y-%m-%d %H:%M} UTC: these counters run to now "
            "(the present, not that window)"
        )

    def _window_start(self, after: Snapshot, first: Snapshot | None, *, live: bool) -> tuple[Start | None, str]:
        """The window rule's first three steps (`start.window_start`); (None, "") without a window, or when the
        store cannot be read (said in `store_problems`)."""
        try:
            return self._read_window_start(after, first, live=live)
        except Exception as exc:  # noqa: BLE001 - an unreadable store costs the history, not the diagnosis
            self.store_problems.failed("history store not read", exc, missed="history")
            return None, ""

    def _read_window_start(self, after: Snapshot, first: Snapshot | None, *, live: bool) -> tuple[Start | None, str]:
        """`_window_start`, raising what the store raises. Snapshots stored from this run's first one on (or from now,
        without one) are this run's or a concurrent run's."""
        if self.window is None:
            return None, ""
        older_than = (first.taken_at if first is not None else after.taken_at) - timedelta(seconds=0.5)
        return window_start(self.window, after, self.history, older_than=older_than, first=first, live=live)

    # -- what the sections ask for ---------------------------------------------------------------------------------

    def statements(self, *, limit: int = 10, by: str = "total", min_mean_ms: float = 0.0) -> pd.DataFrame:
        """Statements in the period, by total (or mean) time, with query text (literals masked) for those shown.

        Columns as `postgres.statements()` plus calls_per_s, before_calls and before_mean_ms (the mean before the
        period: the reference a regression is measured against when no baseline was saved)."""
        if by not in ("total", "mean"):
            raise ValueError(f"statements(by={by!r}): use 'total' or 'mean'")
        delta = self.delta(PG_STATEMENTS)
        frame, _ = statement_delta(delta.before, delta.after, self.own_statements())
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
            self.store_problems.failed("baseline not read", exc, missed="baseline")
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
            frame = statement_delta(delta.before, delta.after, self.own_statements())[0]
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
                "plans": self._baseline_plans(frame),
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

    def _baseline_plans(self, statements: pd.DataFrame) -> dict[str, dict[str, Any]]:
        """The shapes of the busiest statements' plans, saved with the baseline (`postgres.plan_change` compares
        with them when the history holds no plan); none when they cannot be taken (said, not raised)."""

        try:
            top = statements.sort_values("total_ms", ascending=False).head(EXPLAIN_TOP)
            return {queryid: shape for queryid, (_, shape) in plan_hashes(explain(self.db, top)).items()}
        except Exception as exc:  # noqa: BLE001 - the counters' baseline is saved all the same
            print(f"plans not saved with the baseline: {exc}")
            return {}

    def _save(self, source: str, data: dict[str, Any], period: Period) -> None:
        self.history.save_baseline(self.target(source), source, data, taken_by=self.taken_by, period=period.to_dict())
        self._baselines.pop(source, None)

    def all_statements(self) -> pd.DataFrame:
        delta = self.delta(PG_STATEMENTS)
        return statement_delta(delta.before, delta.after, self.own_statements())[0]

    # -- imsnb's own footprint -------------------------------------------------------------------------------------

    def own_statements(self) -> OwnKeys:
        """imsnb's own pg_stat_statements entries, read once per run (one read of the texts; `own_statements`).
        None known when they cannot be read: said, and the statements are judged as they are."""
        if self._own is None:
            try:
                self._own = own_statements(self.db)
            except Exception as exc:  # noqa: BLE001 - the section that reads the statements reports the failure
                print(f"imsnb's own statements not told apart: {exc}")
                self._own = frozenset()
        return self._own

    def own_load(self) -> pd.DataFrame:
        """Per database: imsnb's own statements' calls, time and buffer accesses in the statements' period."""
        delta = self.delta(PG_STATEMENTS)
        return own_load(delta.before, delta.after, self.own_statements())

    def own_load_line(self) -> str:
        """The report's line (not a finding) on imsnb's own share of the period's statement time and blocks."""
        try:
            return own_load_text(self.own_load(), self.period(PG_STATEMENTS))
        except Exception as exc:  # noqa: BLE001 - a line of context, never the section's failure
            return f"imsnb's own share of the statements not measured: {' '.join(str(exc).split())}"

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
        """Buffer accesses and hit ratio per database in the period, less imsnb's own statements' (`own_blks`:
        the accesses left out), and beside it `baseline_hit_ratio`: the ratio performance_baseline saved for that
        database (NaN without one)."""
        delta = self.delta(PG_DATABASE)
        frame = database_delta(delta.before, delta.after)
        frame = without_own_blocks(frame, self._own_blocks())
        saved = (self.baseline(PG_STATEMENTS) or {}).get("hit_ratio") or {}
        frame["baseline_hit_ratio"] = frame["database"].map(lambda name: saved.get(name)).astype("float64")
        return frame

    def _own_blocks(self) -> pd.DataFrame:
        """imsnb's own buffer accesses per database (empty when pg_stat_statements cannot be read: the database
        counters are then judged whole)."""
        try:
            return self.own_load()
        except Exception as exc:  # noqa: BLE001 - the hit ratio does not need pg_stat_statements
            print(f"imsnb's own buffer accesses not subtracted: {exc}")
            return pd.DataFrame(columns=["database", "blks_hit", "blks_read"])

    def redis(self) -> RedisDelta:
        delta = self.delta(REDIS_INFO)
        return redis_delta(delta.before, delta.after, delta.seconds)

    def period(self, source: str) -> Period:
        return self.delta(source).period


def redis_findings(sample: Sample, *, lifetime_at_most: Severity | str | None = None) -> list[Finding]:
    """`cache.hit_rate` (with the baseline's rate beside it) and `cache.evictions` over the sample's period; waits
    only for what remains of `sample_s`. `lifetime_at_most`: see `imsnb.findings.on_lifetime` (health_check and
    triage pass INFO)."""
    sampled, period = sample.redis(), sample.period(REDIS_INFO)
    baseline = sample.baseline(REDIS_INFO)
    return [
        hit_rate_finding(sampled, period, baseline=baseline, lifetime_at_most=lifetime_at_most),
        evictions_finding(sampled, period, lifetime_at_most=lifetime_at_most),
    ]


def baseline_saved_finding(saved: pd.DataFrame) -> Finding:
    """OK (a record, not an alert): what was saved as the baseline (one source, a row of `Sample.save_baseline`) and
    the period it covers."""
    row = saved.iloc[0]
    period = row["period"]
    what = "statements" if row["source"] == PG_STATEMENTS else "rates"
    check = "postgres.baseline" if row["source"] == PG_STATEMENTS else "cache.baseline"
    note = " (lifetime totals: set sample_s above 0 for a baseline of the present)" if period.lifetime else ""
    return Finding.ok(
        check,
        f"baseline of {row['target']} saved: {int(row['items'])} {what} over the {period.label()}{note}",
        value=int(row["items"]),
        unit=what,
        period=period,
    )
