"""`[notify]` of imsnb.toml: which destination carries each channel of the runbook's escalation matrix.

    [notify]
    min_severity = "WARNING"          # runs whose worst finding is below this notify no one (resolutions still do)

    [notify.routes]                   # optional; the default maps the matrix's channels like this
    Slack = ["slack"]
    Email = ["email"]
    SMS = ["pagerduty"]
    Phone = ["pagerduty"]
    "Page on-call" = ["pagerduty"]
    "Page VP" = ["pagerduty"]

    [notify.slack]                    # the webhook URL comes from IMSNB_SLACK_WEBHOOK_URL only

    [notify.email]
    host = "smtp.example.com"
    port = 587
    starttls = true
    from = "imsnb@example.com"
    to = ["ops@example.com"]
    user = "imsnb"                    # the password comes from IMSNB_SMTP_PASSWORD only
    to_on_call = true                 # also mail the person on call (their [oncall.people] email)

    [notify.pagerduty]                # the routing key comes from IMSNB_PAGERDUTY_ROUTING_KEY only
    url = "https://events.pagerduty.com/v2/enqueue"

A destination is on when its table is present. Secrets in this file are refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from imsnb import config
from imsnb.errors import NotConfigured
from imsnb.findings import Severity, escalation_for
from imsnb.notify.http import check_secure
from imsnb.notify.mail import tls_problem

DESTINATIONS = ("slack", "email", "pagerduty")
# The secret each destination needs, from the environment only (every name matches config.SECRET_ENV_NAME, so its
# value is scrubbed from artifacts and messages like any other secret).
SECRET_ENV = {
    "slack": "IMSNB_SLACK_WEBHOOK_URL",
    "pagerduty": "IMSNB_PAGERDUTY_ROUTING_KEY",
    "email": "IMSNB_SMTP_PASSWORD",
}
DEFAULT_ROUTES = {
    "Slack": ("slack",),
    "Email": ("email",),
    "SMS": ("pagerduty",),
    "Phone": ("pagerduty",),
    "Page on-call": ("pagerduty",),
    "Page VP": ("pagerduty",),
}
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
EMAIL_KEYS = {"host", "port", "starttls", "ssl", "from", "to", "user", "to_on_call", "timeout_s"}


@dataclass(frozen=True)
class Routes:
    routes: dict[str, tuple[str, ...]]
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # destination -> its table
    min_severity: Severity = Severity.WARNING

    def channels(self, severity: Severity | str) -> list[str]:
        """The matrix's channels for a severity: its notification ("Slack + Email + SMS") and its page, if any."""
        esc = escalation_for(severity)
        found = [c.strip() for c in esc.notification.split("+") if c.strip() and c.strip() != "None"]
        if esc.page:
            found.append(esc.escalation)
        return found

    def destinations(self, severity: Severity | str) -> list[str]:
        """The configured destinations that carry the channels of `severity`, in DESTINATIONS order."""
        wanted = {d for channel in self.channels(severity) for d in self.routes.get(channel, ())}
        return [d for d in DESTINATIONS if d in wanted and d in self.settings]


def load_routes() -> Routes:
    """The `[notify]` table as Routes; NotConfigured (one line) when absent or wrong."""
    section = config.toml_section("notify")
    if section is None:
        where = config.config_file() or "imsnb.toml (none found; set IMSNB_CONFIG)"
        raise NotConfigured(f"--notify needs a [notify] table in {where}: see docs/notifications.md")
    return routes_from(section)


def routes_from(section: dict[str, Any]) -> Routes:
    _refuse_secrets(section, "[notify]")
    try:
        minimum = Severity.parse(section.get("min_severity", "WARNING"))
    except ValueError as exc:
        raise NotConfigured(f"[notify] min_severity: {exc}") from None
    routes = dict(DEFAULT_ROUTES)
    for channel, targets in (section.get("routes") or {}).items():
        if channel not in DEFAULT_ROUTES:
            raise NotConfigured(
                f"[notify.routes] {channel!r} is not a channel of the matrix ({', '.join(DEFAULT_ROUTES)})"
            )
        targets = [targets] if isinstance(targets, str) else targets
        unknown = [t for t in targets if t not in DESTINATIONS]
        if unknown:
            raise NotConfigured(
                f"[notify.routes] {channel}: unknown destination {unknown[0]!r} ({', '.join(DESTINATIONS)})"
            )
        routes[channel] = tuple(targets)
    settings = {}
    for name in DESTINATIONS:
        table = section.get(name)
        if table is None:
            continue
        if not isinstance(table, dict):
            raise NotConfigured(f"[notify] {name} must be a table ([notify.{name}])")
        settings[name] = dict(table)
    unknown = sorted(set(section) - {"min_severity", "routes", *DESTINATIONS})
    if unknown:
        raise NotConfigured(
            f"[notify] unknown key {unknown[0]!r} (use min_severity, routes, {', '.join(DESTINATIONS)})"
        )
    if not settings:
        raise NotConfigured("[notify] names no destination: add [notify.slack], [notify.email] or [notify.pagerduty]")
    if "email" in settings:
        _check_email(settings["email"])
    if "pagerduty" in settings:
        _check_pagerduty(settings["pagerduty"])
    return Routes(routes, settings, minimum)


def _check_pagerduty(table: dict[str, Any]) -> None:
    unknown = sorted(set(table) - {"url"})
    if unknown:
        raise NotConfigured(f"[notify.pagerduty] unknown key {unknown[0]!r} (use url)")
    if "url" in table:
        problem = check_secure(str(table["url"]), "[notify.pagerduty] url")
        if problem:
            raise NotConfigured(f"{problem} (the routing key goes with every event)")


def _check_email(table: dict[str, Any]) -> None:
    unknown = sorted(set(table) - EMAIL_KEYS)
    if unknown:
        raise NotConfigured(f"[notify.email] unknown key {unknown[0]!r} (use {', '.join(sorted(EMAIL_KEYS))})")
    for key in ("host", "from"):
        if not table.get(key):
            raise NotConfigured(f"[notify.email] needs {key} = ...")
    if not table.get("to") and not table.get("to_on_call"):
        raise NotConfigured('[notify.email] needs to = ["..."] (or to_on_call = true)')
    try:
        int(table.get("port", 25))
    except (TypeError, ValueError):
        raise NotConfigured(f"[notify.email] port={table.get('port')!r} is not a number") from None

    problem = tls_problem(table, None)
    if problem:
        raise NotConfigured(problem)


def _refuse_secrets(value: Any, where: str) -> None:
    """Webhook URLs, routing keys and passwords belong in the environment, never in a file that travels."""
    if isinstance(value, dict):
        for key, item in value.items():
            if config.SECRET_ENV_NAME.search(str(key)):
                raise NotConfigured(f"{where} {key} looks like a secret: set it in the environment instead")
            _refuse_secrets(item, f"{where} {key}")
    elif isinstance(value, list):
        for item in value:
            _refuse_secrets(item, where)
    elif isinstance(value, str) and "hooks.slack.com/" in value:
        raise NotConfigured(f"{where} holds a secret (a Slack webhook URL): use the environment")
    elif isinstance(value, str) and config.secret_in_value(value):  # the one rule of every place a value enters
        raise NotConfigured(f"{where} holds a secret ({config.secret_in_value(value)}): use the environment")


def secret(destination: str) -> str | None:
    """The destination's secret from the environment, or None."""
    return os.environ.get(SECRET_ENV[destination]) or None
