"""Triage: every key metric of the runbook's Monitoring section against its threshold, in one table, and the
incident notebooks the findings point to.

    run = incident.begin("triage", incident_id=incident_id, ..., sample_s=sample_s, cache=True)  # set-up
    findings = triage.key_findings(run.window, sample=run.sample)  # a finding per key metric (a source down: its own)
    table = triage.key_metrics(findings)        # one row per key metric, worst first, with the period each covers
    triage.suggested_notebooks(findings)        # ["db_performance", "high_error_rate", ...]

Every source is read once, in its own `Findings.section`, so a dependency that is down (or not configured) becomes a
finding and fills its metrics' rows; nothing here raises for a sick target. Prometheus and CloudWatch numbers cover
the window; the cache's hit rate and evictions cover the sample (Redis INFO stats counted from the setup cell's
snapshot, or from a stored one near the window's start), since-restart totals only as context (INFO at most).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime

import pandas as pd

from imsnb import cache, config, postgres, prometheus, sampling
from imsnb.aws import Aws, cloudwatch, rds
from imsnb.findings import CATALOGUE, Finding, Findings, Severity, escalation_for, on_call, threshold
from imsnb.findings.oncall import on_call_now
from imsnb.progress import say
from imsnb.status_pages import third_party_findings
from imsnb.window import Window, parse_duration


@dataclass(frozen=True)
class KeyMetric:
    area: str
    metric: str
    check: str  # the finding that judges it
    runbook: str  # the runbook's own words for the target
    sources: tuple[str, ...]  # findings that stand in for it when its source is down or not configured


_PROMETHEUS = ("prometheus.reachable", "prometheus.configured")
_AWS = ("aws.reachable", "aws.credentials")
_POSTGRES = ("postgres.reachable", "postgres.configured")
_CACHE = ("cache.reachable", "cache.configured")

# The runbook's "Monitoring / Key Metrics to Track", in its order.
KEY_METRICS = (
    KeyMetric("API", "Request rate", "api.request_rate", "steady", _PROMETHEUS),
    KeyMetric("API", "Error rate", "api.error_rate", "< 0.1%", _PROMETHEUS),
    KeyMetric("API", "Response time P95", "api.p95_latency", "< 500ms", _PROMETHEUS),
    KeyMetric("Database", "CPU", "aws.rds.cpu", "< 80%", _AWS),
    KeyMetric("Database", "Connections", "postgres.connections_used", "< 80% of max", _POSTGRES),
    KeyMetric("Database", "Disk space", "aws.rds.free_storage", "> 20% free", _AWS),
    KeyMetric("Database", "Replication lag", "postgres.replication_lag", "< 10s", _POSTGRES),
    KeyMetric("Cache", "Hit rate", "cache.hit_rate", "> 80%", _CACHE),
    KeyMetric("Cache", "Memory", "cache.memory_used", "< 90% used", _CACHE),
    KeyMetric("Cache", "Evictions", "cache.evictions", "= 0", _CACHE),
    KeyMetric("Cache", "Latency", "cache.latency", "< 1ms", _CACHE),
)

# Which incident notebook follows up a check found at WARNING or worse (first matching prefix wins).
NOTEBOOK_FOR_CHECK = (
    ("api.error_rate", "high_error_rate"),
    ("api.p95_latency", "api_timeout"),
    ("api.request_rate", "scaling"),
    ("aws.rds.free_storage", "disk_usage"),
    ("aws.rds.cpu", "db_performance"),
    ("postgres.", "db_performance"),
    ("cache.", "redis_cache"),
    ("prometheus.reachable", "health_check"),
    ("aws.reachable", "health_check"),
)
# The key-metrics table, the columns a paged engineer reads first first (value and threshold show with their unit).
TABLE_COLUMNS = ["severity", "area", "metric", "value", "threshold", "unit", "runbook", "message", "period", "check"]


def key_findings(
    window: Window,
    *,
    application: str = "triage",
    rds_instance: str | None = None,
    prom: prometheus.Prometheus | None = None,
    cache_latency_samples: int = 50,
    sample: sampling.Sample | None = None,
) -> Findings:
    """One finding per key metric over `window` (plus each source's reachability); never raises for a source.

    `sample`: the run's counter sample, its first Redis snapshot taken in the setup cell (its `cache` is the Redis
    read here; the caller closes it). Without one, a Redis session of its own and lifetime totals: context, INFO at
    most. A since-restart hit rate or eviction count is never more than INFO here (triage pages on what is
    happening now)."""
    findings = Findings()
    _api_findings(findings, window, prom or prometheus.Prometheus())
    _aws_findings(findings, window, application, rds_instance)
    _postgres_findings(findings, application)
    _cache_findings(findings, window, application, sample, cache_latency_samples)
    return findings


def _api_findings(findings: Findings, window: Window, prom: prometheus.Prometheus) -> None:
    """The API's request rate, 5xx rate and p95 from Prometheus; third-party status pages when configured."""
    say("reading Prometheus: API request rate, 5xx rate, p95 ...")
    for check, fetch, judge in (
        ("api.request_rate", prometheus.request_rate, prometheus.request_rate_finding),
        ("api.error_rate", prometheus.error_rate, prometheus.error_rate_finding),
        ("api.p95_latency", prometheus.p95_latency, prometheus.p95_latency_finding),
    ):
        with _said(findings), findings.section(check):
            findings.add(judge(fetch(window, prom=prom)))
    with findings.section("api.third_party_status"):  # the runbook's "Check third-party service status"
        findings.add(third_party_findings())  # nothing when imsnb.toml names no [status_pages]


def _aws_findings(findings: Findings, window: Window, application: str, rds_instance: str | None) -> None:
    """The RDS instance's CPU and free storage from CloudWatch (one metrics read for both)."""
    aws = Aws(application)
    instance = config.aws_name("rds_instance", rds_instance)
    load = None
    say(f"reading CloudWatch: {instance} CPU and free storage ...")
    with _said(findings), findings.section("aws.rds.cpu"):
        load = cloudwatch.rds_metrics(instance, window, aws=aws)
        findings.add(cloudwatch.rds_cpu_finding(load, instance))
    with _said(findings), findings.section("aws.rds.free_storage"):
        if load is None:
            load = cloudwatch.rds_metrics(instance, window, aws=aws)
        described = rds.instances(instance, aws=aws)
        allocated = float(described["allocated_gib"].iloc[0]) if not described.empty else None
        findings.add(cloudwatch.rds_free_storage_finding(load, instance, allocated))


def _postgres_findings(findings: Findings, application: str) -> None:
    """PostgreSQL's reachability, connections used, replication lag and lasting lock waits, in a session closed
    afterwards."""
    db = postgres.Database(application)
    say("reading PostgreSQL: connections, replication lag, lock waits ...")
    try:
        with _said(findings):
            findings.add(postgres.reachable_finding(db), postgres.visibility_finding(db))
        with _said(findings), findings.section("postgres.connections_used"):
            findings.add(postgres.connections_finding(postgres.connections_by_state(db), postgres.max_connections(db)))
        with _said(findings), findings.section("postgres.replication_lag"):
            findings.add(postgres.replication_lag_finding(postgres.replication_lag(db)))
        with _said(findings), findings.section("postgres.blocked_queries"):
            findings.add(*lasting_lock_waits(postgres.blocked_queries(db)))
    finally:
        db.close()


def lasting_lock_waits(blocked: pd.DataFrame) -> list[Finding]:
    """A lock pile-up is no key metric of the runbook, but it is how a database incident often starts: waits that
    have lasted the catalogue's ERROR level (30 s) are a WARNING here, pointing at db_performance, which judges
    them. Not a page by itself: the runbook pages on what the users feel (errors, latency), which a pile-up that
    matters raises too; a row lock held for a moment under load is left to db_performance, which shows every one."""
    lasting = blocked[blocked["waiting_s"] >= threshold("postgres.blocked_queries").error]
    if lasting.empty:
        return []
    found = postgres.blocked_queries_finding(lasting)
    if found.severity <= Severity.WARNING:
        return [found]
    said = f"{found.message} ({found.severity.name} in db_performance; triage pages on the key metrics)"
    return [replace(found, severity=Severity.WARNING, message=said)]


def _cache_findings(
    findings: Findings, window: Window, application: str, sample: sampling.Sample | None, latency_samples: int
) -> None:
    """Redis: hit rate and evictions over the run's counter sample (else lifetime totals, INFO at most), memory and
    latency."""
    own = sample is None or sample.cache is None
    if own:
        sample = sampling.Sample(0, cache=cache.Cache(application), window=window, taken_by=application)
    redis = sample.cache
    try:
        with _said(findings):
            reached = cache.reachable_finding(redis)
            findings.add(reached)
        left = sample.remaining_s(sampling.REDIS_INFO)
        if reached.severity == Severity.OK:
            say(
                f"reading Redis: hit rate and evictions over the counter sample ({left:.0f} s left) ..."
                if left >= 1
                else "reading Redis: hit rate, evictions, memory, latency ..."
            )
        with _said(findings), findings.section("cache.hit_rate"):  # waits only for what remains of the sample
            findings.add(sampling.redis_findings(sample, lifetime_at_most=Severity.INFO))
        with _said(findings), findings.section("cache.memory_used"):
            findings.add(cache.memory_finding(cache.memory_usage(redis)))
        with _said(findings), findings.section("cache.latency"):
            findings.add(cache.latency_finding(cache.latency(redis, samples=latency_samples)))
    finally:
        if own:
            redis.close()


_METRIC_NAMES = {key.check: f"{key.area} {key.metric}" for key in KEY_METRICS}


@contextmanager
def _said(findings: Findings) -> Iterator[None]:
    """Tell the runner (`imsnb.progress`) each key metric judged in the block, and any other finding worse than
    OK (a source down or not configured): `imsnb triage` prints them as they come."""
    start = len(findings)
    try:
        yield
    finally:
        for found in findings[start:]:
            if found.check in _METRIC_NAMES or found.severity > Severity.OK:
                say(f"{found.severity.name:<8} {_METRIC_NAMES.get(found.check, found.check)}: {found.message}")


def plan_text(window: str, sample_s: float, environ: dict[str, str] | None = None) -> str:
    """What triage is about to do, for the first line a person sees: which configured sources it reads over which
    window, and the sample of Redis's counters ("reading Prometheus, CloudWatch, ... over the last 1h; sampling
    Redis counters for 10 s ...")."""
    sources = [
        name
        for target, name in (
            ("prometheus", "Prometheus"),
            ("aws", "CloudWatch"),
            ("postgres", "PostgreSQL"),
            ("redis", "Redis"),
        )
        if config.target_configured(target, environ)
    ]
    reading = ", ".join(sources[:-1]) + (" and " if len(sources) > 1 else "") + sources[-1] if sources else "nothing"
    sampled = f"; sampling Redis counters for {sample_s:g} s" if sample_s > 0 and "Redis" in sources else ""
    return f"reading {reading} {window}{sampled} ..."


def context_window(window: Window, at_least: str = "3h") -> Window:
    """`window`, reaching back at least `at_least` before its end: charts that show when a spike began."""
    return Window(min(window.start, window.end - parse_duration(at_least)), window.end)


def key_metrics(findings: list[Finding]) -> pd.DataFrame:
    """One row per key metric: its value and threshold, the runbook's words, the severity, the period the number
    covers; worst first.

    A metric whose source was down or not configured takes that finding's severity and message, so the table's
    worst severity is always the findings' worst.
    """
    by_check: dict[str, Finding] = {}
    for finding in findings:
        seen = by_check.get(finding.check)
        if seen is None or finding.severity > seen.severity:
            by_check[finding.check] = finding
    rows = []
    for key in KEY_METRICS:
        found = by_check.get(key.check)
        stand_ins = [by_check[c] for c in key.sources if c in by_check and by_check[c].severity > Severity.OK]
        if found is None or (stand_ins and max(f.severity for f in stand_ins) > found.severity):
            found = max(stand_ins, key=lambda f: f.severity, default=None)
        if found is None:
            rows.append(_row(key, None, None, "", Severity.INFO, key.check, "not checked in this run"))
        else:
            rows.append(
                _row(key, found.value, found.threshold, found.unit, found.severity, found.check, found.message)
                | {"period": _period_text(found)}
            )
    covered = {key.check for key in KEY_METRICS} | {c for key in KEY_METRICS for c in key.sources}
    for finding in findings:  # anything else the run found still counts toward the table's worst severity
        if finding.check not in covered and finding.severity > Severity.OK:
            rows.append(
                {
                    "area": finding.component.capitalize(),
                    "metric": finding.check,
                    "value": finding.value,
                    "threshold": finding.threshold,
                    "unit": finding.unit,
                    "runbook": "",
                    "severity": finding.severity.name,
                    "check": finding.check,
                    "period": _period_text(finding),
                    "message": finding.message,
                }
            )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    order = table["severity"].map(lambda s: -Severity.parse(s))
    return table.assign(_order=order).sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)


def _row(
    key: KeyMetric, value: object, limit: object, unit: str, severity: Severity, check: str, message: str
) -> dict[str, object]:
    if limit is None and key.check in CATALOGUE and check == key.check:
        limit = CATALOGUE[key.check].warning
    return {
        "area": key.area,
        "metric": key.metric,
        "value": value,
        "threshold": limit,
        "unit": unit,
        "runbook": key.runbook,
        "severity": severity.name,
        "check": check,
        "period": "",
        "message": message,
    }


def _period_text(finding: Finding) -> str:
    """What span the row's number covers, short ("last 60 min, window"; the times are in the finding's period);
    "" for a reading now."""
    return finding.period.short() if finding.period else ""


def worst_severity(table: pd.DataFrame) -> Severity:
    """The worst severity in a key-metrics table (OK for an empty one)."""
    return Severity.worst(table["severity"])


def suggested_notebooks(findings: list[Finding], *, at_least: Severity | str = Severity.WARNING) -> list[str]:
    """The incident notebooks the findings at `at_least` or worse point to, worst finding first, each once."""
    floor = Severity.parse(at_least)
    suggested: list[str] = []
    for finding in sorted(findings, key=lambda f: -f.severity):
        if finding.severity < floor:
            continue
        for prefix, notebook in NOTEBOOK_FOR_CHECK:
            if finding.check.startswith(prefix):
                if notebook not in suggested:
                    suggested.append(notebook)
                break
    return suggested


def escalation_summary(severity: Severity | str, *, at: datetime | None = None) -> dict[str, object]:
    """What the runbook's escalation matrix asks for at `severity`, and who is on call at `at` (default now)."""
    level = Severity.parse(severity)
    esc = escalation_for(level)
    return {
        "severity": level.name,
        "response_time": esc.response_time,
        "notify": esc.notification,
        "escalation": esc.escalation,
        "page": esc.page,
        "on_call": on_call(at),
        "on_call_name": on_call_now(at)["name"],  # the person, when [oncall] names a roster
    }


def escalation_table(severity: Severity | str, *, at: datetime | None = None) -> pd.DataFrame:
    """`escalation_summary` as a two-column table for a notebook."""
    return pd.DataFrame(list(escalation_summary(severity, at=at).items()), columns=["", "value"])


def suggested_commands(notebooks: list[str], incident_id: str, window: str | None = None) -> pd.DataFrame:
    """The command that runs each suggested notebook under the same incident id."""
    extra = f" -p window {window}" if window else ""
    return pd.DataFrame(
        [(name, f"imsnb run {name} --incident {incident_id}{extra}") for name in notebooks],
        columns=["notebook", "command"],
    )
