"""The runbook's /health check and response times: the GETs (a deadline for each whole call, a cap on what is
read; `imsnb.deadline`) and their judges side by side."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from imsnb import config, deadline
from imsnb.findings import Finding, Severity, judge, threshold, unjudged

__all__ = [
    "BODY_EXCERPT",
    "EXPECTED_SERVICES",
    "MAX_BODY_BYTES",
    "TIMEOUT_S",
    "HealthCheck",
    "Response",
    "fetch",
    "health",
    "health_findings",
    "response_time_finding",
    "response_times",
]

TIMEOUT_S = 5.0
MAX_BODY_BYTES = 64 * 1024  # a /health answer is a few hundred bytes
BODY_EXCERPT = 300
EXPECTED_SERVICES = ("database", "cache", "api")


@dataclass(kw_only=True)
class HealthCheck:
    url: str
    status_code: int | None
    elapsed_ms: float | None
    body: str  # an excerpt
    data: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # the request itself failed (refused, timeout)


@dataclass
class Response:
    url: str
    status_code: int | None
    elapsed_ms: float
    body: str
    error: str | None = None
    truncated: bool = False  # the body was longer than the cap and was cut


def _url(path: str, base: str | None) -> str:
    if path.startswith(("http://", "https://")):
        return path
    return (base or config.api_url()).rstrip("/") + "/" + path.lstrip("/")


def fetch(
    path: str, *, base: str | None = None, timeout_s: float = TIMEOUT_S, max_bytes: int = MAX_BODY_BYTES
) -> Response:
    """GET one URL within `timeout_s` for the whole call (a server trickling its answer byte by byte is cut off at
    the deadline), reading at most `max_bytes`; never raises for HTTP or network errors (they are in
    `error`/`status_code`)."""
    url = _url(path, base)
    reply = deadline.get(
        url, timeout_s=timeout_s, max_bytes=max_bytes, context=_ssl_context(), headers={"Accept": "application/json"}
    )
    body = reply.body.decode("utf-8", "replace")
    return Response(reply.url, reply.status, reply.elapsed_ms, body, reply.error, reply.truncated)


def _ssl_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca_file = config.tls_ca_file()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context


def health(*, base: str | None = None, path: str = "/health", timeout_s: float = TIMEOUT_S) -> HealthCheck:
    """The runbook's `curl .../health`, judged against the shape it expects: status, timestamp, services.*."""
    reply = fetch(path, base=base, timeout_s=timeout_s)
    excerpt = reply.body[:BODY_EXCERPT]
    if reply.error:
        return HealthCheck(
            url=reply.url,
            status_code=None,
            elapsed_ms=reply.elapsed_ms,
            body="",
            data=None,
            problems=[reply.error],
            error=reply.error,
        )
    problems = []
    data = None
    if reply.truncated:
        problems.append(f"body larger than {MAX_BODY_BYTES // 1024} KiB (cut there)")
    if reply.status_code != 200:
        problems.append(f"HTTP {reply.status_code}")
    try:
        data = json.loads(reply.body)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:
        problems.append("body is not a JSON object")
        data = None
    if data is not None:
        if data.get("status") != "healthy":
            problems.append(f"status is {data.get('status')!r}")
        if not isinstance(data.get("timestamp"), str):
            problems.append("timestamp missing")
        services = data.get("services")
        if not isinstance(services, dict):
            problems.append("services missing")
        else:
            for name in EXPECTED_SERVICES:
                if services.get(name) != "healthy":
                    problems.append(f"services.{name} is {services.get(name)!r}")
    return HealthCheck(
        url=reply.url,
        status_code=reply.status_code,
        elapsed_ms=reply.elapsed_ms,
        body=excerpt,
        data=data,
        problems=problems,
    )


def response_times(
    path: str = "/api/v1/health", *, base: str | None = None, samples: int = 5, timeout_s: float = TIMEOUT_S
) -> pd.DataFrame:
    """`samples` sequential GETs of one path: status and elapsed ms each (errors included, never raised).

    Sampling stops at the first request that times out: a hanging API would otherwise cost `samples` timeouts.
    """
    rows = []
    for _ in range(max(1, samples)):
        reply = fetch(path, base=base, timeout_s=timeout_s)
        rows.append(
            {"url": reply.url, "status": reply.status_code, "elapsed_ms": reply.elapsed_ms, "error": reply.error}
        )
        if reply.error and reply.error.startswith("timeout"):
            break
    return pd.DataFrame(rows, columns=["url", "status", "elapsed_ms", "error"])


def health_findings(check: HealthCheck) -> list[Finding]:
    """`api.reachable` (CRITICAL when the request failed) and `api.health` (ERROR when anything is off)."""
    if check.error:
        return [Finding.of("api.reachable", Severity.CRITICAL, f"API unreachable at {check.url}: {check.error}")]
    reach = Finding.ok(
        "api.reachable",
        f"{check.url} answered HTTP {check.status_code} in {check.elapsed_ms:.0f} ms",
        value=check.elapsed_ms,
        unit="ms",
    )
    if not check.problems:
        healthy = "status healthy; database, cache and api healthy"
        return [reach, Finding.ok("api.health", healthy, value="healthy", threshold="healthy")]
    body = " ".join(check.body.split())
    return [
        reach,
        Finding.of(
            "api.health",
            Severity.ERROR,
            f"{'; '.join(check.problems)} — body: {body[:BODY_EXCERPT]}",
            value=(check.data or {}).get("status"),
            threshold="healthy",
        ),
    ]


def response_time_finding(times: pd.DataFrame) -> Finding:
    """p95 of the sampled requests against the runbook's "Response time P95: < 500ms" (`api.p95_latency`'s level);
    failed requests make it at least ERROR, all of them failing CRITICAL."""
    limit = threshold("api.p95_latency")
    ok = times[times["error"].isna()]
    failed = len(times) - len(ok)
    if ok.empty:
        message = f"all {len(times)} requests failed: {times['error'].iloc[0]}"
        return unjudged("api.response_time", Severity.CRITICAL, message, limit=limit)
    p95 = float(ok["elapsed_ms"].quantile(0.95))
    return judge(
        "api.response_time",
        round(p95, 1),
        f"{times['url'].iloc[0]}: p95 {p95:.0f} ms, median {ok['elapsed_ms'].median():.0f} ms over "
        f"{len(times)} requests" + (f", {failed} failed" if failed else ""),
        limit=limit,
        floor=Severity.ERROR if failed else None,
    )
