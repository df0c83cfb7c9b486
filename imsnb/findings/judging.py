"""`judge`: a finding for a value against its check's catalogue levels, over the period it covers; `unjudged` for a
check that had nothing to judge; `on_lifetime`, the rule for a number that covers a server's whole lifetime."""

from __future__ import annotations

from typing import Any

from imsnb.findings.catalogue import Threshold, threshold
from imsnb.findings.finding import Finding, Severity
from imsnb.period import Period

__all__ = [
    "judge",
    "on_lifetime",
    "unjudged",
]


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
