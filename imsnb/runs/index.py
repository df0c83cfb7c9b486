"""The incident index: an incident's runs (from their summary.json), each run's window, the timeline of findings
and actions, the post-mortem and ticket, and index.html (rewritten after every run, atomically, under a lock).

The folder layout is drawn in `imsnb.archive`. Everything shown is read from the run folders, so the index can be
rebuilt at any time (`write_index`); the HTML is self-contained (no script, no network) and every value escaped.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imsnb import config
from imsnb.errors import ImsnbError
from imsnb.files import locked_folder, write_atomic
from imsnb.findings import Severity
from imsnb.runs.catalogue import find_notebook, load_info
from imsnb.runs.summary import status_word
from imsnb.scrub import scrub_tree
from imsnb.state.catalogue import remote_runs, worker_name
from imsnb.state.postmortems import Postmortem, shared_postmortem
from imsnb.window import parse_instant, resolve_window

INDEX = "index.html"
POSTMORTEM = "postmortem.json"
TICKET = "ticket.json"
POSTMORTEM_FIELDS = (
    ("root_cause", "Root cause"),
    ("impact", "Impact"),
    ("action_items", "Action items"),
    ("ticket", "Ticket"),
)


# ---------------------------------------------------------------- reading runs


def read_runs(incident_dir: Path) -> list[dict[str, Any]]:
    """Every finished run of an incident (summary.json plus `folder`), oldest first."""
    runs = []
    if not incident_dir.is_dir():
        return runs
    for folder in incident_dir.iterdir():
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict):
            runs.append({**summary, "folder": folder.name})
    return sorted(runs, key=lambda r: (str(r.get("started_at") or ""), r["folder"]))


def incident_runs(incident_dir: Path) -> list[dict[str, Any]]:
    """Every finished run of an incident, oldest first: this folder's (`read_runs`) and, with a shared store
    (IMSNB_STATE_URL), those other workers or outputs folders recorded in its catalogue (`remote: True`, with
    `worker` and `location`). A store that cannot be read is one warning; the local runs are shown all the same."""

    runs = read_runs(incident_dir)
    try:
        runs += remote_runs(incident_dir)
    except Exception as exc:  # noqa: BLE001 - the store never costs the local index
        logging.getLogger(__name__).warning("other workers' runs of %s not shown: %s", incident_dir.name, exc)
    return sorted(runs, key=lambda r: (str(r.get("started_at") or ""), r["folder"]))


def worst(severities: list[str | None]) -> str | None:
    """The worst severity's name among these (None when none is a severity)."""
    level = Severity.worst(severities, default=None)
    return None if level is None else level.name


def incident_window(runs: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The span the runs looked at: each run's window (`run_window`), merged."""
    spans = [span for span in map(run_window, runs) if span is not None]
    if not spans:
        return None
    return iso(min(start for start, _ in spans)), iso(max(end for _, end in spans))


def run_window(run: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """The window one run looked at: the `window` its summary.json records ({"start": ISO, "end": ISO}; every run
    folder written since the runner records it); for an older folder, rebuilt from its `start`/`end` or `window`
    parameters (ending at its start), with the notebook's default window when none was passed; None when neither
    can be read."""

    recorded = run.get("window")
    if isinstance(recorded, dict):
        try:
            return parse_instant(recorded["start"], "window.start"), parse_instant(recorded["end"], "window.end")
        except (ImsnbError, KeyError, TypeError, ValueError):
            pass
    # Fallback for run folders written before summary.json recorded the window: rebuilt from the parameters, with
    # the notebook's default `window` read back from the notebook catalogue (`_default_window`).
    params = run.get("parameters") or {}
    try:
        at = parse_instant(run["started_at"], "started_at") if run.get("started_at") else None
        span = params.get("window") or _default_window(str(run.get("notebook") or "")) or "1h"
        window = resolve_window(span, params.get("start") or None, params.get("end") or None, now=at)
    except (ImsnbError, TypeError, ValueError):
        return None
    return window.start, window.end


def run_window_text(run: dict[str, Any]) -> str:
    """'2026-02-08T15:00:00Z – 2026-02-08T15:30:00Z', or 'unknown'."""
    span = run_window(run)
    return f"{iso(span[0])} – {iso(span[1])}" if span else "unknown"


@functools.lru_cache(maxsize=64)
def _default_window(notebook: str) -> str | None:
    """The `window` a notebook uses when none is passed (papermill records only the parameters given)."""

    try:
        declared = load_info(find_notebook(notebook)).parameters.get("window")
    except ImsnbError:
        return None
    return declared.default if declared is not None and isinstance(declared.default, str) else None


def timeline(runs: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Findings above OK (at their run's start time) and actions (at the time they were planned), in time order."""
    events = []
    for run in runs:
        for f in run.get("findings") or []:
            if not isinstance(f, dict) or f.get("severity") in (None, "OK"):
                continue
            events.append(
                {
                    "at": str(run.get("started_at") or ""),
                    "source": str(run.get("notebook") or ""),
                    "kind": "finding",
                    "level": str(f.get("severity")),
                    "what": str(f.get("check") or ""),
                    "detail": str(f.get("message") or ""),
                }
            )
        for a in run.get("actions") or []:
            if not isinstance(a, dict):
                continue
            detail = "; ".join(
                str(part)
                for part in (
                    a.get("reason"),
                    a.get("detail"),
                    f"approved by {a['approver']}" if a.get("approver") else None,
                    _applying_note(a),
                    f"finished {a['finished_at']}" if a.get("finished_at") else None,
                )
                if part
            )
            target = f" {a['target']}" if a.get("target") else ""
            events.append(
                {
                    "at": str(a.get("planned_at") or run.get("started_at") or ""),
                    "source": str(run.get("notebook") or ""),
                    "kind": "action",
                    "level": str(a.get("status") or "planned"),
                    "what": f"{a.get('action') or '?'}{target}",
                    "detail": detail,
                }
            )
    return sorted(events, key=lambda e: e["at"])


def _applying_note(action: dict[str, Any]) -> str | None:
    """When the action began to act; for one still `applying` (the run died mid-action), that its outcome is unknown."""
    since = action.get("applying_at")
    if action.get("status") == "applying":
        return f"applying since {since or '?'}, outcome unknown: the run stopped mid-action; check the target"
    return f"started {since}" if since else None


def read_postmortem(incident_dir: Path) -> dict[str, str]:
    """The post-mortem fields people wrote (`incident_postmortem`): {} when none was written."""
    written = incident_postmortem(incident_dir)
    return written.fields if written is not None else {}


def incident_postmortem(incident_dir: Path) -> Postmortem | None:
    """The post-mortem people wrote in postmortem.json, scrubbed of every known secret (a pasted password or
    connection string must not reach index.html, nor the S3 upload that copies it): this folder's, or with a shared
    store the one written last on any worker (`imsnb.state.postmortems`). A store that cannot be used is one
    warning; this folder's is shown all the same."""
    local = _local_postmortem(Path(incident_dir))
    try:
        written = shared_postmortem(incident_dir, local)
    except Exception as exc:  # noqa: BLE001 - the store never costs the local post-mortem
        logging.getLogger(__name__).warning("post-mortem of other workers not read for %s: %s", incident_dir, exc)
        return local
    if written is None or written is local:
        return written
    # written on another worker, scrubbed there of that worker's secrets: scrubbed here of this one's too
    return replace(written, fields=scrub_tree(written.fields, config.secret_values()))


def _local_postmortem(incident_dir: Path) -> Postmortem | None:
    path = incident_dir / POSTMORTEM
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        written_at = path.stat().st_mtime
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    out = {}
    for key, _ in POSTMORTEM_FIELDS:
        value = data.get(key)
        if isinstance(value, list):
            value = "\n".join(f"- {item}" for item in value)
        if value:
            out[key] = str(value)
    fields = scrub_tree(out, config.secret_values())
    return Postmortem(fields, worker_name(), str(path.resolve()), written_at)


def read_ticket(incident_dir: Path) -> dict[str, str]:
    """ticket.json, written when a run's artifacts were attached to a Jira issue (`--ticket`): key and URL."""
    try:
        data = json.loads((incident_dir / TICKET).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not str(data.get("url") or "").startswith(("https://", "http://")):
        return {}
    return {"key": str(data.get("key") or data["url"]), "url": str(data["url"])}


_KEY = re.compile(r"(?:^|/browse/)([A-Z][A-Z0-9_]*-[1-9][0-9]*)/?$")


def ticket_key(incident_dir: Path) -> str | None:
    """The incident's Jira issue key, so that `--ticket new` opens one issue per incident, not one per run: the key
    ticket.json keeps (written when a run was attached), else the `ticket` people wrote in postmortem.json when it
    is an issue key or its /browse/ link; None when the incident has no issue yet."""
    ticket = read_ticket(incident_dir)
    for value in (ticket.get("key"), ticket.get("url")):
        found = _KEY.search(str(value or "").strip())
        if found:
            return found.group(1)
    found = _KEY.search(str(read_postmortem(incident_dir).get("ticket") or "").strip())
    return found.group(1) if found else None


# ---------------------------------------------------------------- index.html

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.n{text-align:right;white-space:nowrap} .t{white-space:nowrap}
.OK{background:#e6f4e6}.INFO{background:#e8f0fb}.WARNING{background:#fff3cd}
.ERROR{background:#f8d7da}.CRITICAL{background:#f1aeb5;font-weight:bold}
.failed,.timeout{background:#f8d7da} .applying{background:#f1aeb5;font-weight:bold}
.note{color:#666;font-size:.9em} td.w{min-width:16em} td.d{min-width:20em;overflow-wrap:anywhere}
td.f{overflow-wrap:anywhere}
dl.postmortem dt{font-weight:bold;margin-top:.8em} dl.postmortem dd{margin:.2em 0 0 1em;white-space:pre-wrap}
.unwritten{color:#888;font-style:italic} pre{background:#f7f7f7;padding:.5em .8em;white-space:pre-wrap}
"""


def render_index(
    incident_id: str,
    runs: list[dict[str, Any]],
    postmortem: dict[str, str] | None = None,
    ticket: dict[str, str] | None = None,
    *,
    postmortem_from: str = "",
    archived: Callable[[dict[str, Any]], str | None] | None = None,
) -> str:
    """The incident's index page (every value escaped, nothing fetched). `postmortem_from`: where the post-mortem
    was written when not in this folder. `archived`: for the archive's copy, each run's folder name there (None:
    not in the archive); without it, this folder's runs are linked by their folder names."""
    e = html.escape
    ticket_line = f'<p>Ticket: <a class=ticket href="{e(ticket["url"])}">{e(ticket["key"])}</a></p>\n' if ticket else ""
    window = incident_window(runs)
    worst_seen = worst([r.get("severity") for r in runs]) or "none"
    rows = [_run_row(run, archived) for run in runs]
    events = [
        f"<tr><td class=t>{e(ev['at'])}</td><td>{e(ev['source'])}</td><td>{e(ev['kind'])}</td>"
        f'<td class="{e(ev["level"])}">{e(ev["level"])}</td><td class=w>{e(ev["what"])}</td>'
        f"<td class=d>{e(ev['detail'])}</td></tr>"
        for ev in timeline(runs)
    ]
    postmortem = postmortem or {}
    fields = "".join(
        f"<dt>{e(label)}</dt>"
        + (f"<dd>{e(postmortem[key])}</dd>" if postmortem.get(key) else "<dd class=unwritten>not written yet</dd>")
        for key, label in POSTMORTEM_FIELDS
    )
    template = e(json.dumps({key: postmortem.get(key, "") for key, _ in POSTMORTEM_FIELDS}, indent=2))
    window_text = f"{e(window[0])} – {e(window[1])}" if window else "unknown"
    origin = f"<p class=note>Post-mortem as written {e(postmortem_from)}.</p>" if postmortem_from else ""
    no_runs = "<tr><td colspan=7>no finished runs</td></tr>"
    no_events = "<tr><td colspan=6>no findings above OK and no actions</td></tr>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Incident {e(incident_id)}</title><style>{_CSS}</style></head>
<body>
<h1>Incident {e(incident_id)}</h1>
<p>Time window: {window_text} · runs: {len(runs)} · worst finding: <span class="{e(worst_seen)}">{e(worst_seen)}</span>
· index written {e(iso(datetime.now(UTC)))}</p>
{ticket_line}<h2>Runs</h2>
<table><thead><tr><th>started (UTC)</th><th>notebook (report)</th><th>run</th><th>worst finding</th>
<th>duration (s)</th><th>window (UTC)</th><th>files</th></tr></thead><tbody>{"".join(rows) or no_runs}</tbody></table>
<h2>Post-mortem</h2>
<h3>Timeline of findings and actions</h3>
<table><thead><tr><th>time (UTC)</th><th>notebook</th><th>kind</th><th>severity / status</th><th>what</th>
<th>detail</th></tr></thead><tbody>{"".join(events) or no_events}</tbody></table>
<h3>Root cause and follow-up</h3>
<p class=note>Document the root cause and create a ticket (runbook). This page is rewritten after every run and
cannot keep what is typed into it: write the post-mortem in <code>{POSTMORTEM}</code> in this folder (keys:
{", ".join(k for k, _ in POSTMORTEM_FIELDS)}); the next run shows it here.</p>
{origin}<dl class=postmortem>{fields}</dl>
<details><summary>{POSTMORTEM} to start from</summary><pre>{template}</pre></details>
</body></html>
"""


def _run_row(run: dict[str, Any], archived: Callable[[dict[str, Any]], str | None] | None) -> str:
    """One run's row: linked where its folder is (this folder's, or its name in the archive), else said where it is."""
    e = html.escape
    status, severity = str(run.get("status") or "?"), str(run.get("severity") or "none")
    name = e(str(run.get("notebook") or run["folder"]))
    folder = archived(run) if archived is not None else (None if run.get("remote") else run["folder"])
    if folder is not None:
        link = e(quote(folder))
        notebook = f'<a href="{link}/report.html">{name}</a>'
        files = f'<a href="{link}/notebook.ipynb">notebook</a> · <a href="{link}/summary.json">summary</a>'
    else:  # another worker's folder, or one not in the archive: said where it is, not linked
        notebook = name
        worker, location = run.get("worker") or worker_name(), run.get("location") or run["folder"]
        where = f"on {e(str(worker))}: <code>{e(str(location))}</code>"
        files = f"not in this archive; {where}" if archived is not None else where
    return (
        f"<tr><td class=t>{e(str(run.get('started_at') or ''))}</td><td class=t>{notebook}</td>"
        f'<td class="t {e(status)}">{e(status_word(status))}</td><td class="{e(severity)}">{e(severity)}</td>'
        f"<td class=n>{e(seconds_text(run.get('duration_s')))}</td><td class=t>{e(run_window_text(run))}</td>"
        f"<td class=f>{files}</td></tr>"
    )


def write_index(incident_dir: Path | str) -> Path:
    """Rebuild <incident>/index.html from the run folders (and other workers' runs in a shared store's catalogue);
    atomic (temp file + rename), serialised by a lock
    so concurrent runs of the same incident never leave an index missing one of them."""
    incident_dir = Path(incident_dir)
    incident_dir.mkdir(parents=True, exist_ok=True)
    target = incident_dir / INDEX
    with locked_folder(incident_dir):
        write_atomic(target, render_incident(incident_dir))
    return target


def render_incident(incident_dir: Path, archived: Callable[[dict[str, Any]], str | None] | None = None) -> str:
    """`render_index` of the incident folder: its runs and other workers' (`incident_runs`), the post-mortem written
    last, the ticket; `archived` as `render_index` takes it (the archive's copy)."""
    written = incident_postmortem(incident_dir)
    origin = ""
    elsewhere = written is not None and (
        written.worker != worker_name() or Path(written.location).parent != incident_dir.resolve()
    )
    if written is not None and elsewhere:
        at = iso(datetime.fromtimestamp(written.written_at, UTC))
        origin = f"on {written.worker} in {written.location} (last modified {at})"
    return render_index(
        incident_dir.name,
        incident_runs(incident_dir),
        written.fields if written is not None else {},
        read_ticket(incident_dir),
        postmortem_from=origin,
        archived=archived,
    )


def seconds_text(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "?"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
