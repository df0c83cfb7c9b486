"""The runbook's escalation matrix (what each severity asks of whom, how fast) and its on-call rotation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from imsnb.findings.finding import Severity

__all__ = [
    "ESCALATION",
    "PRIMARY_HOURS",
    "Escalation",
    "escalation_for",
    "on_call",
    "escalation_text",
]


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


def escalation_text(value: str) -> str:
    """The matrix's "None" as a reader takes it ("none"), not as a missing value."""
    return "none" if value == "None" else value


def escalation_for(severity: Severity | str) -> Escalation:
    return ESCALATION[Severity.parse(severity)]


def on_call(at: datetime | None = None) -> str:
    """Who is on call at a UTC time: primary Mon–Fri 09:00–17:00 UTC, secondary otherwise (runbook's rotation)."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    weekday = at.weekday() < 5
    in_hours = PRIMARY_HOURS[0] <= at.time() < PRIMARY_HOURS[1]
    return "primary" if weekday and in_hours else "secondary"
