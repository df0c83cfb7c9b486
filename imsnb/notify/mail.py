"""Email over SMTP: an HTML body with the findings table (and a text part), report.html and summary.json attached.

Server, sender and recipients from `[notify.email]`; the password only from IMSNB_SMTP_PASSWORD. STARTTLS when
`starttls = true`, implicit TLS when `ssl = true`.
"""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from imsnb.notify.http import DeliveryFailed
from imsnb.notify.message import Notice

TIMEOUT_S = 10.0


def recipients(settings: dict[str, Any], notice: Notice) -> list[str]:
    to = settings.get("to") or []
    to = [to] if isinstance(to, str) else list(to)
    person_email = (notice.on_call.get("contact") or {}).get("email")
    if settings.get("to_on_call") and person_email and person_email not in to:
        to.append(person_email)
    return to


def build(notice: Notice, settings: dict[str, Any], attachments: list[tuple[str, Path]]) -> EmailMessage:
    """The message: text and HTML alternatives, then the attachments (name as shown, file to read)."""
    msg = EmailMessage()
    msg["Subject"] = notice.title
    msg["From"] = str(settings["from"])
    msg["To"] = ", ".join(recipients(settings, notice))
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="imsnb")
    msg.set_content(notice.text())
    e = html.escape
    lead = "".join(f"<p>{e(line)}</p>" for line in notice.lines()[1:3])
    changed = "".join(f"<li>{e(c)}</li>" for c in notice.changes)
    changed += "".join(
        f"<li>resolved: {e(r['check'])} on {e(r['target'])} (was {e(r['was'])})</li>" for r in notice.resolved
    )
    reports = "".join(f"<li>{e(a['notebook'])}: <code>{e(a['report'])}</code></li>" for a in notice.artifacts)
    msg.add_alternative(
        f"<html><body><h2>{e(notice.title)}</h2>{lead}"
        + (f"<ul>{changed}</ul>" if changed else "")
        + f"<h3>Findings</h3>{notice.html_table()}<h3>Reports</h3><ul>{reports}</ul>"
        "<p>report.html and summary.json are attached.</p></body></html>",
        subtype="html",
    )
    for name, path in attachments:
        data = path.read_bytes()
        if name.endswith(".html"):
            msg.add_attachment(data, maintype="text", subtype="html", filename=name, params={"charset": "utf-8"})
        else:
            msg.add_attachment(data, maintype="application", subtype="json", filename=name)
    return msg


def send(msg: EmailMessage, settings: dict[str, Any], password: str | None) -> str:
    host, port = str(settings["host"]), int(settings.get("port", 25))
    timeout = float(settings.get("timeout_s", TIMEOUT_S))
    try:
        if settings.get("ssl"):
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if settings.get("starttls") and not settings.get("ssl"):
                client.starttls(context=ssl.create_default_context())
            if password:
                client.login(str(settings.get("user") or settings["from"]), password)
            refused = client.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP {host}:{port}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    accepted = len(msg.get_all("To", [""])[0].split(",")) - len(refused)
    return f"{accepted} recipient(s)" + (f", refused {', '.join(refused)}" if refused else "")
