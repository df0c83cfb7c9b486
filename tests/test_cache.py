"""imsnb.cache against real redis-servers started by the sandbox."""

from __future__ import annotations

import os
import signal
import time

import pytest

from imsnb import cache
from imsnb.errors import Unreachable
from imsnb.findings import Severity
from imsnb.sandbox import Sandbox

pytestmark = pytest.mark.servers  # cache-pressure and healthy sandboxes


@pytest.fixture(scope="module")
def pressured():
    with Sandbox("cache-pressure") as sandbox:
        yield sandbox


def _cache(sandbox) -> cache.Cache:
    server = sandbox.redis
    return cache.Cache("tests", settings={"host": "127.0.0.1", "port": server.port, "password": server.password})


def test_pressure_shows_memory_evictions_and_misses(pressured):
    with _cache(pressured) as c:
        memory, stats = cache.memory_usage(c), cache.stats(c)
        assert memory.maxmemory_bytes == 8 * 2**20 and memory.policy == "allkeys-lru"
        assert memory.used_ratio >= 0.9
        # lifetime counters: months of ~99% hits, then the storm (judged on samples: tests/test_sampling.py)
        assert stats.evicted_keys > 1000 and stats.hit_rate > 0.9
        assert cache.memory_finding(memory).severity >= Severity.WARNING


def test_big_keys_come_from_a_bounded_scan(pressured):
    with _cache(pressured) as c:
        big = cache.big_keys(c, sample=2000, top=3)
        assert list(big.columns) == ["key", "type", "bytes", "ttl_s"]
        assert big.iloc[0]["key"] == "report:daily:blob" and big.iloc[0]["bytes"] > 600_000
        assert len(cache.big_keys(c, sample=50, top=100)) <= 50
        commands = c.call("info", "commandstats")
        assert "cmdstat_keys" not in commands and "cmdstat_scan" in commands


def test_slow_log_masks_arguments(pressured):
    with _cache(pressured) as c:
        log = cache.slow_log(c)
        assert list(log.columns) == ["id", "at", "duration_ms", "command", "client", "client_name"]
        lua = log[log["command"].str.startswith("EVAL")]
        assert len(lua) == 1 and lua.iloc[0]["duration_ms"] >= 10
        assert lua.iloc[0]["command"] == "EVAL …", "the script body is masked"


def test_healthy_cache_is_ok(healthy_sandbox):
    with _cache(healthy_sandbox) as c:
        stats = cache.stats(c)
        assert stats.hit_rate > 0.9 and stats.evicted_keys == 0
        for finding in (
            cache.memory_finding(cache.memory_usage(c)),
            cache.latency_finding(cache.latency(c, samples=20)),
        ):
            assert finding.severity == Severity.OK, finding
        assert set(cache.keyspace(c).columns) == {"db", "keys", "expires", "avg_ttl_ms"}


def test_wrong_password_and_closed_port_are_unreachable(healthy_sandbox):
    wrong = cache.Cache("tests", settings={"host": "127.0.0.1", "port": healthy_sandbox.redis.port, "password": "no"})
    assert cache.reachable_finding(wrong).severity == Severity.CRITICAL
    closed = cache.Cache("tests", settings={"host": "127.0.0.1", "port": 1})
    finding = cache.reachable_finding(closed)
    assert finding.severity == Severity.CRITICAL and "refused" in finding.message.lower()


def test_a_hung_redis_costs_seconds_not_minutes(private_sandbox):
    sandbox = private_sandbox("healthy")
    c = _cache(sandbox)
    cache.stats(c)
    os.kill(sandbox.redis.process.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="Timeout"):
            cache.stats(c)
        with pytest.raises(Unreachable):  # remembered: no second wait
            cache.memory_usage(c)
        assert time.monotonic() - started < 10  # the bound: a hang is seconds (2 s timeout), not minutes
    finally:
        os.kill(sandbox.redis.process.pid, signal.SIGCONT)


@pytest.mark.parametrize(("name", "value"), [("REDIS_PORT", "abc"), ("REDIS_URL", "http://cache:1")])
def test_bad_redis_settings_are_a_finding_not_a_crash(monkeypatch, name, value):
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv(name, value)
    finding = cache.reachable_finding(cache.Cache("tests"))
    assert finding.severity == Severity.CRITICAL and ("REDIS" in finding.message or "Redis" in finding.message)
