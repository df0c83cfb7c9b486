"""Slack incoming webhook: Block Kit with a plain-text fallback (`text`), one message per run or suite.

Limits kept (Slack's Block Kit reference): header text 150 characters, section text 3,000, at most 10 fields of
2,000 each, at most 50 blocks. The webhook URL (a secret) is IMSNB_SLACK_WEBHOOK_URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from imsnb.notify.http import DeliveryFailed, post_json
from imsnb.notify.message import Notice, link, value_text

HEADER_MAX, SECTION_MAX, FIELD_MAX, FIELDS_MAX, TEXT_MAX = 150, 3000, 2000, 10, 3000
FINDINGS_SHOWN = 20


def escape(text: str) -> str:
    """Slack mrkdwn's three control characters: text from data or configuration can then make no mention
    (`<!channel>`), link (`<https://...|label>`) or user reference."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str, label: str) -> str:
    """`<url|label>` with both parts from data made inert: the URL percent-encodes what would end or split the
    link (`|`, `<`, `>`, spaces) and escapes `&`; the label is escaped text."""
    safe = quote(url, safe="/:?=&%#@!$'()*+,;~-._[]")
    return f"<{escape(safe)}|{escape(label)}>"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def payload(notice: Notice) -> dict[str, Any]:
    esc = notice.escalation
    person = escape(notice.on_call_text)
    slack_id = (notice.on_call.get("contact") or {}).get("slack")
    if slack_id:
        mention = f"<@{slack_id}>" if slack_id[:1] in "UW" and slack_id.isalnum() else escape(slack_id)
        person = f"{mention} {person}"
    fields = [
        f"*Severity*\n{escape(notice.severity)}",
        f"*Respond within*\n{escape(esc['response_time'])}",
        f"*On call*\n{person}",
        f"*Escalation*\n{escape(esc['escalation'])} ({escape(esc['notification'])})",
        f"*Incident*\n{escape(notice.incident_id)}",
        f"*Notebooks*\n{escape(', '.join(notice.notebooks))}",
    ]
    if notice.vp and esc["escalation"] == "Page VP":
        fields.append(f"*VP engineering*\n{escape(str(notice.vp.get('name')))}")
    found = [
        f"• *{escape(f['severity'])}* `{escape(f['check'])}` = {escape(_value(f))}: {escape(f['message'])}"
        for f in notice.findings[:FINDINGS_SHOWN]
    ]
    if len(notice.findings) > FINDINGS_SHOWN:
        found.append(f"… and {len(notice.findings) - FINDINGS_SHOWN} more in the report")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(notice.title, HEADER_MAX), "emoji": False}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _cut(f, FIELD_MAX)} for f in fields[:FIELDS_MAX]],
        },
    ]
    if notice.changes or notice.resolved:
        changed = [f"• {escape(c)}" for c in notice.changes]
        changed += [
            f"• resolved: `{escape(r['check'])}` on {escape(r['target'])} (was {escape(r['was'])})"
            for r in notice.resolved
        ]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _cut("\n".join(changed), SECTION_MAX)}})
    blocks.append(
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _cut("\n".join(found) or "No findings at WARNING or above.", SECTION_MAX),
            },
        }
    )
    reports = [
        f"{slack_link(link(a['report']), a['notebook'] + ' report')} `{escape(a['report'])}`" for a in notice.artifacts
    ]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(reports), SECTION_MAX)}]})
    # the fallback is what phones and screen readers show, parsed as mrkdwn like the blocks: escaped the same way
    return {"text": _cut(escape(notice.text()), TEXT_MAX), "blocks": blocks}


def _value(finding: dict[str, Any]) -> str:
    return value_text(finding)


def send(notice_payload: dict[str, Any], webhook_url: str) -> str:
    """POST the payload; only Slack's own 200 with the body `ok` is delivery. Returns a short detail for the
    record."""
    answer = post_json(webhook_url, notice_payload, what="Slack webhook")
    if answer.status != 200 or answer.body.strip() != b"ok":
        raise DeliveryFailed(f"Slack webhook answered HTTP {answer.status}, not 200 ok: {answer.text(200) or 'empty'}")
    return f"{len(notice_payload['blocks'])} blocks"
