"""Guarantee 1: a dead dependency costs seconds, not minutes, and is named in a CRITICAL `*.reachable` finding.

Each test runs the same notebook twice against this module's own sandbox, first healthy, then with one dependency
broken for real (server stopped, port closed, a server that accepts and never answers), and holds the faulted run
to the issue's bound: within 15 s of the normal one.
"""

from __future__ import annotations

import pytest
from helpers import finding, read_summary
from injectors import HangingServer, closed_port, timed_run

BOUND_S = 15  # stated by issue 7: "within 15 s of its normal time"


def assert_completed_with(result, check: str, *words: str) -> dict:
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    reach = finding(summary, check)
    assert reach["severity"] == "CRITICAL", reach
    for word in words:
        assert word in reach["message"], reach["message"]
    return summary


def test_aws_endpoint_on_a_closed_port(own_sandbox, on, tmp_path):
    on(own_sandbox)
    normal, normal_s = timed_run("backup_verification", tmp_path, "INC-AWS")
    assert finding(read_summary(normal.folder), "aws.rds.snapshot_age")["severity"] == "OK"
    port = closed_port()
    on(own_sandbox, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    faulted, faulted_s = timed_run("backup_verification", tmp_path, "INC-AWS")
    assert_completed_with(faulted, "aws.reachable", str(port))
    assert faulted_s <= normal_s + BOUND_S, (normal_s, faulted_s)


def test_aws_endpoint_that_accepts_and_never_answers(own_sandbox, on, tmp_path):
    """botocore retries a read timeout (3 attempts of 10 s); imsnb gives a hanging endpoint up after the first."""
    on(own_sandbox)
    normal, normal_s = timed_run("backup_verification", tmp_path, "INC-AWS-HANG")
    with HangingServer() as hanging:
        on(own_sandbox, AWS_ENDPOINT_URL=f"http://127.0.0.1:{hanging.port}")
        faulted, faulted_s = timed_run("backup_verification", tmp_path, "INC-AWS-HANG")
        assert len(hanging.held) == 1, "one request, no retries"
    assert_completed_with(faulted, "aws.reachable", "Read timeout")
    assert faulted_s <= normal_s + BOUND_S, (normal_s, faulted_s)


@pytest.mark.parametrize("notebook", ["health_check", "api_timeout"])
def test_api_that_accepts_and_never_answers(own_sandbox, on, tmp_path, notebook):
    on(own_sandbox)
    normal, normal_s = timed_run(notebook, tmp_path, "INC-API")
    assert read_summary(normal.folder)["status"] == "ok"
    with HangingServer() as hanging:
        on(own_sandbox, IMSNB_API_URL=f"http://127.0.0.1:{hanging.port}")
        faulted, faulted_s = timed_run(notebook, tmp_path, "INC-API")
        assert hanging.held, "the notebook never even connected to the hanging API"
    check = "api.reachable" if notebook == "health_check" else "api.response_time"
    assert_completed_with(faulted, check, "timeout")
    assert faulted_s <= normal_s + BOUND_S, (normal_s, faulted_s)


def test_redis_stopped(own_sandbox, on, tmp_path):
    on(own_sandbox)
    normal, normal_s = timed_run("redis_cache", tmp_path, "INC-REDIS")
    assert finding(read_summary(normal.folder), "cache.reachable")["severity"] == "OK"
    own_sandbox.redis.stop()
    faulted, faulted_s = timed_run("redis_cache", tmp_path, "INC-REDIS")
    assert_completed_with(faulted, "cache.reachable", "refused")
    assert faulted_s <= normal_s + BOUND_S, (normal_s, faulted_s)


def test_postgres_stopped(own_sandbox, on, tmp_path):
    on(own_sandbox)
    normal, normal_s = timed_run("db_performance", tmp_path, "INC-PG")
    assert finding(read_summary(normal.folder), "postgres.reachable")["severity"] == "OK"
    own_sandbox.postgres.stop()
    faulted, faulted_s = timed_run("db_performance", tmp_path, "INC-PG")
    summary = assert_completed_with(faulted, "postgres.reachable", "refused")
    assert faulted.exit_code == 1  # CRITICAL is at or above the default --fail-on ERROR: the run says so
    later = [
        f for f in summary["findings"] if f["check"].startswith("postgres.") and f["check"] != "postgres.reachable"
    ]
    assert not [f for f in later if "could not complete" in f["message"]], later  # skipped, not crashed
    assert faulted_s <= normal_s + BOUND_S, (normal_s, faulted_s)
