"""`imsnb triage`'s runs: the triage notebook, its key-metrics table and the notebooks its findings point to, then
(`--run-suggested`) those notebooks as a suite under the same incident, at the same time and place.

What the findings mean (the key metrics, which notebook follows up which check) is `imsnb.triage`'s; this module
only runs notebooks. Actions are never applied here: a follow-up plans them in its report.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imsnb import config
from imsnb.findings import Finding, Severity
from imsnb.runs.catalogue import load_info
from imsnb.runs.execute import DEFAULT_TIMEOUT_S, RunResult, check_run_settings, prepare, run_notebook
from imsnb.runs.suite import run_suite
from imsnb.triage import key_metrics, plan_text, suggested_notebooks

if TYPE_CHECKING:
    import pandas as pd

# Triage parameters that mean the same in every notebook, so the follow-ups look at the same time and place.
SHARED_PARAMETERS = ("window", "start", "end", "environment")


@dataclass
class TriageRun:
    result: RunResult  # the triage notebook's run
    table: pd.DataFrame  # one row per key metric, worst first (`imsnb.triage.key_metrics`)
    suggested: list[str]  # the incident notebooks the findings point to


def triage_plan(
    parameters: dict[str, Any],
    *,
    incident_id: str | None = None,
    outputs: Path | str = "outputs",
    fail_on: str | Severity = Severity.ERROR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> str:
    """What a triage run with these parameters is about to do, said before its kernel starts ("sampling counters
    for 10 s; reading Prometheus, CloudWatch, PostgreSQL and Redis over the last 1h ..."); bad input (including a
    run that would check nothing) raises BadParameter first, as the run itself would."""

    check_run_settings(fail_on, timeout_s)
    path, given, _ = prepare("triage", parameters, incident_id, outputs)
    params = {name: p.default for name, p in load_info(path).parameters.items()} | given
    if params.get("start"):
        span = f"from {params['start']} to {params.get('end') or 'now'}"
    else:
        span = f"over the last {params.get('window') or '1h'}" + (f" to {params['end']}" if params.get("end") else "")
    environment = params.get("environment")
    environ = None
    if environment and environment != "default":
        environ = dict(os.environ) | config.environment_settings(environment)
    return plan_text(span, float(params.get("sample_s") or 0), environ)


def run_triage(
    parameters: dict[str, Any],
    *,
    incident_id: str | None = None,
    outputs: Path | str = "outputs",
    fail_on: str | Severity = Severity.ERROR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_progress: Callable[[str], None] | None = None,
) -> TriageRun:
    """Run the triage notebook; its key metrics and the notebooks its findings suggest. `on_progress` gets each
    key metric as the notebook judges it (`imsnb.progress`)."""

    result = run_notebook(
        "triage",
        parameters,
        incident_id=incident_id,
        outputs=outputs,
        fail_on=fail_on,
        timeout_s=timeout_s,
        on_progress=on_progress,
    )
    findings = [Finding.from_dict(f) for f in result.summary["findings"]]
    return TriageRun(result, key_metrics(findings), suggested_notebooks(findings))


def run_suggested(
    triage: TriageRun,
    parameters: dict[str, Any],
    *,
    jobs: int,
    outputs: Path | str = "outputs",
    fail_on: str | Severity = Severity.ERROR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """The suggested notebooks under the triage's incident id, as a suite in parallel kernels (`jobs` at a time);
    each gets only the shared parameters (`SHARED_PARAMETERS`) of the triage's that it declares."""
    shared = {k: v for k, v in parameters.items() if k in SHARED_PARAMETERS}
    return run_suite(
        triage.suggested,
        shared,
        incident_id=triage.result.summary["incident_id"],
        outputs=outputs,
        jobs=jobs,
        fail_on=fail_on,
        timeout_s=timeout_s,
        on_result=on_result,
    )
