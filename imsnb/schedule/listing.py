"""`imsnb schedule list`: each schedule with its next runs and its last run in the local archive (times in UTC)."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imsnb.archive import read_runs
from imsnb.errors import ImsnbError
from imsnb.runs.catalogue import find_notebook, load_info
from imsnb.runs.parameters import validate
from imsnb.schedule.timetable import Schedule, next_runs


def _incident_regex(schedule: Schedule) -> re.Pattern:
    known = {"schedule": schedule.name, "notebook": schedule.notebook, "environment": schedule.environment}
    parts = []
    for literal, name, _, _ in string.Formatter().parse(schedule.incident):
        parts.append(re.escape(literal))
        if name in known:
            parts.append(re.escape(known[name]))
        elif name == "date":
            parts.append(r"\d{8}")
        elif name == "month":
            parts.append(r"\d{6}")
    return re.compile("".join(parts))


def last_run(schedule: Schedule, outputs: Path | str = "outputs") -> dict[str, Any] | None:
    """The newest run of this schedule in the local archive (summary.json plus `folder`, the run folder's path), or
    None. A run is this schedule's when its incident matches the pattern, its notebook is the schedule's and its
    recorded parameters include the schedule's (two schedules of one notebook differ by parameters/environment)."""

    outputs = Path(outputs)
    if not outputs.is_dir():
        return None
    try:
        expected = validate(load_info(find_notebook(schedule.notebook)), schedule.run_parameters())
    except ImsnbError:
        expected = schedule.run_parameters()
    pattern = _incident_regex(schedule)
    newest = None
    for incident in outputs.iterdir():
        if incident.name.startswith(".") or not incident.is_dir() or not pattern.fullmatch(incident.name):
            continue
        for run in read_runs(incident):
            recorded = run.get("parameters") or {}
            if run.get("notebook") != schedule.notebook:
                continue
            if any(recorded.get(k) != v for k, v in expected.items()):
                continue
            key = (str(run.get("started_at") or ""), run["folder"])
            if newest is None or key > newest[0]:
                newest = (key, {**run, "folder": str(incident / run["folder"])})
    return newest[1] if newest else None


def describe_schedules(
    schedules: dict[str, Schedule], outputs: Path | str = "outputs", now: datetime | None = None
) -> list[str]:
    """Lines for `imsnb schedule list`: each schedule, its next three runs and its last run (times in UTC)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    source = next(iter(schedules.values())).source if schedules else "imsnb.toml"
    lines = [f"schedules from {source}; every time is UTC (now {_iso(now)})"]
    if not schedules:
        lines.append("  none: the file's [schedules] table is empty")
    for s in schedules.values():
        extra = "" if s.environment == "default" else f", environment {s.environment}"
        params = " ".join(f"-p {k} {v}" for k, v in s.parameters.items())
        lines.append("")
        lines.append(f"{s.name}: notebook {s.notebook}, cron {s.cron!r} UTC{extra}{', ' + params if params else ''}")
        lines.append(f"    next runs (UTC): {', '.join(_iso(t) for t in next_runs(s, now))}")
        last = last_run(s, outputs)
        if last is None:
            lines.append(f"    last run: none in {outputs}")
        else:
            lines.append(
                f"    last run: {last.get('started_at') or '?'} (UTC), status {last.get('status') or '?'}, "
                f"worst {last.get('severity') or 'none'}, {last['folder']}"
            )
        archive = s.archive_url()
        lines.append(f"    incident {s.incident}, archive {archive or 'none (local only)'}")
    return lines


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
