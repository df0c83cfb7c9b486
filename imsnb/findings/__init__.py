"""Findings, the threshold catalogue from the runbook's Monitoring section, the escalation matrix and who is on call.

    finding.py     Severity, Finding (+ Finding.of / Finding.ok / Finding.unusable), Findings (a run's, sections),
                   skipped_target (a target not configured: listed first, apart)
    catalogue.py   Threshold, CATALOGUE, threshold() with its IMSNB_THRESHOLD_* overrides, judge(..., floor=, limit=),
                   unjudged (nothing to judge: the level and unit all the same)
    escalation.py  the escalation matrix (escalation_for) and the on-call rotation (on_call: which role)
    oncall.py      the `[oncall]` roster: which person holds the role and how to reach them

A new check is a fetcher and a judge in its source's topic module (exported from the source package's `__init__`),
plus a CATALOGUE entry here; the judge words its message from `threshold(check)`, never a copied number.
"""

from imsnb.findings.catalogue import CATALOGUE, Threshold, check_threshold_overrides, judge, threshold, unjudged
from imsnb.findings.escalation import ESCALATION, PRIMARY_HOURS, Escalation, escalation_for, on_call, worded
from imsnb.findings.finding import (
    COMPONENTS,
    EVIDENCE_ROWS,
    Finding,
    Findings,
    Severity,
    component_of,
    evidence_rows,
    skipped_target,
    skipped_text,
)

__all__ = [
    "CATALOGUE",
    "COMPONENTS",
    "ESCALATION",
    "EVIDENCE_ROWS",
    "PRIMARY_HOURS",
    "Escalation",
    "Finding",
    "Findings",
    "Severity",
    "Threshold",
    "check_threshold_overrides",
    "component_of",
    "escalation_for",
    "evidence_rows",
    "judge",
    "on_call",
    "skipped_target",
    "skipped_text",
    "threshold",
    "worded",
    "unjudged",
]
