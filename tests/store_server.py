"""A team's store for the tests: a private PostgreSQL (the sandbox's PostgresServer, never a diagnosed target) with
a database per test, reached as its application role with a password, as a worker would reach it."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from urllib.parse import quote

from imsnb.findings import Severity
from imsnb.runs.execute import RunResult
from imsnb.sandbox.postgres import APP_ROLE


def new_store(server, name: str | None = None) -> str:
    """A new, empty database on `server`, owned by the application role: its postgresql:// URL (with the password)."""
    name = name or f"imsnb_state_{secrets.token_hex(4)}"
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{APP_ROLE}"')
    return f"postgresql://{APP_ROLE}:{quote(server.password, safe='')}@127.0.0.1:{server.port}/{name}"


def store_name(url: str) -> str:
    """How imsnb names a store URL in messages: scheme, host, port and database."""
    rest = url.split("@", 1)[1]
    return f"postgresql://{rest}"


def rows(server, url: str, sql: str) -> list[tuple]:
    database = url.rsplit("/", 1)[1]
    with server.admin(database) as conn:
        return conn.execute(sql).fetchall()


def fake_run(outputs: Path, findings: list[tuple[str, str]], *, name: str = "redis_cache", incident: str = "INC-F"):
    """A completed run's folder and summary, as a notebook leaves them (findings: (check, severity))."""
    index = len(list(Path(outputs).rglob("summary.json"))) if Path(outputs).exists() else 0
    folder = Path(outputs) / incident / f"20261129T{index:06d}Z-{name}"
    folder.mkdir(parents=True)
    summary = {
        "notebook": name,
        "incident_id": incident,
        "status": "ok",
        "started_at": f"2026-11-29T00:00:{index:02d}Z",
        "parameters": {"environment": "prod"},
        "severity": max((s for _, s in findings), key=Severity.parse, default="OK"),
        "findings": [{"check": c, "component": "cache", "severity": s, "message": f"{c} is {s}"} for c, s in findings],
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    (folder / "report.html").write_text("<html><body>report</body></html>")
    return RunResult(folder, summary, 0)
