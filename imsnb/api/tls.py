"""TLS certificates: the certificate an endpoint presents (parsed with `cryptography`), whether its chain and name
verify, and its judge."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb import config, deadline
from imsnb.api.health import TIMEOUT_S
from imsnb.findings import Finding, Severity, judge

__all__ = [
    "Certificate",
    "certificate",
    "certificate_finding",
    "certificates",
    "no_endpoints_finding",
]


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
    # lazy: cryptography (~0.5 s to import) only for the TLS check's certificate
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


def certificate_finding(cert: Certificate) -> Finding:
    """WARNING under 30 days, ERROR under 7, CRITICAL expired, invalid chain or no handshake."""
    if cert.error:
        return Finding.of("tls.reachable", Severity.CRITICAL, f"{cert.endpoint}: no TLS handshake: {cert.error}")
    expired = cert.days_left is not None and cert.days_left <= 0
    message = (
        f"{cert.endpoint}: certificate for {', '.join(cert.sans) or cert.subject} "
        f"{'EXPIRED' if expired else 'expires'} {cert.not_after:%Y-%m-%d} ({cert.days_left:.0f} days left)"
    )
    if not cert.chain_valid:
        message += f"; chain does not verify: {cert.verify_error}"
    critical = expired or not cert.chain_valid
    return judge("tls.days_to_expiry", cert.days_left, message, floor=Severity.CRITICAL if critical else None)


def no_endpoints_finding() -> Finding:
    return Finding.of(
        "tls.days_to_expiry",
        Severity.INFO,
        "no TLS endpoint to check: pass -p endpoints host:port or set IMSNB_TLS_ENDPOINTS",
    )
