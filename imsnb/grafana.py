"""The daily baseline where people look: the runbook's

    curl -X POST http://grafana:3000/api/annotations -H "Authorization: Bearer $GRAFANA_TOKEN" \\
      -d '{"text": "Daily baseline captured", "tags": ["baseline", "daily"]}'

as `post_annotation`, with the run's link in the text so that a dashboard's marker leads to the report. GRAFANA_URL
and GRAFANA_TOKEN come from the environment (`imsnb.config.grafana_settings`; the token is a secret, scrubbed from
every artifact by the runner like any other). The call has a whole-call deadline and never follows a redirect (the
token goes to GRAFANA_URL only). Without Grafana the section is INFO "not configured: skipped".
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from imsnb import config, deadline, started_with
from imsnb.findings import Finding, Severity
from imsnb.window import Window

TIMEOUT_S = 10.0
MAX_REPLY_BYTES = 64 * 1024
ANNOTATION_TAGS = ("baseline", "daily")
CHECK = "grafana.annotation"


@dataclass
class Annotation:
    url: str  # where it was posted (GRAFANA_URL/api/annotations)
    status: int | None
    id: int | None  # Grafana's id for the new annotation
    text: str
    tags: tuple[str, ...]
    error: str | None = None


def run_link() -> str:
    """Where this run's report will be: its report.html in the run folder the runner is writing (and under
    IMSNB_ARCHIVE when set, where it is uploaded); "" for a notebook not run by `imsnb run`."""
    folder = started_with.run_folder()
    if folder is None:
        return ""
    link = (folder / "report.html").as_uri()
    archive = os.environ.get("IMSNB_ARCHIVE", "").rstrip("/")
    if archive.startswith("s3://"):
        link += f" (archived: {archive}/{folder.parent.name}/{folder.name}/report.html)"
    return link


def annotation_text(window: Window, link: str | None = None) -> str:
    """The runbook's "Daily baseline captured", with the window and the run's link."""
    link = run_link() if link is None else link
    return f"Daily baseline captured by imsnb ({window})" + (f"; report: {link}" if link else "")


def post_annotation(
    text: str, tags: tuple[str, ...] = ANNOTATION_TAGS, *, at_ms: int | None = None, timeout_s: float = TIMEOUT_S
) -> Annotation:
    """POST /api/annotations (Bearer token, JSON {time, tags, text}); never raises for a network or HTTP failure
    (`error` says what happened). NotConfigured when GRAFANA_URL or GRAFANA_TOKEN is missing."""
    base, token = config.grafana_settings()
    url = f"{base}/api/annotations"
    body = json.dumps({"time": at_ms or int(time.time() * 1000), "tags": list(tags), "text": text}).encode()
    reply = deadline.post(
        url,
        body,
        timeout_s=timeout_s,
        max_bytes=MAX_REPLY_BYTES,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Accept": "application/json"},
    )
    result = Annotation(url, reply.status, None, text, tuple(tags), reply.error)
    if reply.error:
        return result
    try:
        payload = json.loads(reply.body or b"{}")
    except ValueError:
        payload = {}
    payload = payload if isinstance(payload, dict) else {}
    if reply.status != 200:
        said = " ".join(str(payload.get("message") or reply.body[:200].decode("utf-8", "replace")).split())
        result.error = f"HTTP {reply.status}" + (f": {said}" if said else "")
    elif not isinstance(payload.get("id"), int):
        result.error = "HTTP 200 without an annotation id: is GRAFANA_URL a Grafana server?"
    else:
        result.id = payload["id"]
    return result


def annotation_finding(result: Annotation) -> Finding:
    """OK with Grafana's annotation id; WARNING when it was not posted (the baseline itself is still saved)."""
    if result.error is None:
        return Finding.ok(
            CHECK,
            f"annotation {result.id} posted to {result.url} (tags {', '.join(result.tags)})",
            value=result.id,
        )
    hint = (
        " (check GRAFANA_TOKEN: a service account token with annotations:write)" if result.status in (401, 403) else ""
    )
    return Finding.of(
        CHECK,
        Severity.WARNING,
        f"baseline annotation not posted to {result.url}: {result.error}{hint}; the baseline itself is saved",
        value=result.status,
    )
