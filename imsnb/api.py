"""The API and the network: the runbook's /health check, response times, TCP reachability, TLS certificates.

Standard library HTTP with a deadline for each whole call and a cap on what is read (`imsnb.deadline`);
certificates parsed with `cryptography`.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb import config, deadline
from imsnb.errors import NotConfigured
from imsnb.findings import Finding, Severity, judge, threshold

TIMEOUT_S = 5.0
MAX_BODY_BYTES = 64 * 1024  # a /health answer is a few hundred bytes
BODY_EXCERPT = 300
EXPECTED_SERVICES = ("database", "cache", "api")


@dataclass
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


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


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
        return HealthCheck(reply.url, None, reply.elapsed_ms, "", None, [reply.error], reply.error)
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
    return HealthCheck(reply.url, reply.status_code, reply.elapsed_ms, excerpt, data, problems)


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


def tcp_reachability(targets: list[str], *, timeout_s: float = 3.0) -> pd.DataFrame:
    """The runbook's `telnet $API_HOST 8000` / `ping $DB_HOST`, as TCP connects to host:port pairs."""
    rows = []
    for target in targets:
        host, _, port_text = target.rpartition(":")
        row = {"target": target, "host": host, "port": None, "reachable": False, "connect_ms": None, "error": None}
        try:
            row["port"] = int(port_text)
            if not host:
                raise ValueError
        except ValueError:
            row["error"] = "not host:port"
            rows.append(row)
            continue
        started = time.perf_counter()
        try:
            with socket.create_connection((host.strip("[]"), row["port"]), timeout=timeout_s):
                row["reachable"], row["connect_ms"] = True, _ms(started)
        except OSError as exc:
            row["error"] = (
                f"timeout after {timeout_s:g} s" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=["target", "host", "port", "reachable", "connect_ms", "error"])


@dataclass
class Certificate:
    endpoint: str
    subject: str | None = None
    issuer: str | None = None
    sans: list[str] = field(default_factory=list)
    not_before: datetime | None = None
    not_after: datetime | None = None
    days_left: float | None = None
    chain_valid: bool | None = None
    verify_error: str | None = None
    error: str | None = None  # could not connect or handshake at all


def certificate(
    endpoint: str, *, timeout_s: float = TIMEOUT_S, ca_file: str | None = None, now: datetime | None = None
) -> Certificate:
    """The certificate a TLS endpoint presents (fetched even if invalid), and whether its chain and name verify."""
    from cryptography import x509

    host, _, port_text = endpoint.rpartition(":")
    result = Certificate(endpoint)
    try:
        port = int(port_text)
        if not host:
            raise ValueError
    except ValueError:
        result.error = "not host:port"
        return result
    insecure = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    ends = time.monotonic() + timeout_s  # one deadline for both handshakes: a trickling server is cut off
    try:
        der = _handshake(host, port, insecure, ends)
    except (OSError, ssl.SSLError) as exc:
        result.error = _handshake_error(exc, timeout_s)
        return result
    cert = x509.load_der_x509_certificate(der)
    now = now or datetime.now(UTC)
    result.subject = cert.subject.rfc4514_string()
    result.issuer = cert.issuer.rfc4514_string()
    result.not_before, result.not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    result.days_left = round((cert.not_valid_after_utc - now).total_seconds() / 86400, 2)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        result.sans = [str(n.value) for n in names]
    except x509.ExtensionNotFound:
        result.sans = []
    verifying = ssl.create_default_context()
    ca = ca_file or config.tls_ca_file()
    if ca:
        verifying.load_verify_locations(ca)
    try:
        _handshake(host, port, verifying, ends)
        result.chain_valid = True
    except ssl.SSLCertVerificationError as exc:
        result.chain_valid, result.verify_error = False, exc.verify_message or _one_line(exc)
    except (OSError, ssl.SSLError) as exc:
        result.chain_valid, result.verify_error = False, _handshake_error(exc, timeout_s)
    return result


class _DeadlineExceeded(TimeoutError):
    pass


def _handshake(host: str, port: int, context: ssl.SSLContext, ends: float) -> bytes:
    """The certificate (DER) of a TLS handshake finished before the monotonic time `ends`; _DeadlineExceeded
    when the server trickles it past that."""
    remaining = ends - time.monotonic()
    if remaining <= 0:
        raise _DeadlineExceeded
    with socket.create_connection((host, port), timeout=remaining) as raw, deadline.Watchdog(raw, remaining) as dog:
        try:
            tls = context.wrap_socket(raw, server_hostname=host)
        except (OSError, ssl.SSLError):
            if dog.fired.is_set():
                raise _DeadlineExceeded from None
            raise
        with tls:
            return tls.getpeercert(binary_form=True)


def _handshake_error(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, _DeadlineExceeded):
        return deadline.deadline_message(timeout_s, "TLS handshake")
    return f"timeout after {timeout_s:g} s" if isinstance(exc, TimeoutError) else _one_line(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def certificates(endpoints: list[str], **kwargs: Any) -> pd.DataFrame:
    """`certificate` for each endpoint, as a table."""
    rows = [certificate(e, **kwargs).__dict__ for e in endpoints]
    return pd.DataFrame(rows, columns=list(Certificate.__dataclass_fields__))


# --- findings ---------------------------------------------------------------------------------------------------


def health_findings(check: HealthCheck) -> list[Finding]:
    """`api.reachable` (CRITICAL when the request failed) and `api.health` (ERROR when anything is off)."""
    if check.error:
        return [
            Finding(
                "api.reachable",
                "api",
                Severity.CRITICAL,
                None,
                None,
                "",
                f"API unreachable at {check.url}: {check.error}",
            )
        ]
    reach = Finding(
        "api.reachable",
        "api",
        Severity.OK,
        check.elapsed_ms,
        None,
        "ms",
        f"{check.url} answered HTTP {check.status_code} in {check.elapsed_ms:.0f} ms",
    )
    if not check.problems:
        health_ok = Finding(
            "api.health",
            "api",
            Severity.OK,
            "healthy",
            "healthy",
            "",
            "status healthy; database, cache and api healthy",
        )
        return [reach, health_ok]
    body = " ".join(check.body.split())
    return [
        reach,
        Finding(
            "api.health",
            "api",
            Severity.ERROR,
            (check.data or {}).get("status"),
            "healthy",
            "",
            f"{'; '.join(check.problems)} — body: {body[:BODY_EXCERPT]}",
        ),
    ]


def response_time_finding(times: pd.DataFrame) -> Finding:
    """p95 of the sampled requests against the runbook's 500 ms; failed requests make it at least ERROR."""
    ok = times[times["error"].isna()]
    failed = len(times) - len(ok)
    if ok.empty:
        return Finding(
            "api.response_time",
            "api",
            Severity.CRITICAL,
            None,
            threshold("api.p95_latency").warning,
            "ms",
            f"all {len(times)} requests failed: {times['error'].iloc[0]}",
        )
    p95 = float(ok["elapsed_ms"].quantile(0.95))
    finding = judge(
        "api.p95_latency",
        "api",
        round(p95, 1),
        f"{times['url'].iloc[0]}: p95 {p95:.0f} ms, median {ok['elapsed_ms'].median():.0f} ms over "
        f"{len(times)} requests" + (f", {failed} failed" if failed else ""),
    )
    finding.check = "api.response_time"
    if failed:
        finding.severity = max(finding.severity, Severity.ERROR)
    return finding


def reachability_findings(reach: pd.DataFrame) -> list[Finding]:
    findings = []
    for row in reach.itertuples():
        if row.reachable:
            findings.append(
                Finding(
                    "host.tcp_reachable",
                    "host",
                    Severity.OK,
                    row.connect_ms,
                    None,
                    "ms",
                    f"{row.target} accepts connections ({row.connect_ms:.0f} ms)",
                )
            )
        else:
            findings.append(
                Finding(
                    "host.tcp_reachable",
                    "host",
                    Severity.CRITICAL,
                    None,
                    None,
                    "",
                    f"{row.target} unreachable: {row.error}",
                )
            )
    return findings


def certificate_finding(cert: Certificate) -> Finding:
    """WARNING under 30 days, ERROR under 7, CRITICAL expired, invalid chain or no handshake."""
    if cert.error:
        return Finding(
            "tls.reachable",
            "tls",
            Severity.CRITICAL,
            None,
            None,
            "",
            f"{cert.endpoint}: no TLS handshake: {cert.error}",
        )
    finding = judge(
        "tls.days_to_expiry",
        "tls",
        cert.days_left,
        f"{cert.endpoint}: certificate for {', '.join(cert.sans) or cert.subject} expires "
        f"{cert.not_after:%Y-%m-%d} ({cert.days_left:.0f} days left)",
    )
    if cert.days_left is not None and cert.days_left <= 0:
        finding.severity, finding.message = Severity.CRITICAL, finding.message.replace("expires", "EXPIRED")
    if not cert.chain_valid:
        finding.severity = Severity.CRITICAL
        finding.message += f"; chain does not verify: {cert.verify_error}"
    return finding


def api_targets() -> list[str]:
    """host:port of the API and the database as configured (for tcp_reachability); missing ones left out."""
    import os
    from urllib.parse import urlsplit

    targets = []
    try:
        parts = urlsplit(config.api_url())
        targets.append(f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}")
    except NotConfigured:
        pass
    db = config.postgres_settings()
    host = db.get("host") or os.environ.get("PGHOST")
    if host and not host.startswith("/"):
        targets.append(f"{host}:{db.get('port') or os.environ.get('PGPORT') or 5432}")
    return targets


def timeout_recommendations(
    statements: pd.DataFrame | None, times: pd.DataFrame | None, reach: pd.DataFrame | None
) -> pd.DataFrame:
    """The runbook's "API Timeout Issues" fixes, each tied to what was found (not a generic list)."""
    slow_ms = threshold("postgres.slow_queries").warning
    p95_ms = threshold("api.p95_latency").warning
    advice = []
    if reach is not None:
        for row in reach[~reach["reachable"]].itertuples():
            advice.append(
                (
                    "network",
                    f"{row.target} unreachable: {row.error}",
                    "check the service is up, then security groups, DNS and routes from the API host",
                )
            )
    if statements is not None and not statements.empty:
        for row in statements[statements["mean_ms"] >= slow_ms].itertuples():
            query = " ".join(str(row.query).split())[:80]
            if row.hit_ratio is not None and row.hit_ratio == row.hit_ratio and row.hit_ratio < 0.9:
                advice.append(
                    (
                        "index",
                        f"{query} reads {1 - row.hit_ratio:.0%} of its blocks from disk",
                        "EXPLAIN (ANALYZE, BUFFERS) it and add an index on the filtered columns",
                    )
                )
            elif row.calls and row.rows / row.calls > 1000:
                advice.append(
                    (
                        "pagination",
                        f"{query} returns {row.rows / row.calls:,.0f} rows a call",
                        "paginate (LIMIT/keyset) instead of returning everything",
                    )
                )
            else:
                advice.append(
                    (
                        "query",
                        f"{query} averages {row.mean_ms:,.0f} ms over {row.calls:,} calls",
                        "EXPLAIN it; add an index or cache its result (query caching)",
                    )
                )
    if times is not None and not times.empty:
        answered = times[times["error"].isna()]
        if len(answered) < len(times):
            advice.append(
                (
                    "timeout",
                    f"{len(times) - len(answered)} of {len(times)} requests failed: {times['error'].dropna().iloc[0]}",
                    "raise the client timeout only as a stop-gap (runbook: TIMEOUT = 60) while the cause "
                    "above is fixed",
                )
            )
        elif not answered.empty and answered["elapsed_ms"].quantile(0.95) >= p95_ms:
            p95 = answered["elapsed_ms"].quantile(0.95)
            db_cause = statements is not None and not statements.empty and (statements["mean_ms"] >= slow_ms).any()
            advice.append(
                (
                    "endpoint",
                    f"{answered['url'].iloc[0]} p95 {p95:,.0f} ms (runbook: < {p95_ms:g} ms)",
                    "fix the slow statements above first"
                    if db_cause
                    else "the database looks fast: profile the endpoint (external calls, N+1 queries, locks)",
                )
            )
    if not advice:
        advice.append(
            (
                "none",
                "no slow statement, slow request or unreachable target found",
                "the timeout is likely upstream (load balancer, client): check their timeouts and logs",
            )
        )
    return pd.DataFrame(advice, columns=["area", "found", "recommendation"])


def no_endpoints_finding() -> Finding:
    return Finding(
        "tls.days_to_expiry",
        "tls",
        Severity.INFO,
        None,
        None,
        "",
        "no TLS endpoint to check: pass -p endpoints host:port or set IMSNB_TLS_ENDPOINTS",
    )
