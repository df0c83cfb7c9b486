"""Counters sampled over the run, on real servers that have a past (seeded history) and a present (live load)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from helpers import present_began, present_under_way, window_from_present

from imsnb import cache, postgres, sampling
from imsnb.findings import Severity
from imsnb.history import History
from imsnb.period import duration
from imsnb.sandbox import Sandbox
from imsnb.window import Window

pytestmark = pytest.mark.servers  # samples of the sandboxes' servers

SAMPLE_S = 10.0  # realistic: the notebooks' default


def _db(sandbox) -> postgres.Database:
    env = sandbox.env()
    settings = {
        "host": env["DB_HOST"],
        "port": env["DB_PORT"],
        "user": env["DB_USER"],
        "dbname": env["DB_NAME"],
        "password": env["DB_PASSWORD"],
    }
    return postgres.Database("tests", settings=settings)


def _cache(sandbox) -> cache.Cache:
    server = sandbox.redis
    return cache.Cache("tests", settings={"host": "127.0.0.1", "port": server.port, "password": server.password})


@pytest.fixture(scope="module")
def degraded_sample(degraded):
    """One realistic run's counters on the session's db-degradation sandbox over the incident: a window from when
    its present began. The sandbox seeded the history store with a snapshot of its past then, so the numbers reach
    back to it. (A window reaching back over the sandbox's start would hold its past too: its statistics started
    inside it, test_window_rule.py.)"""
    # The incident has been under way for a while when someone runs imsnb: at least SAMPLE_S since its present began
    # (the run then reads the stored past and takes no sample of its own: the period is the present so far). When
    # this module runs first, right after the sandbox started, that has to be waited for.
    present_under_way(degraded, SAMPLE_S)
    with _db(degraded) as db:
        span = Window(present_began(degraded), datetime.now(UTC))
        sample = sampling.Sample(SAMPLE_S, db=db, window=span, taken_by="tests", history=History())
        statements = sample.statements(limit=100)
        lifetime = postgres.slow_queries(db, limit=50)
        tables = sample.tables()
        yield sample, statements, lifetime, tables


def test_regressed_statement_with_a_fast_past_is_flagged(degraded_sample):
    sample, statements, _, _ = degraded_sample
    period = sample.period(sampling.PG_STATEMENTS)
    assert period.basis == "history" and "sandbox's past" in period.note
    assert period.seconds >= SAMPLE_S, "from the seeded snapshot, not just this run's sample"
    lookup = statements[statements["query"].str.contains("FROM items WHERE sku")].iloc[0]
    assert lookup["before_calls"] >= 2000, "thousands of historic fast calls"
    assert lookup["mean_ms"] > 5 * lookup["before_mean_ms"] and lookup["calls"] >= 3
    regressed = sampling.regressions(statements)
    finding = sampling.statement_regression_finding(regressed, period)
    worst = regressed.iloc[0]
    assert finding.severity >= Severity.WARNING and finding.value == round(worst["ratio"], 1)
    assert finding.message.startswith(f"{worst['ratio']:,.0f}x slower: ") and "items WHERE sku" in finding.message
    assert f"earlier calls) over {int(worst['calls']):,} calls" in finding.message
    assert finding.period == period and "in the history" not in finding.message, "the period is in its own field"
    assert finding.to_dict()["period"]["basis"] == "history"
    assert lookup["mean_ms"] < 100, "under the absolute slow-query line: only the regression check names it"


def test_slow_statement_running_now_is_flagged_and_old_slow_batch_is_not(degraded_sample):
    sample, statements, lifetime, _ = degraded_sample
    period = sample.period(sampling.PG_STATEMENTS)
    slow = statements[statements["mean_ms"] >= 100]
    finding = postgres.slow_queries_finding(slow, period=period)
    slowest = slow.sort_values("mean_ms").iloc[-1]
    assert finding.severity == Severity.WARNING and "pg_sleep" in finding.message and finding.period == period
    assert finding.message.startswith(
        f"{len(slow)} statement(s) average ≥ 100 ms; slowest {slowest['mean_ms']:.0f} ms mean over "
        f"{int(slowest['calls'])} calls"
    )
    assert "GROUP BY status" not in " ".join(slow["query"]), "the nightly report did not run in the sample"
    assert "GROUP BY status" in " ".join(lifetime["query"]), "…but its lifetime mean is still over 100 ms"
    assert not any("GROUP BY status" in str(row.get("query")) for row in finding.evidence)


def test_tables_read_by_the_regressed_statement_show_the_scans(degraded_sample):
    sample, statements, _, tables = degraded_sample
    regressed = sampling.regressions(statements)
    trail = postgres.table_trail(regressed, tables)
    items = trail[trail["table"] == "public.items"].iloc[0]
    assert items["seq_scan"] >= 3 and items["idx_scan"] == 0
    assert items["seq_tup_read"] >= items["seq_scan"] * 50_000, "every lookup reads the whole table"
    finding = sampling.statement_regression_finding(regressed, sample.period(sampling.PG_STATEMENTS), trail)
    assert "public.items:" in finding.message and "sequential scans reading" in finding.message
    assert (
        f"public.items: {items['seq_scan']:,} sequential scans reading {items['seq_tup_read']:,} rows, 0 index scans"
        in (finding.message)
    )


def test_sampling_off_reads_lifetime_totals_and_says_so(degraded, tmp_path):
    with _db(degraded) as db:
        sample = sampling.Sample(0, db=db, history=History(tmp_path / "h.sqlite"))
        started = time.monotonic()
        statements = sample.statements(limit=100)
        assert time.monotonic() - started < SAMPLE_S, "no wait with sampling off"
        period = sample.period(sampling.PG_STATEMENTS)
    assert period.basis == "since restart" and "sample_s=0" in period.note
    finding = postgres.slow_queries_finding(statements[statements["mean_ms"] >= 100], period=period)
    assert finding.severity >= Severity.WARNING and finding.period == period
    assert finding.message.endswith(" (judged on lifetime totals: no sample was available)")


@pytest.fixture(scope="module")
def pressured():
    with Sandbox("cache-pressure") as sandbox:
        yield sandbox


def test_live_miss_storm_is_flagged_despite_a_high_historic_hit_rate(pressured, tmp_path):
    with _cache(pressured) as c:
        sample = sampling.Sample(5.0, cache=c, history=History(tmp_path / "h.sqlite"))
        sampled, period = sample.redis(), sample.period(sampling.REDIS_INFO)
    assert sampled.lifetime_hit_rate > 0.9, "months of hits in the past"
    hit = sampling.hit_rate_finding(sampled, period)
    assert hit.severity >= Severity.WARNING and sampled.hit_rate < 0.5
    assert hit.message.startswith(
        f"hit rate {sampled.hit_rate:.1%}, {sampled.hits:,} hits and {sampled.misses:,} misses"
    )
    lookups = sampled.lifetime_hits + sampled.lifetime_misses
    since = f"since Redis started {duration(sampled.uptime_s)} ago (or its last CONFIG RESETSTAT)"
    assert f"; {sampled.lifetime_hit_rate:.1%} of {lookups:,} lookups {since}" in hit.message
    assert hit.period == period and "in the sample" not in hit.message, "the period is in its own field"
    evictions = sampling.evictions_finding(sampled, period)
    assert evictions.severity >= Severity.WARNING and sampled.evicted > 0
    assert sampling.ops_finding(sampled, period).value > 0


def test_past_evictions_with_none_in_the_sample_are_ok(pressured, tmp_path):
    pressured.stop_load()  # the storm is over; its evictions stay in the lifetime counters
    with _cache(pressured) as c:
        sample = sampling.Sample(3.0, cache=c, history=History(tmp_path / "h.sqlite"))
        sampled, period = sample.redis(), sample.period(sampling.REDIS_INFO)
    assert sampled.lifetime_evicted > 1000 and sampled.evicted == 0
    finding = sampling.evictions_finding(sampled, period)
    assert finding.severity == Severity.OK and finding.message.startswith("0 keys evicted, 0/s; ")
    assert f"; {sampled.lifetime_evicted:,} since Redis started {duration(sampled.uptime_s)} ago" in finding.message
    with _cache(pressured) as c:  # no sample: the lifetime count says what it covers and is context only
        off = sampling.Sample(0, cache=c, history=History(tmp_path / "h.sqlite"))
        unsampled, lifetime = off.redis(), off.period(sampling.REDIS_INFO)
    capped = sampling.evictions_finding(unsampled, lifetime, lifetime_at_most="INFO")
    assert lifetime.basis == "since restart" and capped.period == lifetime
    assert capped.severity == Severity.INFO and "context only, not a verdict on now" in capped.message


def test_a_redis_counter_reset_between_snapshots_is_said(healthy_sandbox, tmp_path):
    with _cache(healthy_sandbox) as c:
        sample = sampling.Sample(1.0, cache=c, history=History(tmp_path / "h.sqlite"))
        healthy_sandbox.redis.client().config_resetstat()
        delta = sample.delta(sampling.REDIS_INFO)
    assert "went down" in delta.period.note and "RESETSTAT" in delta.reset


def test_a_reset_since_the_stored_snapshot_is_detected_and_said(healthy_sandbox, tmp_path):
    """pg_stat_statements_reset() inside the window: the totals since are the window's, the stored snapshot from
    before it is void; a reset before the window's start voids the stored snapshot and the sample says so."""
    history = History(tmp_path / "h.sqlite")
    with _db(healthy_sandbox) as db:
        old = sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "imsnb record")
        history.add(old)
        with healthy_sandbox.postgres.admin("ims") as admin:
            age = admin.execute("SELECT extract(epoch FROM now() - pg_postmaster_start_time())").fetchone()[0]
            time.sleep(max(0.01, 2.0 - float(age)))  # a reset, not the server's start
            reset_at = admin.execute("SELECT pg_stat_statements_reset(), now()").fetchone()[1]
        time.sleep(0.6)
        window = Window(old.taken_at, datetime.now(UTC))
        inside = sampling.Sample(0.5, db=db, window=window, history=history, store=False)
        period = inside.period(sampling.PG_STATEMENTS)
        after_reset = Window(reset_at + timedelta(milliseconds=50), datetime.now(UTC))
        later = sampling.Sample(0.5, db=db, window=after_reset, history=history).period(sampling.PG_STATEMENTS)
    assert period.basis == "window" and inside.delta(sampling.PG_STATEMENTS).before is None
    assert "(a statistics reset), inside the window: totals since then" in period.note
    assert abs((period.start - reset_at).total_seconds()) < 1
    assert later.basis == "sample", "a snapshot from before a reset cannot be subtracted"
    assert "predates a restart or reset" in later.note and "statistics were reset" in later.note


def test_baseline_flags_a_tenfold_regression_of_a_3_ms_statement(healthy_sandbox, tmp_path):
    history = History(tmp_path / "h.sqlite")
    query = "SELECT pg_sleep(%(s)s), count(*) FROM orders WHERE id = 7"
    with _db(healthy_sandbox) as db, healthy_sandbox.postgres.connect("ims-backend", autocommit=True) as app:
        normal = sampling.Sample(1.0, db=db, history=history, taken_by="performance_baseline")
        for _ in range(20):
            app.execute(query, {"s": 0.003})
        saved = normal.save_baseline(sampling.PG_STATEMENTS)
        assert saved.iloc[0]["items"] >= 1
        assert sampling.baseline_saved_finding(saved).period.basis == "sample"

        incident = sampling.Sample(1.0, db=db, history=history, taken_by="db_performance")
        for _ in range(10):
            app.execute(query, {"s": 0.03})
        statements = incident.statements(limit=100)
        regressed = sampling.regressions(statements, incident.baseline_statements())
        period = incident.period(sampling.PG_STATEMENTS)
    row = regressed[regressed["query"].str.contains("pg_sleep", regex=False)].iloc[0]
    assert row["reference"] == "baseline" and 3 <= row["reference_ms"] < 10 and 5 <= row["ratio"] <= 12
    assert row["mean_ms"] < 100, "under the absolute slow-query line"
    finding = sampling.statement_regression_finding(regressed, period)
    assert finding.severity >= Severity.WARNING and "baseline" in finding.message
    assert any("pg_sleep" in row["query"] for row in finding.evidence)
    shown = statements[statements["query"].str.contains("pg_sleep", regex=False)].iloc[0]
    assert 3 <= shown["baseline_mean_ms"] < 10, "now vs baseline, next to the numbers"


def test_baseline_hit_ratio_is_shown_beside_the_sampled_one(healthy_sandbox, tmp_path):
    history = History(tmp_path / "h.sqlite")
    scan = "SELECT count(*), sum(total) FROM orders"  # every block of orders: buffer accesses to judge on
    with _db(healthy_sandbox) as db, healthy_sandbox.postgres.connect("ims-backend", autocommit=True) as app:
        normal = sampling.Sample(1.0, db=db, history=history, taken_by="performance_baseline")
        for _ in range(30):
            app.execute(scan)
        normal.save_baseline(sampling.PG_STATEMENTS)
        saved = history.baseline(sampling.postgres_target(db), sampling.PG_STATEMENTS).data["hit_ratio"]
        incident = sampling.Sample(1.0, db=db, history=history, taken_by="db_performance")
        for _ in range(30):
            app.execute(scan)
        databases = incident.databases()
        period = incident.period(sampling.PG_DATABASE)
        unsaved = sampling.Sample(0, db=db, history=History(tmp_path / "empty.sqlite")).databases()
    ims = databases.set_index("database").loc["ims"]
    assert 0 < saved["ims"] <= 1 and ims["baseline_hit_ratio"] == pytest.approx(saved["ims"])
    assert ims["blks_hit"] + ims["blks_read"] >= postgres.MIN_BLOCKS_SAMPLED
    judged = databases[databases["blks_hit"] + databases["blks_read"] >= postgres.MIN_BLOCKS_SAMPLED]
    worst = judged.loc[judged["hit_ratio"].idxmin()]
    finding = postgres.cache_hit_finding(databases, period=period)
    assert f"of {worst['database']}: {worst['hit_ratio']:.2%} (" in finding.message and finding.period == period
    assert finding.message.endswith(f"; baseline {worst['baseline_hit_ratio']:.2%}")
    assert any("baseline_hit_ratio" in row for row in finding.evidence), "in the table too"
    assert unsaved["baseline_hit_ratio"].isna().all(), "no baseline saved: nothing to compare with"
    assert "baseline" not in postgres.cache_hit_finding(unsaved, period=period).message


def test_history_retention_is_bounded(tmp_path, monkeypatch, healthy_sandbox):
    history = History(tmp_path / "h.sqlite")
    with _cache(healthy_sandbox) as c:
        old = sampling.redis_snapshot(c, "tests")
        old.taken_at -= timedelta(days=20)
        history.add(old)
        assert history.count() == 0, "older than the 14 days kept"
        monkeypatch.setenv("IMSNB_HISTORY_MAX_MB", "0.0002")  # ~200 bytes: about one snapshot
        for _ in range(5):
            history.add(sampling.redis_snapshot(c, "tests"))
    stored = history.path.stat().st_size
    assert 1 <= history.count() < 3 and stored < 200_000


def test_snapshots_in_the_store_hold_no_query_text(degraded, tmp_path):
    history = History(tmp_path / "h.sqlite")
    with _db(degraded) as db:
        history.add(sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "tests"))
        target = sampling.postgres_target(db)
    now = datetime.now(UTC)
    stored = history.nearest(target, sampling.PG_STATEMENTS, now, earliest=now - timedelta(1), latest=now)
    text = json.dumps(stored.data)
    assert len(stored.data) >= 5 and "pg_sleep" not in text and "example.org" not in text
    assert degraded.postgres.password not in text + stored.target and "SELECT" not in text


def test_db_performance_judges_the_sample_and_says_the_period(private_sandbox, tmp_path, monkeypatch):
    """On a sandbox of its own: the session's db-degradation sandbox has been under live load for as long as the
    suite has run, and other runs have stored snapshots of it, so what counts as "before" depends on test order."""
    from helpers import finding, read_summary

    from imsnb.runs.execute import run_notebook

    monkeypatch.setenv("IMSNB_HISTORY", str(tmp_path / "history.sqlite"))  # before the sandbox seeds its snapshot
    fresh = private_sandbox("db-degradation")
    for key, value in fresh.env().items():
        monkeypatch.setenv(key, value)
    params = {"sample_s": "8", **window_from_present(fresh)}  # the incident: the sandbox's present, under way
    result = run_notebook("db_performance", params, incident_id="INC-13", outputs=tmp_path / "out")
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    slow = finding(summary, "postgres.slow_queries")
    assert slow["severity"] == "WARNING" and slow["period"]["basis"] == "history"
    said = r"^\d+ statement\(s\) average ≥ 100 ms; slowest \d+ ms mean over \d+ calls: SELECT pg_sleep"
    assert re.match(said, slow["message"]) and "in the " not in slow["message"], "the period is in its own field"
    regression = finding(summary, "postgres.statement_regression")
    assert regression["severity"] in ("WARNING", "ERROR") and "items WHERE sku" in regression["message"]
    assert re.match(r"^[\d,]+x slower: SELECT ", regression["message"]), regression["message"]
    assert "public.items:" in regression["message"] and "0 index scans" in regression["message"]
    html = (result.folder / "report.html").read_text()
    assert "period" in html and "UTC (" in html


def test_record_stores_snapshots_of_every_configured_target(degraded, tmp_path):
    from imsnb.cli import main

    path = tmp_path / "h.sqlite"
    assert main(["record", "--history", str(path)]) == 0
    assert History(path).count() == 4, "three PostgreSQL sources and Redis"
    assert main(["record", "--every", "1s", "--for", "2s", "--history", str(path)]) == 0
    assert History(path).count() == 12, "two more rounds"
    assert main(["record", "--every", "soon", "--history", str(path)]) == 2
    assert History(path).count() == 12


def test_sample_s_is_checked_before_a_run(tmp_path):
    from imsnb.errors import BadParameter
    from imsnb.runs.execute import run_notebook

    for bad in ("-1", "601", "ten"):
        with pytest.raises(BadParameter, match="sample_s"):
            run_notebook("redis_cache", {"sample_s": bad}, incident_id="INC-13", outputs=tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_regression_message_never_rounds_the_reference_to_zero():
    from imsnb.sampling.postgres import milliseconds

    assert (milliseconds(0.00346), milliseconds(0.5), milliseconds(3.0), milliseconds(1234.56)) == (
        "0.00346",
        "0.5",
        "3.0",
        "1,234.6",
    )


def test_a_window_that_ended_hours_ago_is_not_passed_off_as_the_present(healthy_sandbox, tmp_path):
    """`-p end` yesterday: live counters cover now, not that window, and the period says so."""
    end = datetime.now(UTC) - timedelta(hours=20)
    with _cache(healthy_sandbox) as c:
        sample = sampling.Sample(
            0.5, cache=c, window=Window(end - timedelta(hours=1), end), history=History(tmp_path / "h.sqlite")
        )
        period = sample.period(sampling.REDIS_INFO)
    assert (
        f"the window ended {end:%Y-%m-%d %H:%M} UTC" in period.label() and "the present, not that window" in period.note
    )
    now = datetime.now(UTC)
    with _cache(healthy_sandbox) as c:
        live = sampling.Sample(
            0.5, cache=c, window=Window(now - timedelta(hours=1), now), history=History(tmp_path / "h2.sqlite")
        )
        assert "the present, not that window" not in live.period(sampling.REDIS_INFO).label()
