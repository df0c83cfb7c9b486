"""Local stand-ins for Slack's incoming webhook, PagerDuty's Events API v2, Jira Cloud's REST API and an SMTP server,
each checking every request against the documented contract and answering as the real service does.

Each HTTP stand-in keeps `requests` (method, path, headers, body) and `problems` (contract violations, as lines);
a test asserts `problems == []` and reads the requests. `down()` makes it answer 503 until `up()`; `answer_next`
makes the next requests get a given answer (429 with Retry-After, a 301/302 redirect, a 500), as the real service
sometimes does. The limits are the services' own (STACK.md, "What the notification services enforce"): PagerDuty's
32-character routing key and 512 KB event, Jira's 32,767-character comment, Slack's `ok` body.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import warnings
from datetime import datetime
from email import message_from_bytes, policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMMENT_MAX = 32_767  # Jira: "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
SLACK_BLOCK_TYPES = {"header", "section", "context", "divider", "actions", "image", "rich_text"}
PD_SEVERITIES = {"critical", "error", "warning", "info"}
ADF_CHILDREN = {
    "doc": {"paragraph", "table", "heading", "bulletList", "orderedList", "codeBlock", "rule", "panel"},
    "paragraph": {"text", "hardBreak", "mention", "emoji", "inlineCard"},
    "table": {"tableRow"},
    "tableRow": {"tableHeader", "tableCell"},
    "tableHeader": {"paragraph"},
    "tableCell": {"paragraph"},
}


class StandIn:
    """A threaded HTTP server on 127.0.0.1 whose `check(request)` returns (status, body, problems)."""

    def __init__(self, *, tls: bool = False) -> None:
        """`tls`: serve HTTPS on https://localhost:PORT with a certificate from a private CA (`ca_file`; a client
        trusts it through SSL_CERT_FILE), as the real services do."""
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.is_down = False
        self.scripted: list[tuple[int, bytes, dict[str, str]]] = []
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self._answer("GET")

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self._answer("POST")

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = {
                    "method": method,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": self.rfile.read(length),
                }
                headers: dict[str, str] = {}
                with owner.lock:
                    scripted = owner.scripted.pop(0) if owner.scripted and not owner.is_down else None
                if owner.is_down:
                    status, body = 503, b"service unavailable"
                elif scripted:
                    owner.requests.append({**request, "scripted": scripted[0]})
                    status, body, headers = scripted
                else:
                    owner.requests.append(request)
                    status, body, problems = owner.check(request)
                    owner.problems += [f"{owner.__class__.__name__} {self.path}: {p}" for p in problems]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ca_file = None
        if tls:
            context, self.ca_file, self._certs = tls_context()
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://localhost:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def check(self, request: dict[str, Any]) -> tuple[int, bytes, list[str]]:
        raise NotImplementedError

    def answer_next(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        """The next `times` requests get this answer (recorded with "scripted": status), then the checks resume."""
        with self.lock:
            self.scripted += [(status, body, dict(headers or {}))] * times

    def checked(self) -> list[dict[str, Any]]:
        """The requests the contract checks answered (not the scripted ones)."""
        return [r for r in self.requests if "scripted" not in r]

    def down(self) -> None:
        self.is_down = True

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def json_bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests if r["method"] == "POST"]


def tls_context() -> tuple[Any, Any, Any]:
    """A server SSLContext for localhost / 127.0.0.1 from a fresh private CA: (context, CA file, the temporary
    folder holding them, to keep alive)."""
    import ssl
    import tempfile
    from pathlib import Path

    from imsnb.sandbox.api import issue_certificate

    folder = tempfile.TemporaryDirectory(prefix="imsnb-standin-tls-")
    ca, cert, key = issue_certificate(30, host="localhost")
    root = Path(folder.name)
    for name, data in (("ca.pem", ca), ("cert.pem", cert), ("key.pem", key)):
        (root / name).write_bytes(data)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(root / "cert.pem", root / "key.pem")
    return context, root / "ca.pem", folder


class ForwardProxy:
    """An HTTP forward proxy as companies run them: CONNECT host:port tunnels (HTTPS passes through, end to end),
    absolute-URI requests forwarded (plain HTTP). `seen` lists what it was asked ("CONNECT localhost:8443",
    "POST http://127.0.0.1:9000/..."), `auth` the Proxy-Authorization headers it got."""

    def __init__(self) -> None:
        import http.client
        import select
        from urllib.parse import urlsplit

        self.seen: list[str] = []
        self.auth: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_CONNECT(self) -> None:  # noqa: N802 - http.server's name
                owner.seen.append(f"CONNECT {self.path}")
                owner.auth.append(self.headers.get("Proxy-Authorization"))
                host, _, port = self.path.rpartition(":")
                try:
                    upstream = socket.create_connection((host, int(port)), timeout=10)
                except OSError:
                    self.send_error(502)
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                sockets = [self.connection, upstream]
                with upstream:
                    while True:
                        readable, _, _ = select.select(sockets, [], [], 10)
                        if not readable:
                            return
                        for sock in readable:
                            data = sock.recv(65536)
                            if not data:
                                return
                            (upstream if sock is self.connection else self.connection).sendall(data)

            def _forward(self) -> None:
                owner.seen.append(f"{self.command} {self.path}")
                owner.auth.append(self.headers.get("Proxy-Authorization"))
                target = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "host")}
                conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=10)
                path = target.path + (f"?{target.query}" if target.query else "")
                conn.request(self.command, path, body=body or None, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _forward  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Slack(StandIn):
    """An incoming webhook at /services/T…/B…/<secret>: JSON with `text` (fallback) and Block Kit `blocks`."""

    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__()
        self.webhook_url = f"{self.url}/services/T0IMSNB/B0IMSNB/{token}"

    def check(self, request: dict[str, Any]) -> tuple[int, bytes, list[str]]:
        problems = []
        if request["path"] != f"/services/T0IMSNB/B0IMSNB/{self.token}":
            return 404, b"no_service", ["wrong webhook path"]
        if not request["headers"].get("content-type", "").startswith("application/json"):
            problems.append("Content-Type is not application/json")
        try:
            body = json.loads(request["body"])
        except ValueError:
            return 400, b"invalid_payload", ["body is not JSON"]
        if not isinstance(body.get("text"), str) or not body["text"].strip():
            problems.append("no text fallback")
        blocks = body.get("blocks")
        if not isinstance(blocks, list) or not 1 <= len(blocks) <= 50:
            problems.append("blocks must be a list of 1-50")
            blocks = []
        for i, block in enumerate(blocks):
            kind = block.get("type")
            if kind not in SLACK_BLOCK_TYPES:
                problems.append(f"block {i}: unknown type {kind!r}")
            if kind == "header":
                text = block.get("text") or {}
                if text.get("type") != "plain_text" or not 0 < len(text.get("text") or "") <= 150:
                    problems.append(f"block {i}: header needs plain_text of 1-150 chars")
            if kind == "section":
                if "text" not in block and "fields" not in block:
                    problems.append(f"block {i}: section needs text or fields")
                if "text" in block:
                    text = block["text"]
                    if text.get("type") not in ("mrkdwn", "plain_text") or not 0 < len(text.get("text") or "") <= 3000:
                        problems.append(f"block {i}: section text must be 1-3000 chars of mrkdwn/plain_text")
                fields = block.get("fields") or []
                if len(fields) > 10 or any(not 0 < len(f.get("text") or "") <= 2000 for f in fields):
                    problems.append(f"block {i}: at most 10 fields of 1-2000 chars")
            if kind == "context":
                elements = block.get("elements") or []
                if not 1 <= len(elements) <= 10:
                    problems.append(f"block {i}: context needs 1-10 elements")
        if problems:
            return 400, b"invalid_blocks", problems
        return 200, b"ok", []


class PagerDuty(StandIn):
    """POST /v2/enqueue (Events API v2): answers 202 {"status": "success", ...} or 400 "invalid event": a routing
    key that is not exactly 32 characters, an event over 512 KB, a summary over 1,024 characters; `reject` makes
    the events with one dedup key invalid (400) while the others go through."""

    EVENT_MAX = 512 * 1024

    def __init__(self, routing_key: str, *, tls: bool = False) -> None:
        assert len(routing_key) == 32, "PagerDuty routing keys are 32 characters"
        self.routing_key = routing_key
        self.rejected: set[str] = set()
        super().__init__(tls=tls)
        self.events_url = f"{self.url}/v2/enqueue"

    def reject(self, dedup_key: str) -> None:
        self.rejected.add(dedup_key)

    def check(self, request: dict[str, Any]) -> tuple[int, bytes, list[str]]:
        problems = []
        if request["path"] != "/v2/enqueue":
            problems.append("path is not /v2/enqueue")
        if len(request["body"]) > self.EVENT_MAX:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": ["Payload too large"]}
            return 400, json.dumps(body).encode(), [f"event of {len(request['body'])} bytes is over 512 KB"]
        try:
            event = json.loads(request["body"])
        except ValueError:
            return 400, b'{"status":"invalid event","message":"Event object is invalid"}', ["body is not JSON"]
        if len(str(event.get("routing_key") or "")) != 32:
            problems.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        elif event.get("routing_key") != self.routing_key:
            problems.append("routing_key is not the one configured")
        if event.get("dedup_key") in self.rejected:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": ["rejected"]}
            return 400, json.dumps(body).encode(), []
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            problems.append(f"event_action {action!r}")
        dedup = event.get("dedup_key")
        if action != "trigger" and not dedup:
            problems.append("resolve/acknowledge needs a dedup_key")
        if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
            problems.append("dedup_key must be a string of 1-255 characters")
        if action == "trigger":
            payload = event.get("payload") or {}
            summary = payload.get("summary")
            if not isinstance(summary, str) or not 0 < len(summary) <= 1024:
                problems.append("payload.summary must be 1-1024 characters")
            if not payload.get("source"):
                problems.append("payload.source is required")
            if payload.get("severity") not in PD_SEVERITIES:
                problems.append(f"payload.severity {payload.get('severity')!r}")
            if "timestamp" in payload:
                try:
                    datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
                except (AttributeError, ValueError):
                    problems.append("payload.timestamp is not ISO 8601")
            if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                problems.append("payload.custom_details must be an object")
            for link in event.get("links") or []:
                if not isinstance(link, dict) or not str(link.get("href", "")).startswith(("http", "file:")):
                    problems.append(f"link {link!r} needs an href")
        if problems:
            body = {"status": "invalid event", "message": "Event object is invalid", "errors": problems}
            return 400, json.dumps(body).encode(), problems
        body = {"status": "success", "message": "Event processed", "dedup_key": dedup or "generated"}
        return 202, json.dumps(body).encode(), []

    def events(self) -> list[dict[str, Any]]:
        return self.json_bodies()


class Jira(StandIn):
    """Jira Cloud (REST v3, `deployment="Cloud"`): POST /rest/api/3/issue/{key}/attachments (multipart, field `file`,
    X-Atlassian-Token: no-check) and POST /rest/api/3/issue/{key}/comment (ADF body), basic auth email:token.
    Jira Server / Data Center (REST v2, `deployment="Server"` or `"DataCenter"`): the same under /rest/api/2, the
    comment body a string, a personal access token as `Authorization: Bearer`. Both answer GET
    /rest/api/2/serverInfo with their deploymentType, to anyone; 401 for a wrong login, 404 for another issue.

    Creating an issue (POST {api}/issue, `{"fields": {project: {key}, summary, issuetype: {name}, description,
    priority: {name}}}`): the summary one line of at most 255 characters, the description ADF on Cloud and a string
    on Server; 201 {"id", "key", "self"} with the next key of the project, which then takes attachments and
    comments like `key`; 400 with Jira's `errors` for a project, issue type or priority the site does not have (and
    for any priority when `priority_on_screen=False`, as a project whose create screen lacks the field)."""

    def __init__(
        self,
        user: str,
        token: str,
        key: str,
        *,
        deployment: str = "Cloud",
        tls: bool = False,
        projects: tuple[str, ...] = ("OPS",),
        issue_types: tuple[str, ...] = ("Task", "Bug", "Incident"),
        priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest"),
        priority_on_screen: bool = True,
    ) -> None:
        self.projects, self.issue_types, self.priorities = projects, issue_types, priorities
        self.priority_on_screen = priority_on_screen
        self.issues: list[dict[str, Any]] = []  # the fields of each issue created, its key added as "key"
        self.create_gate: threading.Event | None = None  # when set up, each create waits for it (after create_seen)
        self.create_seen = threading.Event()
        self.deployment = deployment
        self.cloud = deployment == "Cloud"
        if self.cloud:
            self.auth = "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()
        else:
            self.auth = f"Bearer {token}"
        self.key = key
        self.attachments: list[tuple[str, str, bytes]] = []  # (field name, filename, content)
        self.comments: list[Any] = []  # ADF documents (Cloud) or strings (Server)
        super().__init__(tls=tls)

    def check(self, request: dict[str, Any]) -> tuple[int, bytes, list[str]]:
        headers = request["headers"]
        if request["method"] == "GET" and request["path"] == "/rest/api/2/serverInfo":
            info = {"baseUrl": self.url, "version": "10.3.1", "deploymentType": self.deployment}
            return 200, json.dumps(info).encode(), []
        if headers.get("authorization") != self.auth:
            scheme = "basic auth" if self.cloud else "Bearer personal access token"
            return 401, b'{"errorMessages":["not authenticated"]}', [f"wrong or missing {scheme}"]
        api = "/rest/api/3" if self.cloud else "/rest/api/2"
        if request["path"] == f"{api}/issue":
            self.create_seen.set()
            if self.create_gate is not None and not self.create_gate.wait(60):
                return 503, b"{}", ["create issue: the test never opened the gate"]
            return self._create(request, api)
        for key in [self.key] + [issue["key"] for issue in self.issues]:
            base = f"{api}/issue/{key}"
            if request["path"] == f"{base}/attachments":
                return self._attachments(request)
            if request["path"] == f"{base}/comment":
                return self._comment(request)
        if request["path"].startswith(f"{api}/issue/"):  # another issue: Jira's own words
            return 404, b'{"errorMessages":["Issue does not exist or you do not have permission to see it."]}', []
        return 404, b'{"errorMessages":["Not found"]}', [f"unexpected path {request['path']}"]

    def _create(self, request: dict[str, Any], api: str) -> tuple[int, bytes, list[str]]:
        def refused(field: str, message: str, problems: list[str]) -> tuple[int, bytes, list[str]]:
            return 400, json.dumps({"errorMessages": [], "errors": {field: message}}).encode(), problems

        if not request["headers"].get("content-type", "").startswith("application/json"):
            return 415, b"{}", ["create issue: not application/json"]
        try:
            fields = json.loads(request["body"])["fields"]
        except (ValueError, KeyError, TypeError):
            return refused("fields", "no fields", ["create issue: body is not {'fields': {...}}"])
        project = (fields.get("project") or {}).get("key")
        if project not in self.projects:
            return refused("project", "valid project is required", [])
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip() or len(summary) > 255 or "\n" in summary:
            return refused("summary", "Summary must be less than 255 characters.", [f"summary {summary!r}"])
        if (fields.get("issuetype") or {}).get("name") not in self.issue_types:
            return refused("issuetype", "valid issue type is required", [])
        description = fields.get("description")
        if self.cloud:
            if not isinstance(description, dict) or description.get("type") != "doc":
                return refused("description", "Operation value must be an Atlassian Document", ["v3: not ADF"])
            problems = adf_problems(description)
            if problems:
                return refused("description", "invalid document", problems)
        elif not isinstance(description, str) or not description.strip():
            return refused("description", "Operation value must be a string", ["v2: description not a string"])
        size = len(description) if isinstance(description, str) else len(json.dumps(description, ensure_ascii=False))
        if size > COMMENT_MAX:
            return refused("description", "The entered text is too long.", [f"description of {size} characters"])
        if "priority" in fields:
            if not self.priority_on_screen:
                message = "Field 'priority' cannot be set. It is not on the appropriate screen, or unknown."
                return refused("priority", message, [])
            if (fields.get("priority") or {}).get("name") not in self.priorities:
                return refused("priority", "Specify the Priority (id or name) in the string format", [])
        number = 1 + sum(1 for issue in self.issues if issue["key"].startswith(f"{project}-"))
        issue_id = str(10_000 + len(self.issues) + 1)
        key = f"{project}-{number}"
        self.issues.append({**fields, "key": key})
        answer = {"id": issue_id, "key": key, "self": f"{self.url}{api}/issue/{issue_id}"}
        return 201, json.dumps(answer).encode(), []

    def _attachments(self, request: dict[str, Any]) -> tuple[int, bytes, list[str]]:
        headers = request["headers"]
        problems = []
        if headers.get("x-atlassian-token") != "no-check":
            problems.append("X-Atlassian-Token: no-check is missing")
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
            return 415, b"{}", problems + ["not multipart/form-data with a boundary"]
        message = BytesParser(policy=policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request["body"]
        )
        parts = list(message.iter_parts())
        if not parts:
            problems.append("no parts")
        answer = []
        for part in parts:
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            if name != "file":
                problems.append(f"multipart field {name!r}, not 'file'")
            if not filename:
                problems.append("a part without filename")
            content = part.get_payload(decode=True) or b""
            self.attachments.append((name, filename, content))
            answer.append({"filename": filename, "size": len(content)})
        if problems:
            return 400, b"{}", problems
        return 200, json.dumps(answer).encode(), []

    def _comment(self, request: dict[str, Any]) -> tuple[int, bytes, list[str]]:
        try:
            body = json.loads(request["body"])
        except ValueError:
            return 400, b"{}", ["comment body is not JSON"]
        document = body.get("body") or {}
        size = len(document) if isinstance(document, str) else len(json.dumps(document, ensure_ascii=False))
        if size > COMMENT_MAX:
            return 400, b'{"errors":{"comment":"The entered text is too long."}}', [f"comment of {size} characters"]
        if not self.cloud:
            if not isinstance(document, str) or not document.strip():
                return 400, b'{"errors":{"comment":"Comment body can not be empty!"}}', ["v2 body must be a string"]
            self.comments.append(document)
            return 201, b'{"id":"10000"}', []
        problems = []
        if document.get("type") != "doc" or document.get("version") != 1:
            problems.append("body must be an ADF doc, version 1")
        problems += adf_problems(document)
        if problems:
            return 400, b"{}", problems
        self.comments.append(document)
        return 201, b'{"id":"10000"}', []


def adf_problems(node: dict[str, Any], where: str = "doc") -> list[str]:
    """The Atlassian Document Format rules these comments use: allowed children, non-empty text nodes."""
    kind = node.get("type")
    problems = []
    if kind == "text":
        if not isinstance(node.get("text"), str) or not node["text"]:
            problems.append(f"{where}: empty text node")
        return problems
    allowed = ADF_CHILDREN.get(kind)
    for i, child in enumerate(node.get("content") or []):
        if allowed is not None and child.get("type") not in allowed:
            problems.append(f"{where}: {child.get('type')!r} inside {kind!r}")
        problems += adf_problems(child, f"{where}/{child.get('type')}[{i}]")
    return problems


def adf_text(node: dict[str, Any]) -> str:
    if node.get("type") == "text":
        return node["text"]
    return " ".join(adf_text(c) for c in node.get("content") or [])


class Smtp:
    """aiosmtpd on a free port, requiring AUTH LOGIN/PLAIN with this user and password, and TLS before AUTH as real
    submission servers do: STARTTLS (`tls="starttls"`, the default) or implicit TLS (`tls="ssl"`), with a
    certificate from a private CA (`ca_file`, which the client trusts through SSL_CERT_FILE). `tls=None` offers no
    TLS at all (then AUTH is refused: "538 Encryption required")."""

    def __init__(self, user: str, password: str, *, tls: str | None = "starttls") -> None:
        import ssl
        import tempfile
        from pathlib import Path

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        from imsnb.sandbox.api import issue_certificate

        self.messages: list[dict[str, Any]] = []
        self.logins: list[tuple[str, bool]] = []
        self.sessions = 0
        owner = self
        self._dir = tempfile.TemporaryDirectory(prefix="imsnb-smtp-")
        ca, cert, key = issue_certificate(30, host="localhost")
        folder = Path(self._dir.name)
        (folder / "ca.pem").write_bytes(ca)
        (folder / "cert.pem").write_bytes(cert)
        (folder / "key.pem").write_bytes(key)
        self.ca_file = folder / "ca.pem"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(folder / "cert.pem", folder / "key.pem")

        class Handler:
            async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802
                owner.sessions += 1
                session.host_name = hostname
                return responses

            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                owner.messages.append(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "raw": envelope.original_content or envelope.content,
                        "authenticated": bool(session.authenticated),
                        "tls": session.ssl is not None or tls == "ssl",
                    }
                )
                return "250 Message accepted for delivery"

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            owner.logins.append((auth_data.login.decode(), ok))
            return AuthResult(success=ok)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        extra: dict[str, Any] = {}
        if tls == "starttls":
            extra = {"tls_context": context, "require_starttls": True}
        elif tls == "ssl":
            extra = {"ssl_context": context}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.controller = Controller(
                Handler(),
                hostname="127.0.0.1",
                port=self.port,
                authenticator=authenticator,
                auth_require_tls=tls != "ssl",  # implicit TLS is TLS all along (aiosmtpd only knows STARTTLS)
                auth_required=True,
                **extra,
            )
            self.controller.start()

    def parsed(self, index: int = -1):
        return message_from_bytes(self.messages[index]["raw"], policy=policy.default)

    def close(self) -> None:
        self.controller.stop()
        self._dir.cleanup()


class TricklingSmtp:
    """An SMTP server that trickles its banner one byte every `every_s` seconds ("220 ..." never completes in
    time): a per-read timeout never trips on it. `sent` counts the bytes per connection until the client left."""

    def __init__(self, every_s: float = 1.0, total: int = 120) -> None:
        self.every_s, self.total = every_s, total
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent: list[int] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _trickle(self, conn: socket.socket) -> None:
        index = len(self.sent)
        self.sent.append(0)
        banner = (b"220 slow.example ESMTP " + b"." * self.total)[: self.total]
        with conn:
            try:
                for byte in banner:
                    if self._stop.wait(self.every_s):
                        return
                    conn.sendall(bytes([byte]))
                    self.sent[index] += 1
            except OSError:
                return  # the client left

    def finished(self) -> list[int]:
        for thread in self._threads:
            thread.join(timeout=self.total * self.every_s + 5)
        return self.sent

    def close(self) -> None:
        self._stop.set()
        self._acceptor.join(timeout=2)
        self.sock.close()
