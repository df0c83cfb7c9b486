"""Incidents in the archive: list them (`imsnb archive list`), load one, describe it (`imsnb archive show`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imsnb.errors import BadParameter
from imsnb.runs.index import INDEX, incident_runs, incident_window, read_runs, seconds_text, timeline, worst
from imsnb.runs.parameters import check_incident_id
from imsnb.runs.summary import status_word
from imsnb.state.catalogue import remote_incidents, shared_store


@dataclass
class Incident:
    id: str
    folder: Path
    runs: list[dict[str, Any]]

    @property
    def worst(self) -> str | None:
        return worst([r.get("severity") for r in self.runs])

    @property
    def last_started(self) -> str:
        return max((str(r.get("started_at") or "") for r in self.runs), default="")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.runs if r.get("status") != "ok")


def list_incidents(outputs: Path | str = "outputs") -> list[Incident]:
    """Incidents with at least one finished run, newest (latest run start) first: this outputs folder's and, with a
    shared store (IMSNB_STATE_URL), those in its run catalogue from other workers (their runs counted in)."""

    outputs = Path(outputs)
    store = shared_store()
    if not outputs.is_dir() and store is None:
        raise BadParameter(f"no archive at {outputs}: run a notebook first, or pass --outputs DIR")
    found: dict[str, Incident] = {}
    for folder in outputs.iterdir() if outputs.is_dir() else ():
        if folder.is_dir() and not folder.name.startswith("."):
            runs = read_runs(folder)
            if runs:
                found[folder.name] = Incident(folder.name, folder, runs)
    try:
        remote = remote_incidents(outputs, store) if store is not None else {}
    except Exception as exc:  # noqa: BLE001 - the store never costs the local listing
        logging.getLogger(__name__).warning("other workers' incidents not listed: %s", exc)
        remote = {}
    for incident, runs in remote.items():
        found.setdefault(incident, Incident(incident, outputs / incident, [])).runs.extend(runs)
    return sorted(found.values(), key=lambda i: (i.last_started, i.id), reverse=True)


def load_incident(incident_id: str, outputs: Path | str = "outputs") -> Incident:
    check_incident_id(incident_id)
    folder = Path(outputs) / incident_id
    runs = incident_runs(folder)
    if not runs:
        known = ", ".join(i.id for i in list_incidents(outputs)[:10]) if Path(outputs).is_dir() else ""
        raise BadParameter(f"no runs for incident {incident_id!r} in {outputs}: see `imsnb archive list` ({known})")
    return Incident(incident_id, folder, runs)


def describe_incident(incident: Incident) -> list[str]:
    """Lines for `imsnb archive show`: window, runs, findings above OK, actions."""
    window = incident_window(incident.runs)
    lines = [
        f"incident {incident.id}: {len(incident.runs)} run(s), worst finding {incident.worst or 'none'}",
        f"window: {window[0]} – {window[1]}" if window else "window: unknown",
        f"index: {incident.folder / INDEX}",
        "",
        "runs:",
    ]
    for run in incident.runs:
        status = status_word(run.get("status"))
        where = f"on {run.get('worker')}: {run.get('location')}" if run.get("remote") else run["folder"]
        lines.append(
            f"  {run.get('started_at') or '?':<21} {run.get('notebook') or '?':<22} {status:<10}"
            f"{run.get('severity') or 'none':<9}{seconds_text(run.get('duration_s')):>8} s  {where}"
        )
    events = timeline(incident.runs)
    lines += ["", "findings and actions:" if events else "findings and actions: none above OK"]
    for ev in events:
        lines.append(f"  {ev['at']:<21} {ev['source']:<22} {ev['level']:<9}{ev['what']}: {ev['detail']}")
    return lines
