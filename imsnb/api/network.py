"""TCP reachability: the runbook's `telnet $API_HOST 8000` / `ping $DB_HOST`, the targets it checks and its judge."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import urlsplit

import pandas as pd

from imsnb import config
from imsnb.errors import NotConfigured
from imsnb.findings import Finding, Severity

__all__ = [
    "api_targets",
    "reachability_findings",
    "tcp_reachability",
]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


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


def reachability_findings(reach: pd.DataFrame) -> list[Finding]:
    return [
        Finding.ok(
            "host.tcp_reachable",
            f"{row.target} accepts connections ({row.connect_ms:.0f} ms)",
            value=row.connect_ms,
            unit="ms",
        )
        if row.reachable
        else Finding.of("host.tcp_reachable", Severity.CRITICAL, f"{row.target} unreachable: {row.error}")
        for row in reach.itertuples()
    ]


def api_targets() -> list[str]:
    """host:port of the API and the database as configured (for tcp_reachability); missing ones left out."""
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
