from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imsnb.findings import Finding, Findings, Severity, escalation_for, judge, on_call, threshold, unjudged


def test_catalogue_levels_follow_the_runbook():
    assert judge("postgres.connections_used", 0.79, "").severity == Severity.OK
    assert judge("postgres.connections_used", 0.80, "").severity == Severity.WARNING
    assert judge("postgres.connections_used", 0.95, "").severity == Severity.ERROR
    assert judge("cache.hit_rate", 0.81, "").severity == Severity.OK
    assert judge("cache.hit_rate", 0.75, "").severity == Severity.WARNING
    assert judge("postgres.replication_lag", 12, "").severity == Severity.WARNING
    assert threshold("api.p95_latency").warning == 500 and threshold("host.disk_free").warning == 0.20


def test_thresholds_are_overridable_by_environment(monkeypatch):
    monkeypatch.setenv("IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED", "0.5")
    assert judge("postgres.connections_used", 0.6, "").severity == Severity.WARNING
    assert threshold("postgres.connections_used").error == 0.90


def test_escalation_matrix_and_on_call():
    assert escalation_for("CRITICAL").escalation == "Page VP" and escalation_for("ERROR").page
    assert escalation_for("WARNING").response_time == "15 min" and not escalation_for("WARNING").page
    assert on_call(datetime(2026, 2, 9, 10, 0, tzinfo=UTC)) == "primary"  # Monday 10:00
    assert on_call(datetime(2026, 2, 9, 17, 0, tzinfo=UTC)) == "secondary"  # Monday 17:00
    assert on_call(datetime(2026, 2, 8, 12, 0, tzinfo=UTC)) == "secondary"  # Sunday


def test_section_turns_failures_into_findings():
    findings = Findings()
    with findings.section("postgres.slow_queries"):
        raise TimeoutError("canceling statement due to lock timeout")
    assert findings[0].severity == Severity.WARNING and "lock timeout" in findings[0].message
    assert findings.worst == Severity.WARNING


def test_finding_is_json_safe():
    import json

    import numpy as np
    import pandas as pd

    f = Finding(
        "x.y",
        "database",
        "warning",
        value=np.float64(1.5),
        threshold=np.int64(2),
        evidence=pd.DataFrame({"a": [np.nan]}),
    )
    assert json.loads(json.dumps(f.to_dict())) == {
        "check": "x.y",
        "component": "database",
        "severity": "WARNING",
        "value": 1.5,
        "threshold": 2,
        "unit": "",
        "message": "",
        "evidence": [{"a": None}],
        "period": None,  # a reading taken now; counter-based findings say what span they cover
    }
    with pytest.raises(ValueError, match="component"):
        Finding("x", "toaster", "OK")


def test_a_period_survives_the_summary_round_trip():
    import json
    from datetime import UTC, datetime, timedelta

    from imsnb.period import Period

    end = datetime(2026, 11, 29, 20, 47, tzinfo=UTC)
    period = Period(end - timedelta(minutes=30), end, "history", "from a snapshot taken by health_check")
    f = Finding(
        "cache.hit_rate",
        "cache",
        "WARNING",
        value=0.1,
        threshold=0.8,
        unit="ratio",
        message="hit rate 10%",
        period=period,
    )
    data = json.loads(json.dumps(f.to_dict()))
    assert data["period"] == {
        "from": "2026-11-29T20:17:00+00:00",
        "to": "2026-11-29T20:47:00+00:00",
        "basis": "history",
        "seconds": 1800.0,
        "note": "from a snapshot taken by health_check",
    }
    assert Finding.from_dict(data).period == period
    assert period.label() == "history 20:17:00–20:47:00 UTC (30 min), from a snapshot taken by health_check"
    with pytest.raises(ValueError, match="basis"):
        Period(None, end, "lifetime")


def test_a_period_has_a_short_label_for_tables_and_terminals():
    """ "last 2 min, from history": what a table's period column shows; `label()` keeps the times and the note."""
    from datetime import UTC, datetime, timedelta

    from imsnb.period import Period, since

    end = datetime(2026, 11, 29, 20, 47, tzinfo=UTC)
    now = end + timedelta(seconds=3)
    assert Period(end - timedelta(seconds=120), end, "history", "a long note").short(now) == "last 2 min, from history"
    assert Period(end - timedelta(seconds=10), end, "sample").short(now) == "last 10 s, sampled"
    assert Period(end - timedelta(hours=1), end, "window").short(now) == "last 60 min, window"
    assert since(end - timedelta(days=40), end).short(now) == "since restart, 40.0 d"
    yesterday = Period(end - timedelta(hours=1), end, "window").short(now + timedelta(days=1))
    assert yesterday == "60 min to 2026-11-29 20:47 UTC, window"


def test_finding_constructors_take_the_message_first_and_the_rest_by_name():
    ok = Finding.ok("postgres.blocked_queries", "no session waits on a lock", value=0, unit="s")
    assert (ok.severity, ok.value, ok.threshold, ok.unit, ok.message) == (
        Severity.OK,
        0,
        None,
        "s",
        "no session waits on a lock",
    )
    row = Finding.of("postgres.row_count", "ERROR", "orders: missing", threshold=20000, unit="rows")
    assert row.severity == Severity.ERROR and row.value is None and row.threshold == 20000
    with pytest.raises(TypeError):
        Finding.ok("postgres.blocked_queries", "x", 0)  # value only by name


def test_judge_floor_raises_a_severity_below_it_and_keeps_one_above():
    low = judge("postgres.blocked_queries", 0.2, "a short wait", floor=Severity.WARNING)
    assert low.severity == Severity.WARNING, "under the catalogue's first level, lifted to the floor"
    assert judge("postgres.blocked_queries", 0.2, "a short wait").severity == Severity.OK
    high = judge("postgres.blocked_queries", 400, "a long wait", floor=Severity.WARNING)
    assert high.severity == threshold("postgres.blocked_queries").severity(400) > Severity.WARNING


def test_worst_severity_of_findings_severities_and_names():
    found = [Finding.ok("cache.hit_rate", "fine"), Finding.of("cache.evictions", "ERROR", "evicting")]
    assert Severity.worst(found) == Severity.ERROR
    assert Severity.worst(["INFO", None, "", "bogus", Severity.WARNING]) == Severity.WARNING
    assert Severity.worst([]) == Severity.OK
    assert Severity.worst([None, "bogus"], default=None) is None
    assert Findings(found).worst == Severity.ERROR


def test_a_section_names_its_check_once_and_the_component_follows():
    from imsnb.findings import component_of

    assert component_of("postgres.slow_queries") == "database" and component_of("prometheus.up") == "api"
    assert component_of("aws.rds.cpu") == "aws" and component_of("tls.days_to_expiry") == "tls"
    with pytest.raises(ValueError, match="name its component"):
        component_of("toaster.temperature")
    findings = Findings()
    with findings.section("cache.hit_rate"):
        raise TimeoutError("read timed out")
    assert (findings[0].check, findings[0].component) == ("cache.hit_rate", "cache")


def test_a_section_after_a_failed_one_says_skipped_and_why():
    findings = Findings()
    with findings.section("aws.rds.snapshot_choice"):
        raise TimeoutError("describe_db_snapshots timed out")
        snaps = []  # noqa: F841 - never reached: the name the next section needs stays unset
    with findings.section("aws.rds.restore"):
        print(snaps)  # noqa: F821 - set only by the failed section above
    skipped = findings[1]
    assert skipped.severity == Severity.INFO and skipped.check == "aws.rds.restore"
    assert skipped.message.startswith("skipped: needs `snaps`")
    assert "aws.rds.snapshot_choice failed earlier" in skipped.message and "timed out" in skipped.message
    assert findings.worst == Severity.WARNING  # the failure itself, not the skip, carries the severity


def test_needs_skips_the_rest_of_a_section_when_an_earlier_one_produced_nothing():
    findings = Findings()
    reached = []
    with findings.section("aws.rds.restore"):
        findings.needs(chosen=None)
        reached.append("planned")
    assert reached == [] and findings[0].severity == Severity.INFO
    expected = "skipped: `chosen` is None: an earlier section found nothing to act on (see its finding)"
    assert findings[0].message == expected
    with findings.section("aws.rds.restore"):
        findings.needs(chosen={"snapshot": "s1"})
        reached.append("planned")
    assert reached == ["planned"] and len(findings) == 1


def test_a_name_error_with_no_earlier_failure_is_a_bug_not_a_skip():
    findings = Findings()
    with findings.section("api.health"):
        print(undefined_name)  # noqa: F821 - a typo in a notebook cell
    assert findings[0].severity == Severity.WARNING and "NameError" in findings[0].message


def test_judge_limit_judges_a_check_by_another_runbook_line_overrides_included(monkeypatch):
    slow = judge("api.response_time", 700.0, "sampled p95", limit=threshold("api.p95_latency"))
    assert (slow.check, slow.severity, slow.threshold, slow.unit) == ("api.response_time", Severity.WARNING, 500, "ms")
    monkeypatch.setenv("IMSNB_THRESHOLD_API_P95_LATENCY", "800")
    assert judge("api.response_time", 700.0, "", limit=threshold("api.p95_latency")).severity == Severity.OK
    with pytest.raises(KeyError):
        judge("api.response_time", 700.0, "")  # no entry of its own: the borrowed line must be named


def test_unjudged_shows_the_catalogue_level_and_unit(monkeypatch):
    none = unjudged("cache.hit_rate", Severity.OK, "too few lookups", value=None)
    assert (none.severity, none.threshold, none.unit, none.value) == (Severity.OK, 0.8, "ratio", None)
    monkeypatch.setenv("IMSNB_THRESHOLD_API_ERROR_RATE", "0.02")
    logs = unjudged("aws.logs.error_rate", "INFO", "no events", limit=threshold("api.error_rate"))
    assert (logs.check, logs.severity, logs.threshold) == ("aws.logs.error_rate", Severity.INFO, 0.02)


def test_a_first_level_worth_knowing_is_info_and_the_levels_below_it_keep_theirs(monkeypatch):
    def hit(ratio: float) -> Severity:
        return judge("postgres.cache_hit_ratio", ratio, "").severity

    assert [hit(0.995), hit(0.95), hit(0.85), hit(0.5)] == [
        Severity.OK,
        Severity.INFO,
        Severity.ERROR,
        Severity.CRITICAL,
    ]
    monkeypatch.setenv("IMSNB_THRESHOLD_POSTGRES_CACHE_HIT_RATIO", "0.999")  # an override keeps the level INFO
    assert hit(0.995) == Severity.INFO
    assert threshold("cache.hit_rate").severity(0.7) == Severity.WARNING  # the usual first level


def test_an_unusable_source_is_reachable_critical_or_configured_info():
    from imsnb.errors import NotConfigured, Unreachable

    down = Finding.unusable(Unreachable("database db:5432", "connection refused"), "postgres")
    assert (down.check, down.severity, down.message) == (
        "postgres.reachable",
        Severity.CRITICAL,
        "database db:5432 unreachable: connection refused",
    )
    unset = Finding.unusable(NotConfigured("no DB_HOST"), "postgres")
    assert (unset.check, unset.severity, unset.message) == ("postgres.configured", Severity.INFO, "no DB_HOST: skipped")
    named = Finding.unusable(NotConfigured("AWS has no region", check="aws.credentials"), "aws")
    assert named.check == "aws.credentials"


def test_a_name_error_inside_imsnb_is_a_bug_even_after_a_failed_section():
    """Only a name the notebook's own cell left unset is a skip; a NameError raised in imsnb's code is reported."""
    from imsnb.findings.finding import PACKAGE

    library: dict = {}
    exec(compile("def fetch():\n    return undefined_in_library\n", str(PACKAGE / "fake_source.py"), "exec"), library)  # noqa: S102
    findings = Findings()
    with findings.section("aws.rds.cpu"):
        raise TimeoutError("no answer")
    with findings.section("postgres.slow_queries"):
        library["fetch"]()
    assert findings[1].severity == Severity.WARNING and "NameError" in findings[1].message
