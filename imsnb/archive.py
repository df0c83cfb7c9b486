"""The incident archive: one folder per incident, an index.html over its runs, listing, and upload to S3.

    outputs/<incident>/
        index.html          runs, time window, and a post-mortem section (rewritten after every run, atomically)
        postmortem.json     optional, written by people: root cause, impact, action items, ticket (shown in index)
        <time>-<notebook>/  one folder per run (see imsnb.runs.folder)

Everything shown comes from the runs' summary.json files, so the index can be rebuilt at any time
(`write_index`). The HTML is self-contained (inline CSS, no script, no network) and every value is escaped.
"""

from __future__ import annotations

import fcntl
import functools
import html
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imsnb.errors import BadParameter, ImsnbError
from imsnb.findings import Severity

INDEX = "index.html"
POSTMORTEM = "postmortem.json"
TICKET = "ticket.json"
RUN_FILES = ("notebook.ipynb", "report.html", "summary.json")
POSTMORTEM_FIELDS = (
    ("root_cause", "Root cause"),
    ("impact", "Impact"),
    ("action_items", "Action items"),
    ("ticket", "Ticket"),
)
_S3_URL = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".ipynb": "application/json"}


class UploadFailed(ImsnbError):
    """The archive upload did not complete; the local run folders are untouched."""


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


def worst(severities: list[str | None]) -> str | None:
    levels = []
    for text in severities:
        try:
            levels.append(Severity.parse(text))
        except ValueError:
            continue
    return max(levels).name if levels else None


def incident_window(runs: list[dict[str, Any]]) -> tuple[str, str] | None:
    """The span the runs looked at: each run's `start`/`end` or `window` (ending at its start; the notebook's
    default window when none was passed), merged."""
    from imsnb.window import parse_instant, resolve_window

    starts, ends = [], []
    for run in runs:
        params = run.get("parameters") or {}
        try:
            at = parse_instant(run["started_at"], "started_at") if run.get("started_at") else None
            span = params.get("window") or _default_window(str(run.get("notebook") or "")) or "1h"
            window = resolve_window(span, params.get("start") or None, params.get("end") or None, now=at)
        except (ImsnbError, TypeError, ValueError):
            continue
        starts.append(window.start)
        ends.append(window.end)
    if not starts:
        return None
    return _iso(min(starts)), _iso(max(ends))


@functools.lru_cache(maxsize=64)
def _default_window(notebook: str) -> str | None:
    """The `window` a notebook uses when none is passed (papermill records only the parameters given)."""
    from imsnb.runs.catalogue import find_notebook, load_info

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
    """The post-mortem fields people wrote in postmortem.json, scrubbed of every known secret (a pasted password or
    connection string must not reach index.html, nor the S3 upload that copies it)."""
    from imsnb import config
    from imsnb.runs.scrub import scrub_tree

    try:
        data = json.loads((incident_dir / POSTMORTEM).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    out = {}
    for key, _ in POSTMORTEM_FIELDS:
        value = data.get(key)
        if isinstance(value, list):
            value = "\n".join(f"- {item}" for item in value)
        if value:
            out[key] = str(value)
    return scrub_tree(out, config.secret_values())


def read_ticket(incident_dir: Path) -> dict[str, str]:
    """ticket.json, written when a run's artifacts were attached to a Jira issue (`--ticket`): key and URL."""
    try:
        data = json.loads((incident_dir / TICKET).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not str(data.get("url") or "").startswith(("https://", "http://")):
        return {}
    return {"key": str(data.get("key") or data["url"]), "url": str(data["url"])}


# ---------------------------------------------------------------- index.html

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:72em}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.n{text-align:right;white-space:nowrap} .t{white-space:nowrap}
.OK{background:#e6f4e6}.INFO{background:#e8f0fb}.WARNING{background:#fff3cd}
.ERROR{background:#f8d7da}.CRITICAL{background:#f1aeb5;font-weight:bold}
.failed,.timeout{background:#f8d7da} .applying{background:#f1aeb5;font-weight:bold}
textarea{width:100%;min-height:4em;font:inherit} label{font-weight:bold;display:block;margin-top:.8em}
.note{color:#666;font-size:.9em}
"""


def render_index(
    incident_id: str,
    runs: list[dict[str, Any]],
    postmortem: dict[str, str] | None = None,
    ticket: dict[str, str] | None = None,
) -> str:
    """The incident's index page (every value escaped, nothing fetched)."""
    e = html.escape
    ticket_line = f'<p>Ticket: <a class=ticket href="{e(ticket["url"])}">{e(ticket["key"])}</a></p>\n' if ticket else ""
    window = incident_window(runs)
    worst_seen = worst([r.get("severity") for r in runs]) or "none"
    rows = []
    for run in runs:
        link = quote(run["folder"])
        status, severity = str(run.get("status") or "?"), str(run.get("severity") or "none")
        rows.append(
            f"<tr><td class=t>{e(str(run.get('started_at') or ''))}</td>"
            f'<td><a href="{e(link)}/report.html">{e(str(run.get("notebook") or run["folder"]))}</a></td>'
            f'<td class="{e(status)}">{e(status)}</td><td class="{e(severity)}">{e(severity)}</td>'
            f"<td class=n>{e(_seconds(run.get('duration_s')))}</td>"
            f'<td><a href="{e(link)}/notebook.ipynb">notebook</a> · <a href="{e(link)}/summary.json">summary</a></td>'
            "</tr>"
        )
    events = [
        f"<tr><td class=t>{e(ev['at'])}</td><td>{e(ev['source'])}</td><td>{e(ev['kind'])}</td>"
        f'<td class="{e(ev["level"])}">{e(ev["level"])}</td><td>{e(ev["what"])}</td><td>{e(ev["detail"])}</td></tr>'
        for ev in timeline(runs)
    ]
    postmortem = postmortem or {}
    fields = "".join(
        f'<label for="{key}">{e(label)}</label><textarea id="{key}" name="{key}" '
        f'placeholder="{e(label)}: to be filled in">{e(postmortem.get(key, ""))}</textarea>'
        for key, label in POSTMORTEM_FIELDS
    )
    window_text = f"{e(window[0])} – {e(window[1])}" if window else "unknown"
    no_runs = "<tr><td colspan=6>no finished runs</td></tr>"
    no_events = "<tr><td colspan=6>no findings above OK and no actions</td></tr>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Incident {e(incident_id)}</title><style>{_CSS}</style></head>
<body>
<h1>Incident {e(incident_id)}</h1>
<p>Time window: {window_text} · runs: {len(runs)} · worst severity: <span class="{e(worst_seen)}">{e(worst_seen)}</span>
· index written {e(_iso(datetime.now(UTC)))}</p>
{ticket_line}<h2>Runs</h2>
<table><thead><tr><th>started (UTC)</th><th>notebook (report)</th><th>status</th><th>severity</th>
<th>duration (s)</th><th>files</th></tr></thead><tbody>{"".join(rows) or no_runs}</tbody></table>
<h2>Post-mortem</h2>
<h3>Timeline of findings and actions</h3>
<table><thead><tr><th>time (UTC)</th><th>notebook</th><th>kind</th><th>severity / status</th><th>what</th>
<th>detail</th></tr></thead><tbody>{"".join(events) or no_events}</tbody></table>
<h3>Root cause and follow-up</h3>
<p class=note>Document the root cause and create a ticket (runbook). To keep what you write here across index
rewrites, put it in <code>{POSTMORTEM}</code> in this folder (keys: {", ".join(k for k, _ in POSTMORTEM_FIELDS)}).</p>
<form>{fields}</form>
</body></html>
"""


def write_index(incident_dir: Path | str) -> Path:
    """Rebuild <incident>/index.html from the run folders; atomic (temp file + rename), serialised by a lock
    so concurrent runs of the same incident never leave an index missing one of them."""
    incident_dir = Path(incident_dir)
    incident_dir.mkdir(parents=True, exist_ok=True)
    target = incident_dir / INDEX
    lock = os.open(incident_dir, os.O_RDONLY | os.O_DIRECTORY)  # flock on the folder itself: no lock file left
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = render_index(
            incident_dir.name, read_runs(incident_dir), read_postmortem(incident_dir), read_ticket(incident_dir)
        )
        fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".html", dir=incident_dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    finally:
        os.close(lock)  # releases the lock
    return target


# ---------------------------------------------------------------- list / show


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
    """Incidents with at least one finished run, newest (latest run start) first."""
    outputs = Path(outputs)
    if not outputs.is_dir():
        raise BadParameter(f"no archive at {outputs}: run a notebook first, or pass --outputs DIR")
    found = []
    for folder in outputs.iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            runs = read_runs(folder)
            if runs:
                found.append(Incident(folder.name, folder, runs))
    return sorted(found, key=lambda i: (i.last_started, i.id), reverse=True)


def load_incident(incident_id: str, outputs: Path | str = "outputs") -> Incident:
    from imsnb.runs.parameters import check_incident_id

    check_incident_id(incident_id)
    folder = Path(outputs) / incident_id
    runs = read_runs(folder)
    if not runs:
        known = ", ".join(i.id for i in list_incidents(outputs)[:10]) if Path(outputs).is_dir() else ""
        raise BadParameter(f"no runs for incident {incident_id!r} in {outputs}: see `imsnb archive list` ({known})")
    return Incident(incident_id, folder, runs)


def describe_incident(incident: Incident) -> list[str]:
    """Lines for `imsnb archive show`: window, runs, findings above OK, actions."""
    window = incident_window(incident.runs)
    lines = [
        f"incident {incident.id}: {len(incident.runs)} run(s), worst {incident.worst or 'none'}",
        f"window: {window[0]} – {window[1]}" if window else "window: unknown",
        f"index: {incident.folder / INDEX}",
        "",
        "runs:",
    ]
    for run in incident.runs:
        lines.append(
            f"  {run.get('started_at') or '?':<21} {run.get('notebook') or '?':<22} {run.get('status') or '?':<8}"
            f"{run.get('severity') or 'none':<9}{_seconds(run.get('duration_s')):>8} s  {run['folder']}"
        )
    events = timeline(incident.runs)
    lines += ["", "findings and actions:" if events else "findings and actions: none above OK"]
    for ev in events:
        lines.append(f"  {ev['at']:<21} {ev['source']:<22} {ev['level']:<9}{ev['what']}: {ev['detail']}")
    return lines


# ---------------------------------------------------------------- upload


def parse_archive_url(url: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix' -> ('bucket', 'some/prefix'); bad input otherwise."""
    match = _S3_URL.match(url or "")
    if not match:
        raise BadParameter(f"archive {url!r} is not an S3 URL: use s3://bucket or s3://bucket/prefix")
    return match[1], (match[2] or "").strip("/")


def upload(url: str, run_folders: list[Path], incident_dir: Path) -> list[str]:
    """Upload the run folders and the incident's index.html under s3://bucket/prefix/<incident>/; the keys written.

    Uses the same boto3 client construction as the diagnostics (AWS_ENDPOINT_URL, bounded retries and timeouts).
    Needs s3:PutObject on the bucket. Raises UploadFailed with one line on any failure.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from imsnb.aws import Aws

    bucket, prefix = parse_archive_url(url)
    base = "/".join(p for p in (prefix, incident_dir.name) if p)
    files = [(folder / name, f"{base}/{folder.name}/{name}") for folder in run_folders for name in RUN_FILES]
    if (incident_dir / INDEX).is_file():
        files.append((incident_dir / INDEX, f"{base}/{INDEX}"))
    keys = []
    try:
        client = Aws("archive").client("s3")
        for path, key in files:
            if not path.is_file():
                continue
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=path.read_bytes(),
                ContentType=_CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
            )
            keys.append(key)
    except (BotoCoreError, ClientError, OSError, ImsnbError) as exc:
        done = f" after {len(keys)} of {len(files)} file(s)" if keys else ""
        raise UploadFailed(f"archive upload to {url} failed{done}: {' '.join(str(exc).split())}") from None
    return keys


def _seconds(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "?"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
