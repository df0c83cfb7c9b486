"""Email over SMTP: an HTML body with the findings table (and a text part), report.html and summary.json attached.

Server, sender and recipients from `[notify.email]`; the password only from IMSNB_SMTP_PASSWORD. STARTTLS when
`starttls = true`, implicit TLS when `ssl = true` (port 465 by default). The password is sent only inside TLS:
AUTH without STARTTLS or SSL is bad input (`tls_problem`), and a server that does not offer STARTTLS when asked is
a failure, never a fallback to clear text. Mails are marked `Auto-Submitted: auto-generated` (RFC 3834: no
vacation replies or loops) with a Message-ID in the sender's own domain.
"""

from __future__ import annotations

import contextlib
import html
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from imsnb.deadline import deadline_message
from imsnb.notify.http import DeliveryFailed, Watch
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
    msg["Message-ID"] = make_msgid(idstring="imsnb", domain=sender_domain(str(settings["from"])))
    msg["Auto-Submitted"] = "auto-generated"
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


def sender_domain(sender: str) -> str:
    """The domain of the From address (`"imsnb" <imsnb@example.com>` -> example.com), for the Message-ID."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2].strip().strip(">").lower()
    return domain or "localhost"


def port_of(settings: dict[str, Any]) -> int:
    """The configured port, else 465 for implicit TLS (`ssl = true`) and 25 otherwise."""
    return int(settings.get("port") or (465 if settings.get("ssl") else 25))


def tls_problem(settings: dict[str, Any], password: str | None) -> str | None:
    """Why these settings cannot carry the password (AUTH without STARTTLS or SSL), or None."""
    if settings.get("ssl") and settings.get("starttls"):
        return "[notify.email] sets both ssl and starttls: use ssl = true (port 465) or starttls = true (port 587)"
    uses_tls = bool(settings.get("ssl") or settings.get("starttls"))
    if (password or settings.get("user")) and not uses_tls:
        return (
            "[notify.email] logs in (user / IMSNB_SMTP_PASSWORD) without TLS: the password would cross the network "
            "in clear; add starttls = true (port 587) or ssl = true (port 465)"
        )
    return None


def send(msg: EmailMessage, settings: dict[str, Any], password: str | None) -> str:
    host, port = str(settings["host"]), port_of(settings)
    problem = tls_problem(settings, password)
    if problem:
        raise DeliveryFailed(f"SMTP {host}:{port}: not sent: {problem}")
    timeout = float(settings.get("timeout_s", TIMEOUT_S))
    timeout = float(settings.get("timeout_s", TIMEOUT_S))
    watch = Watch(time.monotonic() + timeout)
    try:
        context = ssl.create_default_context()
        client: smtplib.SMTP = (
            _TLSClient(timeout=timeout, context=context) if settings.get("ssl") else _Client(timeout=timeout)
        )
        client.watch = watch  # type: ignore[attr-defined]
        client._host = host  # what STARTTLS and implicit TLS check the certificate against
        try:
            client.connect(host, port)
            if settings.get("starttls") and not settings.get("ssl"):
                client.starttls(context=context)  # SMTPNotSupportedError when not offered: never on in clear
            if password:
                client.login(str(settings.get("user") or settings["from"]), password)
            refused = client.send_message(msg)
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
            client.close()
    except (smtplib.SMTPException, OSError) as exc:
        if watch.fired:
            raise DeliveryFailed(f"SMTP {host}:{port}: {deadline_message(timeout)}", retryable=True) from None
        raise DeliveryFailed(f"SMTP {host}:{port}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    finally:
        watch.close()
    accepted = len(msg.get_all("To", [""])[0].split(",")) - len(refused)
    return f"{accepted} recipient(s)" + (f", refused {', '.join(refused)}" if refused else "")


class _Client(smtplib.SMTP):
    """smtplib with the whole-call deadline: the socket it opens is watched (`Watch`) from the first byte of the
    banner to QUIT, so a server that trickles cannot hold delivery (a read timeout alone never trips on it)."""

    watch: Watch

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self.watch.create_connection((host, port), timeout, self.source_address)


class _TLSClient(smtplib.SMTP_SSL):
    watch: Watch

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = self.watch.create_connection((host, port), timeout, self.source_address)
        return self.context.wrap_socket(raw, server_hostname=self._host)
