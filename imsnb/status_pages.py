"""Third-party status: the runbook's "Check third-party service status" for the providers named in imsnb.toml.

    [status_pages]
    stripe = "https://status.stripe.com/api/v2/status.json"
    github = "https://www.githubstatus.com/api/v2/status.json"

Each is a Statuspage-style `/api/v2/status.json` ({"page": {...}, "status": {"indicator": "none" | "minor" |
"major" | "critical" | "maintenance", "description": "..."}}), read with a whole-call deadline and a size cap
(`imsnb.deadline`), all pages at once, so a slow or trickling page costs the run at most TIMEOUT_S. A provider
reporting anything but `none` is a WARNING naming it; a page that cannot be read says why (INFO: imsnb could not
tell, the provider may be fine).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import pandas as pd

from imsnb import config, deadline
from imsnb.config.toml import STATUS_PAGES_CHECK
from imsnb.errors import NotConfigured
from imsnb.findings import Finding, Severity

TIMEOUT_S = 5.0  # for each page, the whole call (connect, TLS, headers, body)
MAX_BYTES = 256 * 1024  # a status.json is a few hundred bytes; a page that sends more is not one
MAX_PARALLEL = 8
INDICATORS = ("none", "minor", "major", "critical", "maintenance")
COLUMNS = ["provider", "indicator", "description", "updated_at", "url", "error", "elapsed_ms"]


@dataclass
class PageStatus:
    provider: str
    indicator: str | None
    description: str
    updated_at: str | None
    url: str
    error: str | None
    elapsed_ms: float


def page_status(provider: str, url: str, *, timeout_s: float = TIMEOUT_S) -> PageStatus:
    """One provider's indicator and description; `error` says why not when the page could not be read."""
    reply = deadline.get(url, timeout_s=timeout_s, max_bytes=MAX_BYTES, headers={"Accept": "application/json"})

    def failed(why: str) -> PageStatus:
        return PageStatus(provider, None, "", None, url, why, reply.elapsed_ms)

    if reply.error:
        return failed(reply.error)
    if reply.status != 200:
        return failed(f"HTTP {reply.status}")
    if reply.truncated:
        return failed(f"the answer is larger than {MAX_BYTES // 1024} KiB: not a status.json")
    try:
        payload = json.loads(reply.body)
        status = payload["status"]
        indicator = str(status["indicator"]).strip().lower()
    except (ValueError, KeyError, TypeError):
        return failed("not a Statuspage status.json (no status.indicator)")
    page = payload.get("page") if isinstance(payload.get("page"), dict) else {}
    description = " ".join(str(status.get("description") or "").split())[:200]
    return PageStatus(provider, indicator, description, page.get("updated_at"), url, None, reply.elapsed_ms)


def page_statuses(pages: dict[str, str] | None = None, *, timeout_s: float = TIMEOUT_S) -> pd.DataFrame:
    """Every configured page (`[status_pages]`, or `pages`), read in parallel: one row per provider, in the
    configuration's order. NotConfigured when there is none to read."""
    pages = config.status_pages() if pages is None else pages
    if not pages:
        raise NotConfigured(
            'no [status_pages] in imsnb.toml (name = "https://.../api/v2/status.json")', check=STATUS_PAGES_CHECK
        )
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(pages)), thread_name_prefix="imsnb-status") as pool:
        found = list(pool.map(lambda item: page_status(*item, timeout_s=timeout_s), pages.items()))
    return pd.DataFrame([asdict(s) for s in found], columns=COLUMNS)


def status_findings(statuses: pd.DataFrame) -> list[Finding]:
    """Per provider: `none` is OK; any other indicator a WARNING naming the provider and what it reports; a page
    that could not be read is INFO saying why."""
    found = []
    for row in statuses.itertuples():
        if isinstance(row.error, str) and row.error:
            found.append(
                Finding.of(
                    STATUS_PAGES_CHECK,
                    Severity.INFO,
                    f"{row.provider}: status page not read ({row.error}): check {row.url} by hand",
                    threshold="none",
                )
            )
            continue
        said = f" ({row.description})" if isinstance(row.description, str) and row.description else ""
        found.append(
            Finding.of(
                STATUS_PAGES_CHECK,
                Severity.OK if row.indicator == "none" else Severity.WARNING,
                f"{row.provider} reports no incident{said}"
                if row.indicator == "none"
                else f"{row.provider} reports {row.indicator}{said}: a third-party incident may explain the errors",
                value=row.indicator,
                threshold="none",
            )
        )
    return found


def third_party_findings(*, timeout_s: float = TIMEOUT_S) -> list[Finding]:
    """What triage adds: the configured providers' findings, nothing at all when `[status_pages]` names none."""
    pages = config.status_pages()
    return status_findings(page_statuses(pages, timeout_s=timeout_s)) if pages else []
