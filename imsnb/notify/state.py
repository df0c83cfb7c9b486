"""What was last notified, per target and check, kept in the archive so a scheduled run notifies on change only.

    outputs/.notify-state.json
        {"version": 1,
         "checks": {"<target>|<check>": {"target", "check", "notebook", "severity", "paged", "since", "updated"}},
         "failed": ["slack"]}          # destinations whose last message failed: retried on the next run

A small JSON file, rewritten atomically under a lock on the outputs folder: it survives restarts, and two runs
finishing together never lose each other's update.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imsnb.files import write_atomic
from imsnb.findings import Severity, escalation_for

STATE_FILE = ".notify-state.json"


@contextmanager
def locked(outputs: Path) -> Iterator[dict[str, Any]]:
    """The state, read under an exclusive lock and written back (atomically) when the block ends without error."""
    outputs.mkdir(parents=True, exist_ok=True)
    lock = os.open(outputs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = read(outputs)
        yield state
        write(outputs, state)
    finally:
        os.close(lock)


def read(outputs: Path) -> dict[str, Any]:
    try:
        data = json.loads((outputs / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict) or not isinstance(data.get("checks"), dict):
        data = {}
    return {"version": 1, "checks": data.get("checks", {}), "failed": list(data.get("failed") or [])}


def write(outputs: Path, state: dict[str, Any]) -> None:
    write_atomic(outputs / STATE_FILE, json.dumps(state, indent=1, sort_keys=True), mode=0o600)


def key_of(target: str, check: str) -> str:
    return f"{target}|{check}"


def pages(severity: str) -> bool:
    return escalation_for(severity).page


@dataclass
class Diff:
    """What changed between the state and these runs' findings."""

    current: dict[str, dict[str, Any]]  # key -> the worst finding for it in these runs (any severity)
    changes: list[str] = field(default_factory=list)  # new, escalated, de-escalated (human lines)
    changed_keys: set[str] = field(default_factory=set)
    resolved: list[dict[str, Any]] = field(default_factory=list)  # were at min_severity or above, now below
    to_resolve: list[dict[str, Any]] = field(default_factory=list)  # paged before, below paging level now

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.resolved)


def compare(state: dict[str, Any], findings: list[dict[str, Any]], ok_notebooks: set[str], minimum: Severity) -> Diff:
    """`findings` carry `target` and `notebook`; `ok_notebooks` completed, so a check they no longer report is
    taken as cleared (a failed run clears nothing it did not report)."""
    current: dict[str, dict[str, Any]] = {}
    for f in findings:
        key = key_of(f["target"], f["check"])
        if key not in current or Severity.parse(f["severity"]) > Severity.parse(current[key]["severity"]):
            current[key] = f
    diff = Diff(current)
    previous = state["checks"]
    for key, f in current.items():
        now = Severity.parse(f["severity"])
        old = previous.get(key)
        was = Severity.parse(old["severity"]) if old else None
        where = f"{f['check']} on {f['target']}"
        if now >= minimum:
            if was is None or was < minimum:
                diff.changes.append(f"new {now.name}: {where}")
            elif now > was:
                diff.changes.append(f"escalated {was.name} -> {now.name}: {where}")
            elif now < was:
                diff.changes.append(f"de-escalated {was.name} -> {now.name}: {where}")
            if was is None or now != was:
                diff.changed_keys.add(key)
        elif was is not None and was >= minimum:
            diff.resolved.append({"key": key, "target": f["target"], "check": f["check"], "was": was.name})
    for key, old in previous.items():
        if key in current:
            continue
        if old.get("notebook") in ok_notebooks and Severity.parse(old["severity"]) >= minimum:
            diff.resolved.append({"key": key, "target": old["target"], "check": old["check"], "was": old["severity"]})
    for key, old in previous.items():
        if not old.get("paged"):
            continue
        now_f = current.get(key)
        cleared = now_f is None and old.get("notebook") in ok_notebooks
        if cleared or (now_f is not None and not pages(now_f["severity"])):
            diff.to_resolve.append({"key": key, "target": old["target"], "check": old["check"]})
    return diff


def update(
    state: dict[str, Any],
    diff: Diff,
    minimum: Severity,
    *,
    paged: set[str],
    unresolved: set[str],
    at: str,
) -> None:
    """Advance the state: keys at `minimum` or above are kept with their severity, cleared ones are dropped unless
    their PagerDuty resolve failed (`unresolved`: kept, so the next run resolves them again)."""
    checks = state["checks"]
    for key, f in diff.current.items():
        old = checks.get(key) or {}
        now = Severity.parse(f["severity"])
        still_paged = bool(old.get("paged")) and pages(f["severity"]) or key in paged or key in unresolved
        if now >= minimum or key in unresolved:
            same = old.get("severity") == now.name
            checks[key] = {
                "target": f["target"],
                "check": f["check"],
                "notebook": f["notebook"],
                "severity": now.name,
                "paged": still_paged,
                "since": old.get("since") if same and old.get("since") else at,
                "updated": at,
            }
        else:
            checks.pop(key, None)
    for item in diff.resolved:
        if item["key"] in diff.current:
            continue
        if item["key"] in unresolved and item["key"] in checks:  # told as resolved; only the page is left open
            checks[item["key"]].update(severity=Severity.OK.name, updated=at)
        else:
            checks.pop(item["key"], None)
    for item in diff.to_resolve:
        if item["key"] in checks and item["key"] not in unresolved:
            if Severity.parse(checks[item["key"]]["severity"]) >= minimum:
                checks[item["key"]]["paged"] = False
            else:
                checks.pop(item["key"], None)
