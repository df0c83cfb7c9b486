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
from imsnb.sandbox.postgres import free_port
from imsnb.sandbox.redis import RedisServer

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


def _lookups(c: cache.Cache) -> int:
    stats = c.call("info", "stats")
    return stats["keyspace_hits"] + stats["keyspace_misses"]


def test_big_keys_cost_the_hit_rate_only_the_largest_keys_lookups():
    """Redis counts TYPE and TTL as keyspace hits: asked of all 1,000 sampled keys, a run added 2,000 hits that the
    next run's hit rate took for the application's (a cache at 50% read as 92%). Only the `top` largest are asked."""
    server = RedisServer().start()
    try:
        server.client().mset({f"app:{i}": "x" * (i % 97) for i in range(1500)})
        with cache.Cache("tests", settings={"port": server.port, "password": server.password}) as c:
            before = _lookups(c)
            big = cache.big_keys(c, sample=1000, top=3)
            assert _lookups(c) - before == 2 * 3, "TYPE and TTL of the three largest, nothing else"
    finally:
        server.stop()
    assert list(big["bytes"]) == sorted(big["bytes"], reverse=True) and (big["type"] == "string").all()
    assert (big["ttl_s"] == -1).all() and len(big) == 3


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


def test_a_database_the_server_refuses_is_a_finding_naming_the_setting(healthy_sandbox):
    """REDIS_DB=99 (the server has 16): the connection's SELECT is refused. It was a crashed notebook, every other
    target's findings lost; it is the cache's reachability, CRITICAL, naming what to change."""
    server = healthy_sandbox.redis
    c = cache.Cache("tests", settings={"host": "127.0.0.1", "port": server.port, "password": server.password, "db": 99})
    finding = cache.reachable_finding(c)
    assert finding.severity == Severity.CRITICAL and "DB index is out of range" in finding.message
    assert "the server refuses the database REDIS_DB (or REDIS_URL's /N) names" in finding.message
    with pytest.raises(Unreachable):  # what every section turns into its finding
        cache.stats(c)


def test_a_missing_password_says_which_setting_to_set(healthy_sandbox):
    c = cache.Cache("tests", settings={"host": "127.0.0.1", "port": healthy_sandbox.redis.port})
    finding = cache.reachable_finding(c)
    assert finding.severity == Severity.CRITICAL and "set REDIS_PASSWORD" in finding.message


def test_a_cluster_node_whose_cluster_is_down_is_unreachable():
    """A cluster node with no slots answers PING and INFO while every key command fails with CLUSTERDOWN: it was
    'connected', OK."""
    # the cluster bus listens on the port + 10000 unless told: a free port above 55535 would leave it none
    server = RedisServer(options=("--cluster-enabled", "yes", "--cluster-port", str(free_port()))).start()
    try:
        with cache.Cache("tests", settings={"port": server.port, "password": server.password}) as c:
            finding = cache.reachable_finding(c)
    finally:
        server.stop()
    assert finding.severity == Severity.CRITICAL
    assert "cluster_state is fail (0 of 16384 slots served): every key command fails" in finding.message


@pytest.mark.parametrize(("name", "value"), [("REDIS_PORT", "abc"), ("REDIS_URL", "http://cache:1")])
def test_bad_redis_settings_are_a_finding_not_a_crash(monkeypatch, name, value):
    monkeypatch.setenv("REDIS_HOST", "127.0.0.1")
    monkeypatch.setenv(name, value)
    finding = cache.reachable_finding(cache.Cache("tests"))
    assert finding.severity == Severity.CRITICAL and ("REDIS" in finding.message or "Redis" in finding.message)


def test_a_url_missing_its_colon_is_bad_input_and_its_password_is_not_shown(monkeypatch):
    """`redis//:pw@host` is no URL: all of it is the path, which the label showed, password and all."""
    monkeypatch.setenv("REDIS_URL", "redis//:Sekret99@127.0.0.1:6379")
    finding = cache.reachable_finding(cache.Cache("tests"))
    assert finding.severity == Severity.CRITICAL and "Sekret99" not in finding.message
    assert finding.message.startswith("cache redis (bad REDIS_URL: use redis://host:port/db) unreachable")
