"""Guarantee 8: the diagnostics need no more than a pg_monitor role and a read-only Redis ACL user.

Both are created on the session's db-degradation sandbox (a role and an ACL user are additions nothing else
uses; both are dropped afterwards), so the run also proves pg_monitor sees the other roles' problems.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest
import redis
from helpers import checks_at_or_above, read_summary
from psycopg import sql

from imsnb.runs.execute import run_notebook

CONFIGURATION = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"

MONITOR_ROLE = "imsnb_monitor"
# The documented role (docs/configuration.md): login, pg_monitor, nothing else (no ownership, no write grant, no
# CREATE on any schema).
CREATE_ROLE = "CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor"
ACL_USER = "imsnb-monitor"
# The documented ACL line: exactly the commands imsnb/cache/ and the flush plan send, keys read-only, no channels.
ACL_RULES = [
    "on",
    "resetkeys",
    "%R~*",
    "resetchannels",
    "-@all",
    "+ping",
    "+info",
    "+scan",
    "+slowlog|get",
    "+memory|usage",
    "+type",
    "+ttl",
    "+select",
    "+client|setname",
]
SEEDED = {"postgres.slow_queries", "postgres.blocked_queries", "postgres.idle_in_transaction"}
CACHE_SECTIONS = {"cache.reachable", "cache.memory_used", "cache.hit_rate", "cache.evictions", "cache.latency"}


@pytest.fixture(scope="module")
def monitor_role(degraded):
    password = secrets.token_urlsafe(18)
    with degraded.postgres.admin() as admin:
        admin.execute("SET pg_stat_statements.track_utility = off")
        admin.execute(sql.SQL(CREATE_ROLE).format(sql.Identifier(MONITOR_ROLE), sql.Literal(password)))
    yield password
    with degraded.postgres.admin() as admin:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(MONITOR_ROLE)))


@pytest.fixture(scope="module")
def acl_user(degraded):
    password = secrets.token_urlsafe(18)
    admin = degraded.redis.client()
    admin.execute_command("ACL", "SETUSER", ACL_USER, *ACL_RULES, f">{password}")
    yield password
    admin.execute_command("ACL", "DELUSER", ACL_USER)


def no_incomplete_checks(summary: dict) -> None:
    incomplete = [f for f in summary["findings"] if "could not complete" in f["message"] or "ermission" in f["message"]]
    assert not incomplete, incomplete


def test_the_monitor_role_cannot_write_and_owns_nothing(degraded, monitor_role):
    with psycopg.connect(
        host="127.0.0.1", port=degraded.postgres.port, user=MONITOR_ROLE, password=monitor_role, dbname="ims"
    ) as conn:
        for statement in (
            "CREATE TABLE public.probe (x int)",
            "UPDATE orders SET status = 'x' WHERE id = 2",
            "DELETE FROM orders WHERE id = 2",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()
        owned = conn.execute(
            "SELECT (SELECT count(*) FROM pg_class WHERE relowner = r.oid)"
            " + (SELECT count(*) FROM pg_database WHERE datdba = r.oid)"
            " + (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid), r.rolsuper"
            " FROM pg_roles r WHERE r.rolname = current_user"
        ).fetchone()
        assert owned == (0, False)


def test_db_performance_works_with_only_pg_monitor(degraded, monitor_role, monkeypatch, tmp_path):
    for prefix in ("DB_", "PG"):
        monkeypatch.setenv(f"{prefix}USER", MONITOR_ROLE)
        monkeypatch.setenv(f"{prefix}PASSWORD", monitor_role)
    result = run_notebook("db_performance", {"window": "30m"}, incident_id="INC-LP", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    no_incomplete_checks(summary)
    assert checks_at_or_above(summary, "WARNING") >= SEEDED  # it sees the app role's statements and sessions
    assert f"as {MONITOR_ROLE}" in next(f for f in summary["findings"] if f["check"] == "postgres.reachable")["message"]


def test_the_acl_user_can_read_and_nothing_else(degraded, acl_user):
    client = redis.Redis(host="127.0.0.1", port=degraded.redis.port, username=ACL_USER, password=acl_user)
    assert client.ping()
    for command in (("SET", "k", "v"), ("FLUSHDB", "ASYNC"), ("KEYS", "*"), ("CONFIG", "GET", "*"), ("DEL", "k")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)


def test_redis_cache_works_under_the_read_only_acl_user(degraded, acl_user, monkeypatch, tmp_path):
    monkeypatch.setenv("REDIS_USERNAME", ACL_USER)
    monkeypatch.setenv("REDIS_PASSWORD", acl_user)
    result = run_notebook("redis_cache", {"window": "30m"}, incident_id="INC-ACL", outputs=tmp_path)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    no_incomplete_checks(summary)
    assert {f["check"] for f in summary["findings"]} >= CACHE_SECTIONS
    assert next(f for f in summary["findings"] if f["check"] == "cache.reachable")["severity"] == "OK"
    text = (result.folder / "notebook.ipynb").read_text()
    assert "FLUSHDB ASYNC" in text and "NOPERM" not in text


def test_the_docs_document_this_role_and_this_acl_line():
    documented = CONFIGURATION.read_text()
    assert f"CREATE ROLE {MONITOR_ROLE} LOGIN PASSWORD '...' IN ROLE pg_monitor;" in documented
    assert f"ACL SETUSER {ACL_USER} on >... {' '.join(ACL_RULES[1:])}\n" in documented


# --- less than that: said in the findings, never a false all-clear or a crashed run ------------------------------

BLIND_ROLE = "imsnb_blind"
STINGY_USER = "imsnb-stingy"
STINGY_RULES = ["on", "resetkeys", "%R~*", "resetchannels", "-@all", "+ping", "+scan", "+type", "+ttl", "+select"]


def test_a_role_without_pg_monitor_is_told_it_sees_only_its_own_sessions(degraded, monkeypatch, tmp_path):
    """Without pg_read_all_stats other roles' session states, queries and statement texts are hidden. What such a
    role can read is judged all the same: the seeded lock wait (pg_locks) and every connection. The run says what it
    could not see (WARNING postgres.visibility, with the GRANT to run)."""
    password = secrets.token_urlsafe(18)
    with degraded.postgres.admin() as admin:
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(BLIND_ROLE), sql.Literal(password))
        )
    try:
        for prefix in ("DB_", "PG"):
            monkeypatch.setenv(f"{prefix}USER", BLIND_ROLE)
            monkeypatch.setenv(f"{prefix}PASSWORD", password)
        result = run_notebook(
            "db_performance", {"window": "30m", "sample_s": 1}, incident_id="INC-BL", outputs=tmp_path
        )
        summary = read_summary(result.folder)
        assert summary["status"] == "ok", summary.get("error")
        seen = next(f for f in summary["findings"] if f["check"] == "postgres.visibility")
        assert seen["severity"] == "WARNING" and f"GRANT pg_monitor TO {BLIND_ROLE}" in seen["message"]
        assert summary["severity"] in ("WARNING", "ERROR", "CRITICAL"), "never an all-clear it cannot know"
        assert "postgres.blocked_queries" in checks_at_or_above(summary, "WARNING"), "the seeded lock, from pg_locks"
    finally:
        with degraded.postgres.admin() as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(BLIND_ROLE)))


def test_a_redis_user_without_info_or_setname_is_a_finding_not_a_crashed_run(degraded, monkeypatch, tmp_path):
    """redis-py named every connection with CLIENT SETNAME, so a user without it could not connect and the run
    crashed (exit 3, the PostgreSQL findings lost). Now the connection is named when allowed, and a command the
    user may not run is that section's finding, with the ACL line to grant."""
    password = secrets.token_urlsafe(18)
    admin = degraded.redis.client()
    admin.execute_command("ACL", "SETUSER", STINGY_USER, *STINGY_RULES, f">{password}")
    try:
        monkeypatch.setenv("REDIS_USERNAME", STINGY_USER)
        monkeypatch.setenv("REDIS_PASSWORD", password)
        result = run_notebook("health_check", {"window": "30m", "sample_s": 1}, incident_id="INC-ST", outputs=tmp_path)
        summary = read_summary(result.folder)
        assert summary["status"] == "ok" and result.exit_code != 3, summary.get("error")
        reach = next(f for f in summary["findings"] if f["check"] == "cache.reachable")
        assert reach["severity"] == "WARNING" and "info" in reach["message"] and "ACL line" in reach["message"]
        assert any(f["check"] == "postgres.connections_used" for f in summary["findings"]), "the rest is kept"
        assert password not in (result.folder / "notebook.ipynb").read_text()
    finally:
        admin.execute_command("ACL", "DELUSER", STINGY_USER)
