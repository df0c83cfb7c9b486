"""What the commands that run notebooks print: for a paged engineer, what happened first and each fact once.

- targets that were not configured come first, apart from the findings ("not checked: ...");
- a run "completed" (or "failed", "timed out") and has a worst finding: never "status ok, worst ERROR";
- a verdict on part of the window says which part ("the sample covers 10 s of the 5 min window"), so an OK on
  ten seconds is not read as an OK on the incident;
- an action's reason not to apply ("both keys are missing: ...") is said once per command, the plans listed;
- several runs (a suite, triage's follow-ups) end with their findings at WARNING and above, the worst severity, its
  escalation and the incident's index.html.
"""

# Lazy imports: each command imports the library when it runs (imsnb/cli/__init__.py), so `imsnb --help` and a
# mistyped flag answer without loading pandas, papermill, psycopg or boto3 (tests/test_startup.py).

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from imsnb.findings import Severity, skipped_target, skipped_text
from imsnb.findings.escalation import escalation_text
from imsnb.runs.summary import status_word

SHOWN_AT_LEAST = Severity.WARNING  # findings a multi-run summary lists


def outcome_text(summary: dict[str, Any]) -> str:
    """ "completed in 11.0 s; worst finding ERROR", "failed after 3.2 s; worst finding so far WARNING"."""
    took = summary.get("duration_s")
    took = f"{took:.1f} s" if isinstance(took, (int, float)) else "?"
    status = summary.get("status")
    worst = summary.get("severity")
    if status == "ok":
        return f"completed in {took}; " + (f"worst finding {worst}" if worst else "no findings")
    return f"{status_word(status)} after {took}; " + (f"worst finding so far {worst}" if worst else "no findings")


def print_skipped(findings: Iterable[dict[str, Any]], indent: str = "  ") -> None:
    """The targets a run skipped for want of configuration, before anything else it found."""
    for f in findings:
        if skipped_target(f):
            print(f"{indent}not checked: {skipped_text(f)}")


def print_findings(findings: Iterable[dict[str, Any]], *, at_least: Severity = Severity.OK) -> None:
    """Findings worst first (the skipped targets left out: `print_skipped` lists them), one line each."""
    shown = [f for f in findings if not skipped_target(f) and Severity.parse(f["severity"]) >= at_least]
    for f in sorted(shown, key=lambda f: -Severity.parse(f["severity"])):
        print(f"  {f['severity']:<8} {f['check']:<30} {f['message']}{coverage_text(f)}")


_COVERS = re.compile(r"the [\w ]+? covers [^;]+? window")


def coverage_text(finding: dict[str, Any]) -> str:
    """' (the sample covers 10 s of the 5 min window)' for a finding whose period leaves part of the window out
    (`imsnb.sampling.start.uncovered_note`), else ''."""
    found = _COVERS.search(str((finding.get("period") or {}).get("note") or ""))
    return f" ({found[0]})" if found else ""


class ActionPrinter:
    """Prints each run's actions; why a plan was not applied ("both keys are missing: ...") is said in full the
    first time only, then referred to, so a demo of 14 runs says it once."""

    def __init__(self) -> None:
        self.said: set[str] = set()

    def __call__(self, actions: list[dict[str, Any]]) -> None:
        for a in actions or []:
            why = a.get("detail") or ""
            line = f"  action {a['status']:<8} {a['action']} {a['target']}: {a.get('reason') or ''}".rstrip(": ")
            if why and why in self.said:
                line += " (not applied, as above)" if why.startswith("not applied") else f" ({why})"
            elif why:
                self.said.add(why)
                line += f"\n           {why}"
            print(line)


def print_escalation(summary: dict[str, Any]) -> None:
    if summary.get("escalation"):
        esc = summary["escalation"]
        who = esc.get("on_call_name") or esc["on_call"]
        notify = escalation_text(esc["notification"])
        print(f"  escalation: {escalation_text(esc['escalation'])}; notify {notify}; on call: {who}")


def print_outcome(summary: dict[str, Any], actions: ActionPrinter | None = None) -> None:
    """A run's error, actions and escalation."""
    if summary.get("error"):
        print(f"  error: {summary['error']['ename']}: {summary['error']['evalue']}")
    (actions or ActionPrinter())(summary.get("actions") or [])
    print_escalation(summary)


def print_result(result: Any, actions: ActionPrinter | None = None, *, at_least: Severity = Severity.OK) -> None:
    """One run: the targets it skipped, its findings worst first, what happened, its outcome and its folder."""
    summary = result.summary
    print_skipped(summary["findings"])
    print_findings(summary["findings"], at_least=at_least)
    hidden = sum(1 for f in summary["findings"] if not skipped_target(f) and Severity.parse(f["severity"]) < at_least)
    if hidden:
        print(f"  (+{hidden} below {at_least.name}: in the report)")
    print(f"{summary['notebook']}: {outcome_text(summary)}")
    print_outcome(summary, actions)
    print(f"run folder: {result.folder}")


def progress_printer(names: list[str]) -> Callable[[Any], None]:
    """Several runs' progress display: one line per notebook as it finishes (what happened, its worst finding)."""
    done: list = []
    width = max((len(n) for n in names), default=8)

    def progress(result: Any) -> None:
        done.append(result)
        s = result.summary
        counter = f"[{len(done):>{len(str(len(names)))}}/{len(names)}]"
        print(f"{counter} {s['notebook']:<{width}}  {outcome_text(s)}", flush=True)

    return progress


def print_runs_summary(results: list[Any], elapsed: float | None = None, *, title: str | None = None) -> None:
    """Several runs under one incident, as `suite` and `triage --run-suggested` end: how they went, their findings
    at WARNING and above (skipped targets first), the worst severity with its escalation, and the index."""
    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.archive import INDEX

    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.runs.suite import worst_severity

    incident_dir = Path(results[0].folder).parent
    failed = [r.summary["notebook"] for r in results if r.status != "ok"]
    total = sum(r.summary["duration_s"] or 0 for r in results)
    timing = f" in {elapsed:.1f} s (sum of run times {total:.1f} s)" if elapsed is not None else ""
    worst = worst_severity(results)
    print(
        f"\n{title or f'incident {incident_dir.name}'}: {len(results)} run(s){timing}, "
        f"worst finding {worst or 'none'}" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    width = max(len(r.summary["notebook"]) for r in results)
    skipped = {skipped_text(f) for r in results for f in r.summary["findings"] if skipped_target(f)}
    for text in sorted(skipped):
        print(f"  not checked: {text}")
    for r in sorted(results, key=lambda r: -Severity.parse(r.summary["severity"] or "OK")):
        for f in sorted(r.summary["findings"], key=lambda f: -Severity.parse(f["severity"])):
            if Severity.parse(f["severity"]) >= SHOWN_AT_LEAST and not skipped_target(f):
                print(f"  {f['severity']:<8} {r.summary['notebook']:<{width}}  {f['check']}: {f['message']}")
    worst_run = max(results, key=lambda r: Severity.parse(r.summary["severity"] or "OK"))
    print_escalation(worst_run.summary)
    print(f"index: {incident_dir / INDEX}")
