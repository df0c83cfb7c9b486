"""The API and the network: the runbook's /health check, response times, TCP reachability, TLS certificates.

One module per topic, each holding its calls and its judges side by side: `health` (the /health GET and response
times), `network` (TCP reachability), `tls` (certificates), `timeouts` (the runbook's API-timeout fixes). Notebooks
use the names below as `api.<name>`.
"""

from imsnb.api.health import (
    BODY_EXCERPT,
    EXPECTED_SERVICES,
    MAX_BODY_BYTES,
    TIMEOUT_S,
    HealthCheck,
    Response,
    fetch,
    health,
    health_findings,
    response_time_finding,
    response_times,
)
from imsnb.api.network import api_targets, reachability_findings, tcp_reachability
from imsnb.api.timeouts import timeout_recommendations
from imsnb.api.tls import Certificate, certificate, certificate_finding, certificates, no_endpoints_finding

__all__ = [
    "BODY_EXCERPT",
    "EXPECTED_SERVICES",
    "MAX_BODY_BYTES",
    "TIMEOUT_S",
    "Certificate",
    "HealthCheck",
    "Response",
    "api_targets",
    "certificate",
    "certificate_finding",
    "certificates",
    "fetch",
    "health",
    "health_findings",
    "no_endpoints_finding",
    "reachability_findings",
    "response_time_finding",
    "response_times",
    "tcp_reachability",
    "timeout_recommendations",
]
