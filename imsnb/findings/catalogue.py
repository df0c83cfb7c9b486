"""The threshold catalogue from the runbook's Monitoring section, its IMSNB_THRESHOLD_* overrides, and `judge`."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from imsnb.errors import BadParameter, ImsnbError
from imsnb.findings.finding import Finding, Severity
from imsnb.period import Period


@dataclass(frozen=True)
class Threshold:
    """Levels at which a value becomes WARNING / ERROR / CRITICAL. `above`: higher is worse; else lower is worse.
    `first`: what passing the first level makes a finding (INFO where that is worth knowing, not a warning)."""

    warning: float
    error: float | None = None
    critical: float | None = None
    above: bool = True
    unit: str = ""
    source: str = ""
    first: Severity = Severity.WARNING

    def severity(self, value: float) -> Severity:
        worse = (lambda v, t: v >= t) if self.above else (lambda v, t: v <= t)
        for level, limit in ((Severity.CRITICAL, self.critical), (Severity.ERROR, self.error)):
            if limit is not None and worse(value, limit):
                return level
        return self.first if worse(value, self.warning) else Severity.OK


# The runbook's "Monitoring / Key Metrics" (warning level); error/critical levels are imsnb's, documented here.
CATALOGUE: dict[str, Threshold] = {
    "postgres.connections_used": Threshold(0.80, 0.90, 0.98, unit="ratio", source="Connections: < 80% of max"),
    "postgres.slow_queries": Threshold(100.0, 1000.0, 10000.0, unit="ms", source="slow query: mean > 100 ms"),
    "postgres.long_running": Threshold(60.0, 300.0, 1800.0, unit="s", source="imsnb: active > 60 s"),
    "postgres.idle_in_transaction": Threshold(60.0, 600.0, 3600.0, unit="s", source="imsnb: idle in xact > 60 s"),
    "postgres.blocked_queries": Threshold(1.0, 30.0, 300.0, unit="s", source="imsnb: any wait on a lock"),
    "postgres.replication_lag": Threshold(10.0, 60.0, 300.0, unit="s", source="Replication lag: < 10s"),
    # under PgHero's 99% is worth knowing, not an alert: INFO (ERROR and CRITICAL further down as usual)
    "postgres.cache_hit_ratio": Threshold(
        0.99, 0.90, 0.80, above=False, unit="ratio", source="PgHero: > 99%", first=Severity.INFO
    ),
    "postgres.xid_age": Threshold(0.50, 0.75, 0.90, unit="ratio", source="imsnb: of 2^31 transaction IDs"),
    "aws.rds.cpu": Threshold(80.0, 90.0, 98.0, unit="%", source="CPU: < 80%"),
    "host.disk_used": Threshold(0.85, 0.90, 0.95, unit="ratio", source="Disk usage > 85%"),
    "host.disk_free": Threshold(0.20, 0.10, 0.05, above=False, unit="ratio", source="Disk space: > 20% free"),
    "cache.hit_rate": Threshold(0.80, 0.60, 0.40, above=False, unit="ratio", source="Hit rate: > 80%"),
    "cache.memory_used": Threshold(0.90, 0.95, 0.99, unit="ratio", source="Memory: < 90% used"),
    "cache.evictions": Threshold(1.0, 1000.0, None, unit="keys", source="Evictions: = 0"),
    "cache.latency": Threshold(1.0, 10.0, 100.0, unit="ms", source="Latency: < 1ms"),
    "postgres.statement_regression": Threshold(
        5.0, 20.0, None, unit="x", source="imsnb: mean in the window ≥ 5x its baseline mean"
    ),
    # advice is INFO; verified advice for statements carrying half the window's statement time or more is a WARNING
    "postgres.index_advice": Threshold(
        0.5,
        unit="ratio",
        source="imsnb: advised statements ≥ 50% of the window's statement time",
        first=Severity.WARNING,
    ),
    "tls.days_to_expiry": Threshold(30.0, 7.0, 0.0, above=False, unit="days", source="cert expires in 30 days"),
    "api.error_rate": Threshold(0.001, 0.01, 0.05, unit="ratio", source="Error rate: < 0.1%"),
    "api.p95_latency": Threshold(500.0, 1000.0, 30000.0, unit="ms", source="Response time P95: < 500ms"),
    # Memory Leak / OOM Killer, on the host itself
    "host.memory_used": Threshold(0.90, 0.95, 0.98, unit="ratio", source="Memory: < 90% used"),
    "host.swap_used": Threshold(0.50, 0.80, 0.95, unit="ratio", source="imsnb: swapping means memory pressure"),
    "host.oom_kills": Threshold(1.0, 1.0, 5.0, unit="kills", source="imsnb: any OOM kill in the window"),
    "host.process_growth": Threshold(10.0, 50.0, 500.0, unit="MiB/min", source="imsnb: RSS growth over the sample"),
    # Vertical Scaling › Identify bottleneck: the RDS instance's memory and IOPS beside CPU and storage
    "aws.rds.memory_used": Threshold(0.90, 0.95, 0.98, unit="ratio", source="Memory: < 90% used (of class RAM)"),
    "aws.rds.iops_used": Threshold(0.80, 0.90, 1.0, unit="ratio", source="imsnb: p95 IOPS of the volume baseline"),
    # Cache Cluster Upgrade: the current cluster from CloudWatch, and the new node's keys against the old one's
    "aws.elasticache.memory_used": Threshold(0.90, 0.95, 0.99, unit="ratio", source="Memory: < 90% used"),
    "aws.elasticache.evictions": Threshold(1.0, 1000.0, None, unit="keys", source="Evictions: = 0"),
    "cache.key_counts": Threshold(0.01, 0.05, 0.50, unit="ratio", source="imsnb: new node lacks < 1% of the keys"),
}


def threshold(check: str) -> Threshold:
    """The catalogue entry for `check`, with levels overridden by IMSNB_THRESHOLD_<CHECK>[_ERROR|_CRITICAL]."""
    base = CATALOGUE[check]
    env_name = "IMSNB_THRESHOLD_" + check.upper().replace(".", "_")
    levels = {}
    for suffix, attr in (("", "warning"), ("_ERROR", "error"), ("_CRITICAL", "critical")):
        raw = os.environ.get(env_name + suffix)
        if raw:
            try:
                levels[attr] = float(raw)
            except ValueError:
                raise ImsnbError(f"{env_name + suffix}={raw!r} is not a number") from None
    if not levels:
        return base
    return Threshold(**{**base.__dict__, **levels})


def check_threshold_overrides(environ: dict[str, str] | None = None) -> None:
    """Every IMSNB_THRESHOLD_* variable names a check of the catalogue and holds a finite number; BadParameter
    otherwise, so a typo or a unit in the value is refused before a run rather than ignored or half-applied."""
    environ = os.environ if environ is None else environ
    known = {check.upper().replace(".", "_") for check in CATALOGUE}
    for name, raw in sorted(environ.items()):
        if not name.startswith("IMSNB_THRESHOLD_") or not raw:
            continue
        check = name.removeprefix("IMSNB_THRESHOLD_")
        base = next((check.removesuffix(s) for s in ("_ERROR", "_CRITICAL") if check.removesuffix(s) in known), check)
        if base not in known:
            raise BadParameter(
                f"{name} names no check with a threshold: use the check's name in capitals, dots as underscores, "
                "e.g. IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED (the checks: imsnb/findings/catalogue.py CATALOGUE)"
            )
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise BadParameter(f"{name}={raw!r} is not a number: give the level as a plain number, e.g. 0.7")


def judge(
    check: str,
    value: float,
    message: str,
    *,
    floor: Severity | None = None,
    limit: Threshold | None = None,
    period: Period | None = None,
    lifetime_at_most: Severity | str | None = None,
    **extra: Any,
) -> Finding:
    """A finding for `value` against the catalogue's threshold for `check`; `floor`: the least severity it gets
    (a session waiting on a lock is a WARNING whatever the wait); `limit`: the threshold of the runbook line a check
    without an entry of its own is judged by (api.response_time by `threshold("api.p95_latency")`); `period`: the
    span the value covers, which the message does not repeat (a since-restart one: see `on_lifetime`)."""
    limit = limit or threshold(check)
    severity = limit.severity(value) if floor is None else max(limit.severity(value), floor)
    severity, message = on_lifetime(severity, message, period, lifetime_at_most)
    return Finding.of(
        check, severity, message, value=value, threshold=limit.warning, unit=limit.unit, period=period, **extra
    )


def unjudged(
    check: str, severity: Severity | str, message: str, *, limit: Threshold | None = None, **extra: Any
) -> Finding:
    """A finding for `check` that had nothing to judge (no data, too little traffic, no replica), showing the
    catalogue's level and unit all the same; `limit` as for `judge`."""
    limit = limit or threshold(check)
    return Finding.of(check, severity, message, threshold=limit.warning, unit=limit.unit, **extra)


def on_lifetime(
    severity: Severity, message: str, period: Period | None, at_most: Severity | str | None = None
) -> tuple[Severity, str]:
    """The severity and message of a number judged over `period`: unchanged unless the period is a since-restart
    one (lifetime totals, no sample). Such a number alone may still warn (nothing better exists), and the message
    says so; with `at_most` (health_check and triage pass INFO) it is context only: never above that level, and the
    message says what it would have been and why it is not a verdict."""
    if period is None or not period.lifetime:
        return severity, message
    cap = None if at_most is None else Severity.parse(at_most)
    if cap is not None and severity > cap:
        return cap, (
            f"{message} (since restart: context only, not a verdict on now; {severity.name} on lifetime totals, "
            f"{cap.name} at most without a sample: set sample_s above 0)"
        )
    if severity >= Severity.WARNING:
        return severity, f"{message} (judged on lifetime totals: no sample was available)"
    return severity, message
