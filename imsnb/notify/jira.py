"""Jira: attach report.html and summary.json to an issue, and comment the findings table; with `--ticket new`, open
the incident's issue first (`[jira]` of imsnb.toml). Cloud and Server/Data Center.

    Cloud (REST v3)                      Server / Data Center (REST v2)
    POST {JIRA_URL}/rest/api/3/issue/{key}/attachments   .../rest/api/2/issue/{key}/attachments
         multipart/form-data, field `file`, X-Atlassian-Token: no-check (both)
    POST {JIRA_URL}/rest/api/3/issue/{key}/comment       .../rest/api/2/issue/{key}/comment
         {"body": <Atlassian Document Format>}           {"body": "<text>"} (wiki markup: sent as {noformat})
    Basic JIRA_USER:JIRA_API_TOKEN                       Authorization: Bearer JIRA_API_TOKEN
    (JIRA_USER is the account's email)                   (a personal access token; JIRA_USER is not used)

    POST {JIRA_URL}/rest/api/3/issue                    .../rest/api/2/issue   (`--ticket new`)
         {"fields": {project, summary, issuetype,        the same, "description": "<text>"
          priority, "description": <ADF>}} -> 201 {"id", "key", "self"}

Which one: JIRA_DEPLOYMENT (cloud, server or datacenter) when set, else `deploymentType` of
GET /rest/api/2/serverInfo (asked once per process and site). Everything comes from the environment.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imsnb.config.toml import jira_settings
from imsnb.errors import BadParameter, NotConfigured
from imsnb.findings import Severity
from imsnb.notify.http import DeliveryFailed, check_secure, post, request
from imsnb.notify.message import TABLE_COLUMNS, Notice

# Jira rejects a comment over 32,767 characters; a cell is cut at 2,000 so one long message cannot fill it.
COMMENT_MAX, CELL_MAX, MORE_RESERVE = 32_767, 2_000, 200
ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-[1-9][0-9]*$")
ENV = ("JIRA_URL", "JIRA_API_TOKEN")
DEPLOYMENTS = {"cloud": "cloud", "server": "server", "datacenter": "server", "data center": "server"}
NEW = "new"  # `--ticket new`: open the incident's issue, or reuse the one its archive already names
SUMMARY_MAX = 255  # Jira: "Summary must be less than 255 characters."
# The escalation matrix as Jira's default priority names: Page VP, Page on-call, respond in 15 min, no response set.
PRIORITIES = {"CRITICAL": "Highest", "ERROR": "High", "WARNING": "Medium", "INFO": "Low", "OK": "Low"}
_DETECTED: dict[str, str] = {}  # JIRA_URL -> cloud | server, asked once per process


@dataclass(frozen=True)
class Site:
    url: str  # JIRA_URL without its trailing slash
    kind: str  # "cloud" or "server" (Server and Data Center speak the same v2 API)

    @property
    def api(self) -> str:
        return f"{self.url}/rest/api/{'3' if self.kind == 'cloud' else '2'}"

    @property
    def name(self) -> str:
        return "Jira Cloud" if self.kind == "cloud" else "Jira Server/Data Center"

    def headers(self) -> dict[str, str]:
        token = os.environ["JIRA_API_TOKEN"]
        if self.kind == "server":
            return {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        user = os.environ.get("JIRA_USER")
        if not user:
            raise DeliveryFailed("Jira Cloud needs JIRA_USER, the account's email, with JIRA_API_TOKEN (an API token)")
        basic = base64.b64encode(f"{user}:{token}".encode()).decode()
        return {"Authorization": f"Basic {basic}", "Accept": "application/json"}


def check_ticket(key: str) -> str:
    """A Jira issue key (PROJ-123), or `new` with a valid `[jira]` table, with JIRA_URL and JIRA_API_TOKEN set (and
    JIRA_USER for Cloud, when that is known beforehand), over TLS; BadParameter otherwise."""
    if key == NEW:
        new_issue_settings()
    elif not ISSUE_KEY.match(key or ""):
        raise BadParameter(f"ticket {key!r} is not a Jira issue key: use PROJECT-123, or new")
    declared = _declared()
    missing = [name for name in ENV if not os.environ.get(name)]
    if declared == "cloud" and not os.environ.get("JIRA_USER"):
        missing.insert(1, "JIRA_USER")
    if missing:
        raise BadParameter(
            f"--ticket needs {', '.join(missing)} in the environment: JIRA_URL is the Jira site; on Jira Cloud "
            "JIRA_USER is the account's email and JIRA_API_TOKEN its API token, on Server/Data Center "
            "JIRA_API_TOKEN is a personal access token"
        )
    problem = check_secure(os.environ["JIRA_URL"], "JIRA_URL")
    if problem:
        raise BadParameter(f"{problem} (the API token goes with every request)")
    return key


def _declared() -> str | None:
    """JIRA_DEPLOYMENT as cloud or server, None when unset; BadParameter for another value."""
    value = (os.environ.get("JIRA_DEPLOYMENT") or "").strip().lower()
    if not value:
        return None
    if value not in DEPLOYMENTS:
        raise BadParameter(f"JIRA_DEPLOYMENT={value!r}: use cloud, server or datacenter (or leave it unset)")
    return DEPLOYMENTS[value]


def site() -> Site:
    """The Jira site to post to, refused (DeliveryFailed) when the token would go in clear; Cloud or Server/Data
    Center from JIRA_DEPLOYMENT, else from serverInfo's deploymentType."""
    url = os.environ["JIRA_URL"].rstrip("/")
    problem = check_secure(url, "JIRA_URL")
    if problem:
        raise DeliveryFailed(f"not sent: {problem}")
    try:
        declared = _declared()
    except BadParameter as exc:
        raise DeliveryFailed(str(exc)) from None
    kind = declared or _DETECTED.get(url) or _detect(url)
    return Site(url, kind)


def _detect(url: str) -> str:
    """Ask GET /rest/api/2/serverInfo (anonymous first; with the token when the site wants a login)."""
    what = "Jira serverInfo (set JIRA_DEPLOYMENT=cloud or server to skip asking)"
    try:
        answer = request("GET", f"{url}/rest/api/2/serverInfo", None, {"Accept": "application/json"}, what=what)
    except DeliveryFailed as exc:
        if exc.status not in (401, 403):
            raise
        guess = Site(url, "cloud" if os.environ.get("JIRA_USER") else "server")
        answer = request("GET", f"{url}/rest/api/2/serverInfo", None, guess.headers(), what=what)
    try:
        deployment = str(json.loads(answer.body).get("deploymentType") or "")
    except (ValueError, AttributeError):
        deployment = ""
    kind = DEPLOYMENTS.get(deployment.strip().lower())
    if kind is None:
        raise DeliveryFailed(f"Jira serverInfo gave no known deploymentType ({deployment!r}): set JIRA_DEPLOYMENT")
    _DETECTED[url] = kind
    return kind


def issue_url(key: str) -> str:
    return f"{os.environ['JIRA_URL'].rstrip('/')}/browse/{quote(key)}"


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


def attach(where: Site, key: str, files: list[tuple[str, Path]]) -> str:
    """Attach the files; only 200 with the list of attachments Jira made is delivery."""
    body, content_type = multipart(files)
    url = f"{where.api}/issue/{quote(key)}/attachments"
    headers = {**where.headers(), "X-Atlassian-Token": "no-check", "Content-Type": content_type}
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


def comment_text(notice: Notice) -> str:
    """The comment for Jira Server/Data Center, whose comment body is wiki markup: the same lines and table as
    plain text inside one {noformat} block, so nothing from data (`[link|...]`, `{color}`, `[~user]`) renders;
    within COMMENT_MAX characters ("… and N more in the attached report")."""

    def inert(text: str) -> str:
        return re.sub(r"\{(\s*)noformat", r"{ \1noformat", _cut(str(text), CELL_MAX), flags=re.IGNORECASE)

    lead = [inert(line) for line in notice.lines()[:3] + [f"changed: {c}" for c in notice.changes]][:50]
    reports = ", ".join(f"{a['notebook']}: {a['report']}" for a in notice.artifacts)
    tail = [inert(f"Attached: report.html and summary.json ({reports})")]
    table = [" | ".join(TABLE_COLUMNS)] if notice.findings else ["No findings at WARNING or above."]
    budget = COMMENT_MAX - len("\n".join(["{noformat}", *lead, *table, *tail, "{noformat}"])) - MORE_RESERVE
    rows = notice.rows()
    for row in rows:
        line = " | ".join(inert(v) for v in row)
        if len(line) + 1 > budget:
            break
        table.append(line)
        budget -= len(line) + 1
    left = len(rows) - (len(table) - 1) if notice.findings else 0
    if left:
        table.append(f"… and {left} more in the attached report")
    return "\n".join(["{noformat}", *lead, "", *table, "", *tail, "{noformat}"])


def comment_body(where: Site, notice: Notice) -> dict[str, Any] | str:
    """What the site's comment API takes: ADF on Cloud, text on Server/Data Center."""
    return comment_document(notice) if where.kind == "cloud" else comment_text(notice)


def comment(where: Site, key: str, body: dict[str, Any] | str) -> str:
    """Comment on the issue; only 201 Created is delivery."""
    url = f"{where.api}/issue/{quote(key)}/comment"
    data = json.dumps({"body": body}, ensure_ascii=False).encode()
    headers = {**where.headers(), "Content-Type": "application/json"}
    status, _ = post(url, data, headers, what=f"Jira comment on {key}")
    if status != 201:
        raise DeliveryFailed(f"Jira comment on {key} answered HTTP {status}, not 201 Created")
    return "comment added"


# ---------------------------------------------------------------- --ticket new


def new_issue_settings() -> dict[str, Any]:
    """`[jira]` of imsnb.toml (project, issue_type, priorities); a missing or malformed table is BadParameter."""
    try:
        return jira_settings()
    except NotConfigured as exc:
        raise BadParameter(str(exc)) from None


def priority_for(severity: str, priorities: dict[str, str] | None = None) -> str:
    """The Jira priority name for the incident's worst severity: the escalation matrix's rank, renamed by
    `[jira] priorities` where a site calls its priorities otherwise."""
    return {**PRIORITIES, **(priorities or {})}[Severity.parse(severity or "OK").name]


def summary_for(notice: Notice) -> str:
    """The verdict in one line of at most SUMMARY_MAX characters: the worst severity, the incident and the worst
    finding (Jira refuses a summary with a newline or over 255 characters)."""
    lead = notice.findings[0] if notice.findings else None
    verdict = f"{lead['check']}: {lead['message']}" if lead else "no findings at WARNING or above"
    return _cut(" ".join(f"[{notice.severity}] {notice.incident_id}: {verdict}".split()), SUMMARY_MAX)


def issue_fields(where: Site, notice: Notice, settings: dict[str, Any]) -> dict[str, Any]:
    """The new issue's fields: the verdict as summary, the findings as description (ADF on Cloud, text on
    Server/Data Center, as a comment), the priority from the escalation matrix."""
    return {
        "project": {"key": settings["project"]},
        "summary": summary_for(notice),
        "issuetype": {"name": settings["issue_type"]},
        "description": comment_body(where, notice),
        "priority": {"name": priority_for(notice.severity, settings["priorities"])},
    }


def create_issue(where: Site, fields: dict[str, Any]) -> tuple[str, str | None]:
    """Open the issue; its key and the priority it got. Only 201 with a key is an issue. A project whose create
    screen has no priority (Jira: "Field 'priority' cannot be set") gets the issue once more without it (priority
    None): the record of the incident matters more than its priority."""
    url = f"{where.api}/issue"
    headers = {**where.headers(), "Content-Type": "application/json"}
    what = f"Jira issue in {fields['project']['key']}"
    try:
        status, answer = post(url, json.dumps({"fields": fields}, ensure_ascii=False).encode(), headers, what=what)
    except DeliveryFailed as exc:
        if exc.status != 400 or '"priority"' not in str(exc) or "priority" not in fields:
            raise
        fields = {k: v for k, v in fields.items() if k != "priority"}
        status, answer = post(url, json.dumps({"fields": fields}, ensure_ascii=False).encode(), headers, what=what)
    try:
        key = str(json.loads(answer).get("key") or "")
    except (ValueError, AttributeError):
        key = ""
    if status != 201 or not ISSUE_KEY.match(key):
        raise DeliveryFailed(f"{what} answered HTTP {status} without the issue key Jira returns")
    return key, (fields.get("priority") or {}).get("name")
