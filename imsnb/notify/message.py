"""What one notification says, built once from a run (or a suite's / triage's runs) and rendered per channel.

One message per run or suite, never one per finding: the incident id, the notebook(s), the worst severity, the
response time the escalation matrix sets, who is on call now (by name), the findings at WARNING and above (message
and value), what changed since the last notification, and where the artifacts are (the S3 URL when archived, else
the local path).
"""

from __future__ import annotations

import html
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from imsnb import config
from imsnb.errors import ImsnbError
from imsnb.findings import Severity, escalation_for, escalation_text
from imsnb.findings.oncall import on_call_now, role_contact

SHOWN_MIN = Severity.WARNING
TABLE_COLUMNS = ("severity", "notebook", "check", "value", "message")


@dataclass
class Notice:
    incident_id: str
    notebooks: list[str]
    severity: str
    escalation: dict[str, Any]
    on_call: dict[str, Any]
    findings: list[dict[str, Any]]  # at WARNING and above, worst first, each with notebook and target
    artifacts: list[dict[str, str]]  # notebook, report, summary (URL or path), folder
    changes: list[str] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    vp: dict[str, Any] | None = None

    @property
    def title(self) -> str:
        names = ", ".join(self.notebooks)
        if Severity.parse(self.severity) < SHOWN_MIN and self.resolved:
            return f"[RESOLVED] incident {self.incident_id}: {names}"
        return f"[{self.severity}] incident {self.incident_id}: {names}"

    @property
    def on_call_text(self) -> str:
        name, role = self.on_call.get("name"), self.on_call.get("role")
        return f"{name} ({role})" if name and name != role else str(role)

    def lines(self) -> list[str]:
        """The plain-text body (Slack's fallback, the email's text part, the Jira comment's lead)."""
        esc = self.escalation
        out = [
            self.title,
            f"worst severity {self.severity}; respond within {escalation_text(esc['response_time'])}; "
            f"notify {escalation_text(esc['notification'])}; escalation {escalation_text(esc['escalation'])}",
            f"on call now: {self.on_call_text}",
        ]
        if self.vp and esc.get("escalation") == "Page VP":
            out.append(f"VP engineering: {self.vp.get('name')}")
        out += [f"changed: {c}" for c in self.changes]
        if self.findings:
            out.append("findings at WARNING and above:")
            out += [
                f"  {f['severity']:<8} {f['notebook']}: {f['check']} = {value_text(f)}: {f['message']}"
                for f in self.findings
            ]
        else:
            out.append("no findings at WARNING or above")
        out += [f"  resolved: {r['check']} on {r['target']} (was {r['was']})" for r in self.resolved]
        out += [f"report ({a['notebook']}): {a['report']}" for a in self.artifacts]
        return out

    def text(self) -> str:
        return "\n".join(self.lines())

    def rows(self) -> list[list[str]]:
        """The findings table: one row per finding at WARNING and above."""
        return [[f["severity"], f["notebook"], f["check"], value_text(f), f["message"]] for f in self.findings]

    def html_table(self) -> str:
        e = html.escape
        if not self.findings:
            return "<p>No findings at WARNING or above.</p>"
        head = "".join(
            f"<th style='text-align:left;padding:4px 8px;border:1px solid #ccc'>{c}</th>" for c in TABLE_COLUMNS
        )
        body = "".join(
            "<tr>" + "".join(f"<td style='padding:4px 8px;border:1px solid #ccc'>{e(c)}</td>" for c in row) + "</tr>"
            for row in self.rows()
        )
        return f"<table style='border-collapse:collapse'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def value_text(finding: dict[str, Any]) -> str:
    value = finding.get("value")
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:.4g}"
    unit = finding.get("unit") or ""
    return f"{value} {unit}".strip()


def build_notice(summaries: list[dict[str, Any]], folders: list[Path], *, archive: str | None = None) -> Notice:
    """The one message for these runs (their summary.json contents and folders)."""

    worst = Severity.worst(s.get("severity") for s in summaries)
    esc = escalation_for(worst)
    findings = []
    for summary in summaries:
        for f in summary.get("findings") or []:
            if Severity.parse(f.get("severity") or "OK") >= SHOWN_MIN:
                findings.append({**f, "notebook": summary.get("notebook"), "target": target_of(f, summary)})
    findings.sort(key=lambda f: -Severity.parse(f["severity"]))
    return Notice(
        incident_id=str(summaries[0].get("incident_id") or folders[0].parent.name),
        notebooks=[str(s.get("notebook")) for s in summaries],
        severity=worst.name,
        escalation={
            "response_time": esc.response_time,
            "notification": esc.notification,
            "escalation": esc.escalation,
        },
        on_call=on_call_now(),
        findings=findings,
        artifacts=[artifact(summary, folder, archive) for summary, folder in zip(summaries, folders, strict=True)],
        vp=role_contact("vp_engineering"),
    )


def artifact(summary: dict[str, Any], folder: Path, archive: str | None) -> dict[str, str]:
    """Where a run's report and summary are: under the S3 archive URL when archived, else the local path."""
    if archive:
        base = f"{archive.rstrip('/')}/{folder.parent.name}/{folder.name}"
        report, summary_at = f"{base}/report.html", f"{base}/summary.json"
    else:
        report, summary_at = str((folder / "report.html").resolve()), str((folder / "summary.json").resolve())
    return {"notebook": str(summary.get("notebook")), "report": report, "summary": summary_at, "folder": str(folder)}


def link(location: str) -> str:
    """An https:// or file:// link for a report location (s3://bucket/key becomes the S3 console's object page)."""
    if location.startswith("s3://"):
        bucket, _, key = location[5:].partition("/")
        return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"
    if location.startswith(("http://", "https://")):
        return location
    return Path(location).resolve().as_uri()


def host_port(url: str) -> str:
    """host:port of a URL, never its user info (http://user:pw@host:8000 -> host:8000): a target's name is in
    messages, dedup keys and the notification state."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{parts.port}" if parts.port else host


def target_of(finding: dict[str, Any], summary: dict[str, Any]) -> str:
    """The system a finding is about, for PagerDuty's dedup key and source: a named environment and the component,
    else the address imsnb connects to (host:port/db, the API's host, the RDS instance, this host)."""
    component = str(finding.get("component") or "unknown")
    environment = (summary.get("parameters") or {}).get("environment")
    if environment and environment != "default":
        return f"{environment}/{component}"
    try:
        if component == "database":
            return config.postgres_label().split(" as ")[0]
        if component == "cache":
            return config.redis_label()
        if component == "api":
            return host_port(config.api_url())
        if component == "tls":
            return ",".join(config.tls_endpoints()) or "tls"
        if component == "aws":
            check = str(finding.get("check") or "")
            return f"rds/{config.aws_name('rds_instance')}" if check.startswith("aws.rds.") else "aws"
        if component == "host":
            return socket.gethostname()
    except ImsnbError:
        pass
    return component
