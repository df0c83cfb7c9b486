"""Jira Cloud REST v3: attach report.html and summary.json to an issue, and comment the findings table (ADF).

    POST {JIRA_URL}/rest/api/3/issue/{key}/attachments   multipart/form-data, field `file`, X-Atlassian-Token: no-check
    POST {JIRA_URL}/rest/api/3/issue/{key}/comment       {"body": <Atlassian Document Format>}

Basic auth with JIRA_USER and JIRA_API_TOKEN (an API token), all from the environment.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imsnb.errors import BadParameter
from imsnb.notify.http import DeliveryFailed, check_secure, post
from imsnb.notify.message import TABLE_COLUMNS, Notice

# Jira rejects a comment over 32,767 characters; a cell is cut at 2,000 so one long message cannot fill it.
COMMENT_MAX, CELL_MAX, MORE_RESERVE = 32_767, 2_000, 200
ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[1-9][0-9]*$")
ENV = ("JIRA_URL", "JIRA_USER", "JIRA_API_TOKEN")


def check_ticket(key: str) -> str:
    """A Jira issue key (PROJ-123) with JIRA_URL, JIRA_USER and JIRA_API_TOKEN set; BadParameter otherwise."""
    if not ISSUE_KEY.match(key or ""):
        raise BadParameter(f"ticket {key!r} is not a Jira issue key: use PROJECT-123")
    missing = [name for name in ENV if not os.environ.get(name)]
    if missing:
        raise BadParameter(
            f"--ticket needs {', '.join(missing)} in the environment: "
            "JIRA_URL is the Jira site, JIRA_USER and JIRA_API_TOKEN the account and API token to post as"
        )
    problem = check_secure(os.environ["JIRA_URL"], "JIRA_URL")
    if problem:
        raise BadParameter(f"{problem} (the API token goes with every request)")
    return key


def _site() -> str:
    """JIRA_URL without its trailing slash, refused (DeliveryFailed) when the token would go in clear."""
    problem = check_secure(os.environ["JIRA_URL"], "JIRA_URL")
    if problem:
        raise DeliveryFailed(f"not sent: {problem}")
    return os.environ["JIRA_URL"].rstrip("/")


def issue_url(key: str) -> str:
    return f"{os.environ['JIRA_URL'].rstrip('/')}/browse/{quote(key)}"


def _headers() -> dict[str, str]:
    token = base64.b64encode(f"{os.environ['JIRA_USER']}:{os.environ['JIRA_API_TOKEN']}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Accept": "application/json"}


def multipart(files: list[tuple[str, Path]]) -> tuple[bytes, str]:
    """A multipart/form-data body with one `file` part per file; returns (body, content type)."""
    boundary = "imsnb-" + secrets.token_hex(12)
    parts = []
    for name, path in files:
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        safe = name.replace('"', "_")
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
            f"Content-Type: {kind}\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
        )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def attach(key: str, files: list[tuple[str, Path]]) -> str:
    body, content_type = multipart(files)
    url = f"{_site()}/rest/api/3/issue/{quote(key)}/attachments"
    headers = {**_headers(), "X-Atlassian-Token": "no-check", "Content-Type": content_type}
    status, answer = post(url, body, headers, what=f"Jira attachments of {key}", timeout_s=30)
    try:
        attached = json.loads(answer)
    except ValueError:
        attached = None
    if status != 200 or not isinstance(attached, list):
        raise DeliveryFailed(
            f"Jira attachments of {key} answered HTTP {status} without the list of attachments Jira returns"
        )
    return f"{len(attached)} attachment(s)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(text: str, strong: bool = False) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "text", "text": text or "-"}
    if strong:
        node["marks"] = [{"type": "strong"}]
    return node


def _cell(kind: str, text: str, strong: bool = False) -> dict[str, Any]:
    return {"type": kind, "attrs": {}, "content": [{"type": "paragraph", "content": [_text(text, strong)]}]}


def size_of(document: Any) -> int:
    """A comment's size as Jira counts it against COMMENT_MAX: characters of its JSON (for ADF, the document)."""
    return len(json.dumps(document, ensure_ascii=False))


def _paragraph(text: str) -> dict[str, Any]:
    return {"type": "paragraph", "content": [_text(_cut(text, CELL_MAX))]}


def comment_document(notice: Notice) -> dict[str, Any]:
    """The comment in Atlassian Document Format: the lead lines, then the findings table, within COMMENT_MAX
    characters (rows that do not fit end the table with "… and N more in the attached report")."""
    lead = [_paragraph(line) for line in notice.lines()[:3] + [f"changed: {c}" for c in notice.changes]][:50]
    reports = ", ".join(f"{a['notebook']}: {a['report']}" for a in notice.artifacts)
    tail = [_paragraph(f"Attached: report.html and summary.json ({reports})")]
    if not notice.findings:
        content = [*lead, _paragraph("No findings at WARNING or above."), *tail]
        return {"type": "doc", "version": 1, "content": content}
    header = {"type": "tableRow", "content": [_cell("tableHeader", c, strong=True) for c in TABLE_COLUMNS]}
    table = {"type": "table", "attrs": {"isNumberColumnEnabled": False, "layout": "default"}, "content": [header]}
    document = {"type": "doc", "version": 1, "content": [*lead, table, *tail]}
    budget = COMMENT_MAX - size_of(document) - MORE_RESERVE
    rows = notice.rows()
    for row in rows:
        node = {"type": "tableRow", "content": [_cell("tableCell", _cut(v, CELL_MAX)) for v in row]}
        cost = size_of(node) + 1
        if cost > budget:
            break
        table["content"].append(node)
        budget -= cost
    left = len(rows) - (len(table["content"]) - 1)
    if left:
        document["content"].insert(len(lead) + 1, _paragraph(f"… and {left} more in the attached report"))
    return document


def comment(key: str, document: dict[str, Any]) -> str:
    url = f"{_site()}/rest/api/3/issue/{quote(key)}/comment"
    body = json.dumps({"body": document}, ensure_ascii=False).encode()
    status, _ = post(url, body, {**_headers(), "Content-Type": "application/json"}, what=f"Jira comment on {key}")
    if status != 201:
        raise DeliveryFailed(f"Jira comment on {key} answered HTTP {status}, not 201 Created")
    return "comment added"
