"""PagerDuty Events API v2: `trigger` with one dedup key per target and check, `resolve` when the check is OK again.

Contract (developer.pagerduty.com, Events API v2 "Send an Alert Event"): POST JSON to /v2/enqueue with
`routing_key`, `event_action` (trigger | acknowledge | resolve), `dedup_key` (at most 255 characters), and for a
trigger a `payload` with `summary` (at most 1,024 characters), `source`, `severity` (critical | error | warning |
info), optional `timestamp`, `component`, `group`, `class`, `custom_details`; `links` [{href, text}], `client`.
PagerDuty answers 202 {"status": "success", "dedup_key": ...}; nothing else is delivery. An event is at most 512 KB
(larger ones are refused with 400): one whose table of findings would pass that carries its own finding and the
counts instead (`fit`). The routing key (exactly 32 characters) is IMSNB_PAGERDUTY_ROUTING_KEY.
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
# PagerDuty's limit is 512 KB; kept under 512,000 bytes so the routing key and masking cannot tip it over.
EVENT_MAX_BYTES = 512_000
ROUTING_KEY_LENGTH = 32
MESSAGE_CUT = 50_000
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
    return fit(event, finding, notice)


def size_of(event: dict[str, Any]) -> int:
    return len(json.dumps(event, ensure_ascii=False).encode("utf-8"))


def fit(event: dict[str, Any], finding: dict[str, Any], notice: Notice) -> dict[str, Any]:
    """The event within EVENT_MAX_BYTES: when the whole findings table would pass it, `custom_details` keeps this
    event's finding and the counts by severity (the table is in the linked report); a single message too long is
    cut."""
    if size_of(event) <= EVENT_MAX_BYTES:
        return event
    details = event["payload"]["custom_details"]
    counts: dict[str, int] = {}
    for f in notice.findings:
        counts[str(f.get("severity"))] = counts.get(str(f.get("severity")), 0) + 1
    details["findings"] = [{k: finding.get(k) for k in ("severity", "notebook", "check", "value", "unit", "message")}]
    details["findings_total"] = len(notice.findings)
    details["findings_by_severity"] = counts
    details["findings_note"] = "the table of every finding is in the report (too large for one PagerDuty event)"
    for holder in (details, details["findings"][0]):  # 50,000 characters are at most 200 KB of UTF-8
        holder["message"] = _cut(str(holder.get("message") or ""), MESSAGE_CUT)
    if size_of(event) > EVENT_MAX_BYTES:
        details.pop("findings")
    return event


def resolve_event(target: str, check: str, routing_key: str) -> dict[str, Any]:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(target, check)}


def events_url(settings: dict[str, Any]) -> str:
    return os.environ.get("IMSNB_PAGERDUTY_URL") or str(settings.get("url") or PAGERDUTY_URL)


def check_routing_key(key: str) -> str | None:
    """Why a routing key cannot be right (PagerDuty's integration keys are exactly 32 characters), or None."""
    if len(key) != ROUTING_KEY_LENGTH:
        return (
            f"IMSNB_PAGERDUTY_ROUTING_KEY has {len(key)} characters: an Events API v2 integration key has "
            f"{ROUTING_KEY_LENGTH} (copy it again from the service's integration)"
        )
    return None


def send(event: dict[str, Any], url: str) -> str:
    """POST one event; only 202 with status "success" is delivery. DeliveryFailed otherwise (`retryable` when
    PagerDuty as a whole did not answer: network, deadline, 429, 5xx)."""
    answer = post_json(url, event, what="PagerDuty events API")
    try:
        said = json.loads(answer.body or b"{}")
    except ValueError:
        said = {}
    if answer.status != 202 or not isinstance(said, dict) or said.get("status") != "success":
        raise DeliveryFailed(f"PagerDuty answered HTTP {answer.status}, not 202 success: {answer.text(200)}")
    return f"{event['event_action']} {event['dedup_key']}"
