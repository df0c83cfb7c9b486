"""Findings, the threshold catalogue from the runbook's Monitoring section, and the escalation matrix.

A finding is one judged fact: `check` (dotted name), `component`, `severity`, the `value` seen, the `threshold` it
was judged against, its `unit`, a one-line `message` and optionally a small `evidence` table.
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from enum import IntEnum
from typing import Any

from imsnb.errors import BadParameter, ImsnbError, NotAvailable, NotConfigured, Unreachable
from imsnb.period import Period

COMPONENTS = ("api", "database", "cache", "aws", "host", "tls")
EVIDENCE_ROWS = 20


class Severity(IntEnum):
    OK = 0
    INFO = 1
    WARNING = 2
    ERROR = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str | Severity) -> Severity:
        if isinstance(text, Severity):
            return text
        try:
            return cls[str(text).strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}: use one of {', '.join(s.name for s in cls)}") from None


@dataclass(frozen=True)
class Threshold:
    """Levels at which a value becomes WARNING / ERROR / CRITICAL. `above`: higher is worse; else lower is worse."""

    warning: float
    error: float | None = None
    critical: float | None = None
    above: bool = True
    unit: str = ""
    source: str = ""

    def severity(self, value: float) -> Severity:
        worse = (lambda v, t: v >= t) if self.above else (lambda v, t: v <= t)
        for level, limit in ((Severity.CRITICAL, self.critical), (Severity.ERROR, self.error)):
            if limit is not None and worse(value, limit):
                return level
        return Severity.WARNING if worse(value, self.warning) else Severity.OK


# The runbook's "Monitoring / Key Metrics" (warning level); error/critical levels are imsnb's, documented here.
CATALOGUE: dict[str, Threshold] = {
    "postgres.connections_used": Threshold(0.80, 0.90, 0.98, unit="ratio", source="Connections: < 80% of max"),
    "postgres.slow_queries": Threshold(100.0, 1000.0, 10000.0, unit="ms", source="slow query: mean > 100 ms"),
    "postgres.long_running": Threshold(60.0, 300.0, 1800.0, unit="s", source="imsnb: active > 60 s"),
    "postgres.idle_in_transaction": Threshold(60.0, 600.0, 3600.0, unit="s", source="imsnb: idle in xact > 60 s"),
    "postgres.blocked_queries": Threshold(1.0, 30.0, 300.0, unit="s", source="imsnb: any wait on a lock"),
    "postgres.replication_lag": Threshold(10.0, 60.0, 300.0, unit="s", source="Replication lag: < 10s"),
    "postgres.cache_hit_ratio": Threshold(0.99, 0.90, 0.80, above=False, unit="ratio", source="PgHero: > 99%"),
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
                "e.g. IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED (the checks: imsnb/findings.py CATALOGUE)"
            )
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise BadParameter(f"{name}={raw!r} is not a number: give the level as a plain number, e.g. 0.7")


@dataclass
class Finding:
    check: str
    component: str
    severity: Severity
    value: Any = None
    threshold: Any = None
    unit: str = ""
    message: str = ""
    evidence: list[dict[str, Any]] | None = field(default=None, repr=False)
    period: Period | None = None  # the span the value covers (None: a reading taken now)

    def __post_init__(self) -> None:
        self.severity = Severity.parse(self.severity)
        if self.component not in COMPONENTS:
            raise ValueError(f"component {self.component!r} is not one of {COMPONENTS}")
        if self.evidence is not None and hasattr(self.evidence, "to_dict"):
            self.evidence = _records(self.evidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "component": self.component,
            "severity": self.severity.name,
            "value": _plain(self.value),
            "threshold": _plain(self.threshold),
            "unit": self.unit,
            "message": self.message,
            "evidence": self.evidence,
            "period": None if self.period is None else self.period.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            **{k: data.get(k) for k in ("check", "component", "severity", "value", "threshold", "message")},
            unit=data.get("unit") or "",
            evidence=data.get("evidence"),
            period=Period.from_dict(data.get("period")),
        )


def judge(check: str, component: str, value: float, message: str, **extra: Any) -> Finding:
    """A finding for `value` against the catalogue's threshold for `check`."""
    limit = threshold(check)
    return Finding(check, component, limit.severity(value), value, limit.warning, limit.unit, message, **extra)


def _plain(value: Any) -> Any:
    """JSON-safe scalars: numpy/Decimal to float, NaN to None, datetimes to ISO strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number) or math.isinf(number):
        return None
    return int(number) if number.is_integer() and not isinstance(value, float) else number


def _records(frame: Any) -> list[dict[str, Any]]:
    rows = frame.head(EVIDENCE_ROWS).to_dict(orient="records")
    return [{str(k): _plain(v) for k, v in row.items()} for row in rows]


class Findings(list):
    """The findings of one run, in the order they were found."""

    def add(self, *found: Finding | list[Finding] | None) -> None:
        for item in found:
            if item is None:
                continue
            if isinstance(item, Finding):
                self.append(item)
            else:
                self.extend(item)

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self), default=Severity.OK)

    @contextmanager
    def section(self, check: str, component: str) -> Iterator[None]:
        """Run one notebook section; a failure becomes a finding instead of an error that stops the notebook.

        An unreachable target is reported once as a CRITICAL `<source>.reachable` finding; later sections for the
        same target are skipped with a note. A missing feature is INFO with its hint; anything else (a timeout,
        a lock wait, a permission error) is a WARNING that the check could not complete.
        """
        try:
            yield
        except Unreachable as exc:
            reach = exc.check or f"{check.split('.')[0]}.reachable"
            if any(f.check == reach for f in self):
                print(f"skipped {check}: {exc}")
            else:
                self.add(Finding(reach, component, Severity.CRITICAL, message=str(exc)))
        except NotConfigured as exc:
            configured = exc.check or f"{check.split('.')[0]}.configured"
            if any(f.check == configured for f in self):
                print(f"skipped {check}: {exc}")
            else:
                self.add(Finding(configured, component, Severity.INFO, message=f"{exc}: skipped"))
        except NotAvailable as exc:
            self.add(Finding(check, component, Severity.INFO, message=f"{exc}. {exc.hint}".strip()))
        except Exception as exc:  # noqa: BLE001 - a diagnostic must never crash the notebook
            reason = " ".join(str(exc).split()) or type(exc).__name__
            self.add(
                Finding(
                    check,
                    component,
                    Severity.WARNING,
                    message=f"check could not complete: {type(exc).__name__}: {reason}",
                )
            )
            traceback.print_exc(limit=1)


@dataclass(frozen=True)
class Escalation:
    severity: str
    response_time: str
    notification: str
    escalation: str

    @property
    def page(self) -> bool:
        return self.escalation.startswith("Page")


# The runbook's "Alert Escalation Matrix"; OK needs nothing.
ESCALATION = {
    Severity.OK: Escalation("OK", "None", "None", "None"),
    Severity.INFO: Escalation("INFO", "None", "Email", "None"),
    Severity.WARNING: Escalation("WARNING", "15 min", "Slack + Email", "None"),
    Severity.ERROR: Escalation("ERROR", "5 min", "Slack + Email + SMS", "Page on-call"),
    Severity.CRITICAL: Escalation("CRITICAL", "1 min", "Slack + Email + SMS + Phone", "Page VP"),
}

PRIMARY_HOURS = (time(9, 0), time(17, 0))


def escalation_for(severity: Severity | str) -> Escalation:
    return ESCALATION[Severity.parse(severity)]


def on_call(at: datetime | None = None) -> str:
    """Who is on call at a UTC time: primary Mon–Fri 09:00–17:00 UTC, secondary otherwise (runbook's rotation)."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    weekday = at.weekday() < 5
    in_hours = PRIMARY_HOURS[0] <= at.time() < PRIMARY_HOURS[1]
    return "primary" if weekday and in_hours else "secondary"
