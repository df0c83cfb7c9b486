"""A ratio is judged with its uncertainty (issue 22 §2): hit and error rates escalate only when the cautious bound of
their 95% Wilson interval crosses the catalogue's level; below that, INFO with the counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from imsnb import postgres, prometheus, sampling
from imsnb.aws.logs import ErrorSummary, error_rate_finding
from imsnb.findings import Severity
from imsnb.findings.confidence import judge_ratio, wilson_interval
from imsnb.period import Period, tag

END = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
TWO_MINUTES = Period(END - timedelta(minutes=2), END, "sample")


def test_wilson_interval_matches_the_formula_and_never_collapses():
    assert wilson_interval(2, 40) == pytest.approx((0.01381, 0.16503), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] == pytest.approx(0.72247, abs=1e-4)
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)


def _redis(hits: int, misses: int, *, uptime_s: int = 86_400) -> sampling.RedisDelta:
    empty = pd.DataFrame(columns=["command", "calls", "per_s", "usec_per_call"])
    return sampling.RedisDelta(
        hits=hits,
        misses=misses,
        evicted=0,
        expired=0,
        commands=hits + misses,
        seconds=120.0,
        lifetime_hits=10**6,
        lifetime_misses=10**5,
        lifetime_evicted=0,
        uptime_s=uptime_s,
        by_command=empty,
    )


def test_a_redis_hit_rate_on_few_lookups_is_info_with_its_counts():
    few = sampling.hit_rate_finding(_redis(17, 8), TWO_MINUTES)  # 68%: a WARNING on the observed rate
    assert few.severity == Severity.INFO, few.message
    assert "too little traffic to judge: 25 lookups, 8 misses in 2 min" in few.message
    assert few.value == pytest.approx(0.68)
    many = sampling.hit_rate_finding(_redis(17_000, 8_000), TWO_MINUTES)
    assert many.severity == Severity.WARNING and many.message == (
        "hit rate 68.0%, 17,000 hits and 8,000 misses (95% interval 67.4%–68.6%); "
        "90.9% of 1,100,000 lookups since Redis started 1 d ago (or its last CONFIG RESETSTAT)"
    )
    assert many.period == TWO_MINUTES


def test_the_lifetime_rate_says_what_it_covers_never_an_absurd_span():
    """Issue 23 §6: not "since restart 99.0% over up to 0.0 h" for a Redis started a minute ago."""
    young = sampling.hit_rate_finding(_redis(17_000, 8_000, uptime_s=40), TWO_MINUTES).message
    assert young.endswith("; 90.9% of 1,100,000 lookups since Redis started 40 s ago (or its last CONFIG RESETSTAT)")
    unknown = sampling.hit_rate_finding(_redis(17_000, 8_000, uptime_s=0), TWO_MINUTES).message
    assert unknown.endswith("; 90.9% of 1,100,000 lookups since Redis started (or its last CONFIG RESETSTAT)")
    evicted = sampling.RedisDelta(
        hits=10,
        misses=0,
        evicted=5,
        expired=0,
        commands=10,
        seconds=120.0,
        lifetime_hits=10,
        lifetime_misses=0,
        lifetime_evicted=1_234,
        uptime_s=7_500,
        by_command=pd.DataFrame(),
    )
    assert sampling.evictions_finding(evicted, TWO_MINUTES).message == (
        "5 keys evicted, 0.042/s; 1,234 since Redis started 2 h 5 min ago (or its last CONFIG RESETSTAT); "
        "runbook: evictions = 0"
    )


def test_one_failed_log_line_in_400_pages_nobody_but_a_real_rate_still_does():
    summary = ErrorSummary("/ims/api", "ERROR", 1, 400, False, pd.DataFrame(), pd.DataFrame())
    quiet = error_rate_finding(summary, seconds=300)
    assert quiet.severity == Severity.INFO, quiet.message  # 0.25% observed: a WARNING on the point
    assert "too little traffic to judge: 400 log events, 1 matching 'ERROR' in 5 min" in quiet.message
    some = error_rate_finding(ErrorSummary("/ims/api", "ERROR", 2, 150, False, pd.DataFrame(), pd.DataFrame()))
    assert some.severity == Severity.WARNING, some.message  # 1.3% observed (ERROR), lower bound 0.37%
    busy = error_rate_finding(ErrorSummary("/ims/api", "ERROR", 100, 1_000, False, pd.DataFrame(), pd.DataFrame()))
    assert busy.severity == Severity.CRITICAL  # lower bound 8.3% > 5%


def _prom_frame(rates: list[float], requests: list[float] | None) -> pd.DataFrame:
    stamps = [pd.Timestamp(END) - pd.Timedelta(minutes=5 * i) for i in range(len(rates))][::-1]
    frame = pd.DataFrame({"timestamp": stamps, "metric": "error_rate", "value": rates})
    if requests is not None:
        frame["requests"] = requests
    frame = tag(frame, Period(stamps[0], stamps[-1], "window"))
    frame.attrs["rate_window_s"] = 300.0
    return frame


def test_an_api_error_rate_is_judged_on_its_lower_bound_at_each_point():
    quiet = prometheus.error_rate_finding(_prom_frame([0.0, 1 / 400, 0.0], [380.0, 400.0, 390.0]))
    assert quiet.severity == Severity.INFO, quiet.message
    assert "too little traffic to judge: 400 requests, 1 5xx in 5 min" in quiet.message
    busy = prometheus.error_rate_finding(_prom_frame([0.0, 0.03, 0.0], [3_000.0, 3_000.0, 3_000.0]))
    assert busy.severity == Severity.ERROR and busy.value == pytest.approx(0.03), busy.message
    assert prometheus.error_rate_finding(_prom_frame([0.0, 1 / 12], None)).severity == Severity.CRITICAL


def test_a_database_hit_ratio_on_few_accesses_is_info():
    hits = pd.DataFrame({"database": ["ims"], "blks_hit": [9], "blks_read": [3], "hit_ratio": [0.75]})
    now = datetime.now(UTC)
    sampled = Period(now - timedelta(seconds=14), now, "sample")
    few = postgres.cache_hit_finding(hits, min_blocks=10, period=sampled)  # 75%: CRITICAL on the observed ratio
    assert few.severity == Severity.INFO and "12 buffer accesses, 3 reads in 14 s" in few.message
    assert few.period == sampled and few.message.startswith("too little traffic to judge: ")
    hits = pd.DataFrame({"database": ["ims"], "blks_hit": [7_769], "blks_read": [2_231], "hit_ratio": [0.7769]})
    assert postgres.cache_hit_finding(hits, min_blocks=10).severity == Severity.CRITICAL


def test_judge_ratio_keeps_the_catalogue_levels(monkeypatch):
    for suffix, level in (("", "0.65"), ("_ERROR", "0.3"), ("_CRITICAL", "0.2")):
        monkeypatch.setenv(f"IMSNB_THRESHOLD_CACHE_HIT_RATE{suffix}", level)
    finding = judge_ratio("cache.hit_rate", 600, 1_000, "hit rate 60%", nouns=("lookups", "misses"))
    assert finding.severity == Severity.WARNING and finding.threshold == 0.65  # upper bound 63.0% < 65%
