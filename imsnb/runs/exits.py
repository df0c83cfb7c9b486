"""The exit-code rule, written once: what one run exits with, and what several runs (a suite, a triage with its
suggested notebooks) exit with together. Light on purpose: `imsnb.cli` imports it at start-up."""

from __future__ import annotations

from collections.abc import Iterable

from imsnb.findings import Severity

EXIT_OK, EXIT_SEVERITY, EXIT_BAD_INPUT, EXIT_NOTEBOOK_FAILED = 0, 1, 2, 3


def run_exit_code(status: str, severity: str | None, fail_on: Severity) -> int:
    """One run: 3 when the notebook did not finish ("failed", "timeout"), 1 when its worst finding is at or above
    --fail-on, else 0."""
    if status != "ok":
        return EXIT_NOTEBOOK_FAILED
    return EXIT_SEVERITY if Severity.parse(severity or "OK") >= fail_on else EXIT_OK


def worst_exit_code(codes: Iterable[int]) -> int:
    """Several runs as one: a failed notebook (3) over a severity at --fail-on (1) over anything else (the
    highest), 0 for none."""
    codes = set(codes)
    for code in (EXIT_NOTEBOOK_FAILED, EXIT_SEVERITY):
        if code in codes:
            return code
    return max(codes, default=EXIT_OK)
