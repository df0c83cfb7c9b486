"""A post-mortem draft from the incident's archive (the runbook's "Perform post-mortems"), as Markdown:

    summary · impact window · detection · timeline of findings and actions · the causes imsnb named ·
    actions taken, with their approvers · open action items

Everything comes from the runs' summary.json files and the postmortem.json people wrote (root cause, impact, action
items), so it can be drafted again at any time; what only people know is left as a marked gap, never invented.
Every known secret is scrubbed from the text. `write_postmortem_draft` writes it as outputs/<incident>/postmortem.md
(atomically), where `--ticket` can attach it like any other file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from imsnb import config
from imsnb.archive.incidents import Incident, load_incident
from imsnb.files import write_atomic
from imsnb.findings import Severity
from imsnb.runs.index import incident_window, read_postmortem, read_ticket, timeline
from imsnb.scrub import scrub

DRAFT = "postmortem.md"
GAP = "_(to be written)_"
# Findings that name a cause rather than a symptom, when at WARNING or worse.
CAUSE_CHECKS = (
    "aws.change_correlation",
    "postgres.statement_regression",
    "postgres.blocked_queries",
    "aws.rds.bottleneck",
    "host.process_growth",
    "host.oom_kills",
    "api.third_party_status",
)
TAKEN = ("applied", "failed", "applying", "skipped")  # what was attempted; `planned` is listed apart
MAX_TIMELINE_ROWS = 200


def _cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return " ".join(str(value if value is not None else "").split()).replace("|", "\\|")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


def _findings(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(run, finding) for every finding above OK, oldest run first."""
    found = []
    for run in runs:
        for item in run.get("findings") or []:
            if isinstance(item, dict) and item.get("severity") not in (None, "OK"):
                found.append((run, item))
    return found


def _level(finding: dict[str, Any]) -> Severity:
    try:
        return Severity.parse(finding.get("severity") or "OK")
    except ValueError:
        return Severity.OK


def _actions(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(run, a) for run in runs for a in run.get("actions") or [] if isinstance(a, dict)]


def _minutes(window: tuple[str, str]) -> str:
    try:
        start, end = (datetime.fromisoformat(w.replace("Z", "+00:00")) for w in window)
    except ValueError:
        return ""
    return f" ({(end - start).total_seconds() / 60:.0f} min)"


def postmortem_draft(incident: Incident) -> str:
    """The draft's Markdown text for one incident of the archive (secrets scrubbed)."""
    runs = incident.runs
    written = read_postmortem(incident.folder)
    findings = _findings(runs)
    lines = [
        f"# Post-mortem draft: {incident.id}",
        "",
        f"Drafted by imsnb from {len(runs)} archived run(s) of this incident; each {GAP} is for people to fill.",
        "",
        *_summary(incident, findings, written),
        *_impact_window(runs, written),
        *_detection(runs, findings),
        *_timeline(runs),
        *_causes(findings),
        *_actions_taken(runs),
        *_open_items(runs, written),
    ]
    return scrub("\n".join(lines) + "\n", config.secret_values())


def _summary(incident: Incident, findings: list[tuple[dict, dict]], written: dict[str, Any]) -> list[str]:
    """The worst severity, the ticket, the three worst findings and the root cause people write."""
    ticket = read_ticket(incident.folder)
    lines = ["## Summary", ""]
    top = sorted(findings, key=lambda rf: -_level(rf[1]))[:3]
    worst = incident.worst or "OK"
    lines.append(f"Worst severity: **{worst}**." + (f" Ticket: [{ticket['key']}]({ticket['url']})." if ticket else ""))
    lines += [f"- {f.get('severity')} `{f.get('check')}`: {_cell(f.get('message'))}" for _, f in top] or [
        "- no finding above OK in any run"
    ]
    return [*lines, "", f"Root cause: {written.get('root_cause') or GAP}", ""]


def _impact_window(runs: list[dict[str, Any]], written: dict[str, Any]) -> list[str]:
    window = incident_window(runs)
    looked = f"What the runs looked at: {window[0]} – {window[1]} UTC{_minutes(window)}." if window else "No run says."
    return ["## Impact window", "", looked, "", f"Impact: {written.get('impact') or GAP}", ""]


def _detection(runs: list[dict[str, Any]], findings: list[tuple[dict, dict]]) -> list[str]:
    """The first run, and the first finding above OK."""
    lines = ["## Detection", ""]
    first = runs[0] if runs else {}
    worst_first = first.get("severity") or "none"
    lines.append(f"First imsnb run: `{first.get('notebook')}` at {first.get('started_at')} (worst {worst_first}).")
    if findings:
        run, found = findings[0]
        lines.append(
            f"First finding above OK: {found.get('severity')} `{found.get('check')}` in `{run.get('notebook')}` "
            f"at {run.get('started_at')}: {_cell(found.get('message'))}"
        )
    return [*lines, "", "How it was noticed (alert, customer, schedule): " + GAP, ""]


def _timeline(runs: list[dict[str, Any]]) -> list[str]:
    lines = ["## Timeline (UTC)", ""]
    events = timeline(runs)
    rows = [[e["at"], e["source"], e["level"], e["what"], e["detail"]] for e in events[:MAX_TIMELINE_ROWS]]
    lines += _table(["at", "notebook", "level", "what", "detail"], rows) if rows else ["Nothing above OK, no action."]
    if len(events) > MAX_TIMELINE_ROWS:
        lines.append(f"\n_{len(events) - MAX_TIMELINE_ROWS} later event(s) left out: see index.html._")
    return [*lines, ""]


def _causes(findings: list[tuple[dict, dict]]) -> list[str]:
    causes = [(r, f) for r, f in findings if f.get("check") in CAUSE_CHECKS and _level(f) >= Severity.WARNING]
    return [
        "## Causes imsnb named",
        "",
        *(
            [
                f"- `{f.get('check')}` ({r.get('notebook')}, {r.get('started_at')}): {_cell(f.get('message'))}"
                for r, f in causes
            ]
            or ["- none: imsnb named no cause in these runs"]
        ),
        "",
    ]


def _actions_taken(runs: list[dict[str, Any]]) -> list[str]:
    """The actions applied (or left applying), with who approved them; then the ones only planned."""
    lines = ["## Actions taken", ""]
    taken = [a for _, a in _actions(runs) if a.get("status") in TAKEN]
    rows = [
        [
            a.get("applying_at") or a.get("finished_at") or a.get("planned_at"),
            a.get("action"),
            a.get("target"),
            a.get("status"),
            a.get("approver") or "",
            a.get("detail") or "",
        ]
        for a in taken
    ]
    lines += _table(["at", "action", "target", "status", "approved by", "detail"], rows) if rows else ["None."]
    planned = [a for _, a in _actions(runs) if a.get("status") == "planned"]
    if planned:
        lines += ["", "Planned, not applied: " + "; ".join(f"{a.get('action')} on {a.get('target')}" for a in planned)]
    return [*lines, ""]


def _open_items(runs: list[dict[str, Any]], written: dict[str, Any]) -> list[str]:
    """What is still open: actions left applying, findings at ERROR in each notebook's last run, people's items."""
    items = [
        f"- [ ] check {a.get('target')} by hand: {a.get('action')} was still `applying` when its run stopped"
        for _, a in _actions(runs)
        if a.get("status") == "applying"
    ]
    last = {run.get("notebook"): run for run in runs}  # each notebook's latest run says what is still open
    for run in last.values():
        items += [
            f"- [ ] still {f.get('severity')} at the last `{run.get('notebook')}` run: `{f.get('check')}`"
            for f in run.get("findings") or []
            if isinstance(f, dict) and _level(f) >= Severity.ERROR
        ]
    written_items = written.get("action_items")
    if written_items:
        items += [f"- [ ] {line.removeprefix('- ')}" for line in written_items.splitlines() if line.strip()]
    items.append("- [ ] the permanent fix, as a Jira ticket (the runbook's post-incident step) " + GAP)
    return ["## Open action items", "", *items]


def write_postmortem_draft(incident_id: str, outputs: Path | str = "outputs") -> Path:
    """Draft the incident's post-mortem into outputs/<incident>/postmortem.md; its path. BadParameter (one line)
    for an incident the archive does not have."""

    incident = load_incident(incident_id, outputs)
    return write_atomic(incident.folder / DRAFT, postmortem_draft(incident))
