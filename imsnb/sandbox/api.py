"""A small IMS API (standard library HTTP server in a thread) and a TLS endpoint with a generated certificate.

`/health` answers in the runbook's shape, checking the sandbox's real PostgreSQL and Redis unless the scenario
forces a service unhealthy; `/api/v1/orders` sleeps `slow_ms` when the scenario asks. The TLS endpoint serves
the same API with a certificate from a private CA generated at start, expiring when the scenario says.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class ApiState:
    def __init__(self) -> None:
        self.unhealthy: set[str] = set()
        self.slow_paths: dict[str, float] = {}  # path -> seconds
        self.checks: dict[str, Any] = {}  # service name -> callable returning bool
        self.requests = 0
        self.errors = 0


class _Handler(BaseHTTPRequestHandler):
    server_version = "ims-sandbox/1.0"
    disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms delayed ACKs

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        state = self.server.state  # type: ignore[attr-defined]
        state.requests += 1
        path = self.path.split("?")[0]
        delay = state.slow_paths.get(path)
        if delay:
            time.sleep(delay)
        if path in ("/health", "/api/v1/health"):
            services = {}
            for name in ("database", "cache"):
                check = state.checks.get(name)
                healthy = name not in state.unhealthy and (check() if check else True)
                services[name] = "healthy" if healthy else "unhealthy"
            services["api"] = "unhealthy" if "api" in state.unhealthy else "healthy"
            overall = "healthy" if all(v == "healthy" for v in services.values()) else "degraded"
            body = {
                "status": overall,
                "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "services": services,
            }
            self._json(200 if overall == "healthy" else 503, body)
        elif path == "/api/v1/orders":
            self._json(200, {"orders": [], "count": 0})
        elif path == "/metrics":
            text = f"ims_http_requests_total {state.requests}\nims_http_errors_total {state.errors}\n"
            self._send(200, text.encode(), "text/plain; version=0.0.4")
        else:
            state.errors += 1
            self._json(404, {"error": "not found"})

    def _json(self, code: int, body: dict) -> None:
        self._send(code, json.dumps(body).encode(), "application/json")

    def _send(self, code: int, payload: bytes, content_type: str) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ApiState, context: ssl.SSLContext | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.context = context

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.context is not None:
            sock.settimeout(5)
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:  # TLS clients that hang up early
        pass


class ApiServer:
    """The HTTP API, and the same API over TLS with a certificate valid for `cert_days` more days."""

    def __init__(self, *, cert_days: float = 90):
        self.state = ApiState()
        self.cert_days = cert_days
        self.dir: Path | None = None
        self._servers: list[_Server] = []
        self.port = 0
        self.tls_port = 0

    def start(self) -> ApiServer:
        self.dir = Path(tempfile.mkdtemp(prefix="imsnb-api-"))
        self._write_certificate(self.cert_days)
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(self.dir / "server.pem")
        for tls in (None, self._context):
            server = _Server(self.state, tls)
            threading.Thread(target=server.serve_forever, name="imsnb-sandbox-api", daemon=True).start()
            self._servers.append(server)
        self.port = self._servers[0].server_address[1]
        self.tls_port = self._servers[1].server_address[1]
        return self

    def _write_certificate(self, days: float) -> None:
        assert self.dir is not None
        ca_pem, cert_pem, key_pem = issue_certificate(days)
        (self.dir / "ca.pem").write_bytes(ca_pem)
        server = self.dir / "server.pem"
        server.write_bytes(cert_pem + key_pem)
        server.chmod(0o600)

    def set_certificate(self, days: float) -> None:
        """Serve a new certificate (same private CA file path) valid for `days` more days, from the next handshake."""
        self.cert_days = days
        self._write_certificate(days)
        self._context.load_cert_chain(self.dir / "server.pem")

    @property
    def ca_file(self) -> Path:
        assert self.dir is not None
        return self.dir / "ca.pem"

    def env(self) -> dict[str, str]:
        return {
            "IMSNB_API_URL": f"http://127.0.0.1:{self.port}",
            "API_HOST": "127.0.0.1",
            "API_PORT": str(self.port),
            "IMSNB_TLS_ENDPOINTS": f"localhost:{self.tls_port}",
            "IMSNB_TLS_CA_FILE": str(self.ca_file),
        }

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


def issue_certificate(days: float, host: str = "localhost") -> tuple[bytes, bytes, bytes]:
    """A private CA and a server certificate for `host`/127.0.0.1 expiring in `days` days: (ca, cert, key) PEM."""
    # lazy: cryptography (~0.5 s) only when a scenario needs a TLS endpoint
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imsnb sandbox CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem
