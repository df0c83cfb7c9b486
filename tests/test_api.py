"""imsnb.api against the sandbox's real HTTP API and TLS endpoint."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest

from imsnb import api
from imsnb.findings import Severity


def _base(sandbox) -> str:
    return f"http://127.0.0.1:{sandbox.api.port}"


def test_healthy_health_matches_the_runbook_shape(healthy_sandbox):
    checked = api.health(base=_base(healthy_sandbox))
    assert checked.status_code == 200 and checked.problems == []
    assert checked.data["services"] == {"database": "healthy", "cache": "healthy", "api": "healthy"}
    assert [f.severity for f in api.health_findings(checked)] == [Severity.OK, Severity.OK]


def test_degraded_health_is_an_error_with_the_body(private_sandbox):
    sandbox = private_sandbox("api-degraded")
    checked = api.health(base=_base(sandbox))
    assert checked.status_code == 503
    assert "services.database is 'unhealthy'" in checked.problems
    finding = api.health_findings(checked)[1]
    assert finding.check == "api.health" and finding.severity == Severity.ERROR
    assert '"database": "unhealthy"' in finding.message
    times = api.response_times("/api/v1/orders", base=_base(sandbox), samples=2)
    assert (times["elapsed_ms"] >= 1400).all()
    assert api.response_time_finding(times).severity >= Severity.ERROR
    advice = api.timeout_recommendations(None, times, None)
    assert advice.iloc[0]["area"] == "endpoint"


def test_health_timeout_invalid_json_and_refused():
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen()  # accepts, never answers
    port = hanging.getsockname()[1]
    try:
        checked = api.health(base=f"http://127.0.0.1:{port}", timeout_s=0.5)
        assert checked.error == "timeout after 0.5 s"
        assert api.health_findings(checked)[0].check == "api.reachable"
        assert api.health_findings(checked)[0].severity == Severity.CRITICAL
    finally:
        hanging.close()
    refused = api.health(base="http://127.0.0.1:1")
    assert refused.error and "refused" in refused.error.lower()


def test_health_rejects_non_json(healthy_sandbox):
    checked = api.health(base=_base(healthy_sandbox), path="/metrics")
    assert "body is not a JSON object" in checked.problems


def test_tcp_reachability(healthy_sandbox):
    reach = api.tcp_reachability([f"127.0.0.1:{healthy_sandbox.api.port}", "127.0.0.1:1", "nonsense"])
    assert reach["reachable"].tolist() == [True, False, False]
    assert reach["error"].tolist()[1:] == ["Connection refused", "not host:port"]
    assert [f.severity for f in api.reachability_findings(reach)] == [Severity.OK, Severity.CRITICAL, Severity.CRITICAL]


def test_certificate_days_chain_and_sans(private_sandbox):
    sandbox = private_sandbox("cert-expiring")
    endpoint = f"localhost:{sandbox.api.tls_port}"
    cert = api.certificate(endpoint, ca_file=str(sandbox.api.ca_file))
    assert 9.5 < cert.days_left <= 10 and cert.chain_valid
    assert cert.sans == ["localhost", "127.0.0.1"] and "imsnb sandbox CA" in cert.issuer
    assert api.certificate_finding(cert).severity == Severity.WARNING
    untrusted = api.certificate(endpoint)  # without the private CA: the chain does not verify
    assert untrusted.chain_valid is False and api.certificate_finding(untrusted).severity == Severity.CRITICAL
    later = api.certificate(endpoint, ca_file=str(sandbox.api.ca_file), now=datetime.now(UTC) + timedelta(days=5))
    assert api.certificate_finding(later).severity == Severity.ERROR
    sandbox.api.set_certificate(days=-1)
    expired = api.certificate(endpoint, ca_file=str(sandbox.api.ca_file))
    finding = api.certificate_finding(expired)
    assert finding.severity == Severity.CRITICAL and "EXPIRED" in finding.message


def test_certificate_of_a_closed_port_or_silent_server():
    assert api.certificate_finding(api.certificate("127.0.0.1:1")).check == "tls.reachable"
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    try:
        cert = api.certificate(f"127.0.0.1:{silent.getsockname()[1]}", timeout_s=0.5)
        assert cert.error == "timeout after 0.5 s"
    finally:
        silent.close()


@pytest.mark.parametrize("endpoint", ["", "host", "host:port"])
def test_certificate_bad_endpoint(endpoint):
    assert api.certificate(endpoint).error == "not host:port"
