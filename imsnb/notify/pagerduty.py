"""PagerDuty Events API v2: `trigger` with one dedup key per target and check, `resolve` when the check is OK again.

Contract (developer.pagerduty.com, Events API v2 "Send an Alert Event"): POST JSON to /v2/enqueue with
`routing_key`, `event_action` (trigger | acknowledge | resolve), `dedup_key` (at most 255 characters), and for a
trigger a `payload` with `summary` (at most 1,024 characters), `source`, `severity` (critical | error | warning |
info), optional `timestamp`, `component`, `group`, `class`, `custom_details`; `links` [{href, text}], `client`.
PagerDuty answers 202 {"status": "success", "dedup_key": ...}. The routing key is IMSNB_PAGERDUTY_ROUTING_KEY.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from imsnb.notify.http import DeliveryFailed, post_json
from imsnb.notify.message import Notice, link
from imsnb.notify.routes import PAGERDUTY_URL

SUMMARY_MAX, DEDUP_MAX = 1024, 255
SEVERITY = {"CRITICAL": "critical", "ERROR": "error", "WARNING": "warning", "INFO": "info", "OK": "info"}


def dedup_key(target: str, check: str) -> str:
    """imsnb/<target>/<check>, at most 255 characters (a long one keeps its start and a hash of the whole)."""
    key = f"imsnb/{target}/{check}"
    if len(key) <= DEDUP_MAX:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return key[: DEDUP_MAX - 17] + "~" + digest


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trigger_event(
    finding: dict[str, Any], notice: Notice, routing_key: str, *, at: str | None = None
) -> dict[str, Any]:
    summary = f"[{finding['severity']}] {finding['check']} on {finding['target']}: {finding.get('message') or ''}"
    report = next((a for a in notice.artifacts if a["notebook"] == finding["notebook"]), notice.artifacts[0])
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(finding["target"], finding["check"]),
        "payload": {
            "summary": _cut(summary, SUMMARY_MAX),
            "source": _cut(str(finding["target"]), 255),
            "severity": SEVERITY[finding["severity"]],
            "component": str(finding.get("component") or ""),
            "group": notice.incident_id,
            "class": str(finding["check"]),
            "custom_details": {
                "incident_id": notice.incident_id,
                "notebook": finding["notebook"],
                "value": finding.get("value"),
                "threshold": finding.get("threshold"),
                "unit": finding.get("unit"),
                "message": finding.get("message"),
                "respond_within": notice.escalation["response_time"],
                "escalation": notice.escalation["escalation"],
                "on_call": notice.on_call_text,
                "report": report["report"],
                "findings": [
                    {k: f.get(k) for k in ("severity", "notebook", "check", "value", "unit", "message")}
                    for f in notice.findings
                ],
            },
        },
        "links": [{"href": link(report["report"]), "text": f"imsnb report: {report['notebook']}"}],
        "client": "imsnb",
    }
    if at:
        event["payload"]["timestamp"] = at
    return event


def resolve_event(target: str, check: str, routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(target, check)}


def events_url(settings: dict[str, Any]) -> str:
    return os.environ.get("IMSNB_PAGERDUTY_URL") or str(settings.get("url") or PAGERDUTY_URL)


def send(event: dict[str, Any], url: str) -> str:
    status, body = post_json(url, event, what="PagerDuty events API")
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        answer = {}
    if status != 202 or answer.get("status") not in (None, "success"):
        raise DeliveryFailed(f"PagerDuty answered {status}: {body[:200].decode('utf-8', 'replace')}")
    return f"{event['event_action']} {event['dedup_key']}"
