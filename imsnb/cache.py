"""Redis diagnostics: memory, hit rate, evictions, clients, latency, slow log and big keys.

Every call goes through one `Cache` session with short socket timeouts (a hung Redis costs seconds), and nothing
here walks the keyspace with KEYS: big keys come from a bounded SCAN sample and MEMORY USAGE.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from imsnb import config
from imsnb.errors import NotConfigured, Unreachable
from imsnb.findings import Finding, Severity, judge, threshold
from imsnb.period import since

SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2.0
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.AuthenticationError)


class Cache:
    """One Redis connection per run, opened on first use; a failure is remembered and raised again at once."""

    def __init__(
        self,
        application: str = "imsnb",
        *,
        settings: dict[str, Any] | None = None,
        socket_timeout_s: float = SOCKET_TIMEOUT_S,
    ):
        self.application = application if application.startswith("imsnb") else f"imsnb/{application}"
        self._settings = settings
        self.socket_timeout_s = socket_timeout_s
        self._client: redis.Redis | None = None
        self._failure: Unreachable | NotConfigured | None = None
        self.label = config.redis_label()

    def client(self) -> redis.Redis:
        if self._client is not None:
            return self._client
        if self._failure is not None:
            raise self._failure
        try:
            settings = dict(self._settings if self._settings is not None else config.redis_settings())
        except NotConfigured as exc:
            if exc.check == "cache.configured":  # no Redis at all: INFO "...: skipped", never a page
                self._failure = exc
            else:  # configured, but unusable (REDIS_PORT=abc)
                self._failure = Unreachable("cache", str(exc))
            raise self._failure from None
        except ValueError as exc:  # REDIS_PORT=abc and the like
            self._failure = Unreachable("cache", f"bad Redis settings: {exc}")
            raise self._failure from None
        common = {
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "client_name": self.application.replace("/", "-"),
            "retry_on_timeout": False,
            "retry": Retry(NoBackoff(), 0),  # redis-py retries 3 times by default: a hung server would cost 4x
            "decode_responses": False,
        }
        url = settings.pop("url", None)
        try:
            client = redis.Redis.from_url(str(url), **common) if url else redis.Redis(**settings, **common)
        except ValueError as exc:  # REDIS_URL=http://... : not a Redis URL
            self._failure = Unreachable(f"cache {self.label}", f"bad REDIS_URL: {exc}")
            raise self._failure from None
        try:
            client.ping()
        except _UNREACHABLE as exc:
            self._failure = Unreachable(f"cache {self.label}", _one_line(exc))
            raise self._failure from None
        self._client = client
        return client

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One Redis command; a dropped connection becomes Unreachable (remembered)."""
        client = self.client()
        try:
            return getattr(client, method)(*args, **kwargs)
        except _UNREACHABLE as exc:
            self._client = None
            self._failure = Unreachable(f"cache {self.label}", _one_line(exc))
            raise self._failure from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


_default: Cache | None = None


def default_cache() -> Cache:
    global _default
    if _default is None:
        _default = Cache("imsnb/interactive")
    return _default


def _cache(cache: Cache | None) -> Cache:
    return cache if cache is not None else default_cache()


# --- diagnostics -------------------------------------------------------------------------------------------------


@dataclass
class MemoryUsage:
    used_bytes: int
    maxmemory_bytes: int
    used_ratio: float | None  # None when maxmemory is 0 (unbounded)
    policy: str
    peak_bytes: int
    fragmentation_ratio: float


@dataclass
class CacheStats:
    version: str
    role: str
    uptime_s: int
    keyspace_hits: int
    keyspace_misses: int
    hit_rate: float | None  # None before any lookup
    evicted_keys: int
    expired_keys: int
    connected_clients: int
    blocked_clients: int
    ops_per_sec: int


@dataclass
class Latency:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def memory_usage(cache: Cache | None = None) -> MemoryUsage:
    """used_memory against maxmemory, the eviction policy and fragmentation (INFO memory)."""
    info = _cache(cache).call("info", "memory")
    used, limit = int(info["used_memory"]), int(info.get("maxmemory", 0))
    return MemoryUsage(
        used,
        limit,
        used / limit if limit else None,
        str(info.get("maxmemory_policy", "")),
        int(info.get("used_memory_peak", 0)),
        float(info.get("mem_fragmentation_ratio", 0)),
    )


def stats(cache: Cache | None = None) -> CacheStats:
    """Hit rate from keyspace hits/misses, evictions, clients and throughput (INFO server, clients, stats)."""
    info = _cache(cache).call("info", "everything")
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    return CacheStats(
        version=str(info.get("redis_version", "")),
        role=str(info.get("role", "")),
        uptime_s=int(info.get("uptime_in_seconds", 0)),
        keyspace_hits=hits,
        keyspace_misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else None,
        evicted_keys=int(info.get("evicted_keys", 0)),
        expired_keys=int(info.get("expired_keys", 0)),
        connected_clients=int(info.get("connected_clients", 0)),
        blocked_clients=int(info.get("blocked_clients", 0)),
        ops_per_sec=int(info.get("instantaneous_ops_per_sec", 0)),
    )


def keyspace(cache: Cache | None = None) -> pd.DataFrame:
    """Keys and keys-with-expiry per database (INFO keyspace)."""
    info = _cache(cache).call("info", "keyspace")
    rows = [
        {
            "db": int(name[2:]),
            "keys": int(v.get("keys", 0)),
            "expires": int(v.get("expires", 0)),
            "avg_ttl_ms": int(v.get("avg_ttl", 0)),
        }
        for name, v in info.items()
        if name.startswith("db")
    ]
    return pd.DataFrame(rows, columns=["db", "keys", "expires", "avg_ttl_ms"])


def latency(cache: Cache | None = None, *, samples: int = 50) -> Latency:
    """Round-trip time of `samples` PINGs, in ms (the runbook's "Latency: < 1ms")."""
    cache = _cache(cache)
    times = []
    for _ in range(max(1, samples)):
        started = time.perf_counter()
        cache.call("ping")
        times.append((time.perf_counter() - started) * 1000)
    series = pd.Series(times)
    return Latency(
        len(times),
        round(float(series.quantile(0.5)), 3),
        round(float(series.quantile(0.99)), 3),
        round(float(series.max()), 3),
    )


def slow_log(cache: Cache | None = None, *, limit: int = 20) -> pd.DataFrame:
    """The slow log, newest first; arguments after the key are masked (they can hold customer data)."""
    entries = _cache(cache).call("slowlog_get", limit)
    rows = []
    for entry in entries:
        words = _text(entry.get("command", b"")).split()
        shown = _masked_command(words)
        rows.append(
            {
                "id": entry.get("id"),
                "at": datetime.fromtimestamp(int(entry.get("start_time", 0)), UTC),
                "duration_ms": int(entry.get("duration", 0)) / 1000,
                "command": shown,
                "client": _text(entry.get("client_address", b"")),
                "client_name": _text(entry.get("client_name", b"")),
            }
        )
    return pd.DataFrame(rows, columns=["id", "at", "duration_ms", "command", "client", "client_name"])


def big_keys(
    cache: Cache | None = None, *, sample: int = 1000, top: int = 10, match: str | None = None, db: int | None = None
) -> pd.DataFrame:
    """The largest of up to `sample` keys found by SCAN (never KEYS), with type, MEMORY USAGE and TTL."""
    cache = _cache(cache)
    client = cache.client()
    if db is not None and db != client.connection_pool.connection_kwargs.get("db", 0):
        raise ValueError("big_keys scans the connected database; connect a Cache to another REDIS_DB for it")
    keys: list[bytes] = []
    cursor = 0
    while len(keys) < sample:
        cursor, batch = cache.call("scan", cursor=cursor, match=match, count=min(500, sample))
        keys.extend(batch)
        if cursor == 0:
            break
    keys = keys[:sample]
    if not keys:
        return pd.DataFrame(columns=["key", "type", "bytes", "ttl_s"])
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)  # Redis's default 5 samples: SAMPLES 0 walks every element, blocking the server
        pipe.type(key)
        pipe.ttl(key)
    try:
        results = pipe.execute()
    except _UNREACHABLE as exc:
        raise Unreachable(f"cache {cache.label}", _one_line(exc)) from None
    rows = [
        {"key": _text(k), "bytes": results[3 * i] or 0, "type": _text(results[3 * i + 1]), "ttl_s": results[3 * i + 2]}
        for i, k in enumerate(keys)
    ]
    frame = pd.DataFrame(rows, columns=["key", "type", "bytes", "ttl_s"])
    return frame.sort_values("bytes", ascending=False).head(top).reset_index(drop=True)


# Commands whose first argument is not a key (a script, a password, a setting): shown by name only.
_OPAQUE = {
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "FCALL",
    "FCALL_RO",
    "SCRIPT",
    "FUNCTION",
    "AUTH",
    "HELLO",
    "CONFIG",
    "ACL",
    "MIGRATE",
    "CLIENT",
    "MODULE",
    "DEBUG",
}


def _masked_command(words: list[str]) -> str:
    """A slow-log entry as `COMMAND key ?…`: values can hold customer data, scripts and settings can hold secrets."""
    if not words:
        return ""
    name = words[0].upper()
    if name in _OPAQUE or len(words) == 1:
        return name + (" …" if len(words) > 1 else "")
    return " ".join([name, words[1]] + (["…"] if len(words) > 2 else []))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# --- findings ---------------------------------------------------------------------------------------------------


def reachable_finding(cache: Cache | None = None) -> Finding:
    cache = _cache(cache)
    started = time.monotonic()
    try:
        info = cache.call("info", "server")
    except Unreachable as exc:
        return Finding("cache.reachable", "cache", Severity.CRITICAL, message=str(exc))
    except NotConfigured as exc:
        return Finding("cache.configured", "cache", Severity.INFO, message=f"{exc}: skipped")
    elapsed = (time.monotonic() - started) * 1000
    return Finding(
        "cache.reachable",
        "cache",
        Severity.OK,
        round(elapsed, 1),
        None,
        "ms",
        f"connected to {cache.label}: Redis {info.get('redis_version')} in {elapsed:.0f} ms",
    )


def memory_finding(memory: MemoryUsage) -> Finding:
    if memory.used_ratio is None:
        return Finding(
            "cache.memory_used",
            "cache",
            Severity.WARNING,
            None,
            0.9,
            "ratio",
            f"no maxmemory set: Redis uses {memory.used_bytes / 2**20:.1f} MiB and can grow until the "
            "host runs out of memory",
        )
    return judge(
        "cache.memory_used",
        "cache",
        round(memory.used_ratio, 4),
        f"{memory.used_bytes / 2**20:.1f} of {memory.maxmemory_bytes / 2**20:.1f} MiB used "
        f"({memory.used_ratio:.0%}), policy {memory.policy}",
    )


def hit_rate_finding(cache_stats: CacheStats, min_lookups: int = 100) -> Finding:
    lookups = cache_stats.keyspace_hits + cache_stats.keyspace_misses
    if cache_stats.hit_rate is None or lookups < min_lookups:
        return Finding(
            "cache.hit_rate",
            "cache",
            Severity.OK,
            cache_stats.hit_rate,
            0.8,
            "ratio",
            f"too few lookups to judge ({lookups} since restart)",
            period=_since_restart(cache_stats),
        )
    return judge(
        "cache.hit_rate",
        "cache",
        round(cache_stats.hit_rate, 4),
        f"hit rate {cache_stats.hit_rate:.1%}: {cache_stats.keyspace_hits:,} hits, "
        f"{cache_stats.keyspace_misses:,} misses since restart",
        period=_since_restart(cache_stats),
    )


def evictions_finding(cache_stats: CacheStats) -> Finding:
    return judge(
        "cache.evictions",
        "cache",
        cache_stats.evicted_keys,
        f"{cache_stats.evicted_keys:,} keys evicted in {cache_stats.uptime_s / 3600:.1f} h since restart "
        "(runbook: evictions = 0)",
        period=_since_restart(cache_stats),
    )


def _since_restart(cache_stats: CacheStats):
    """Lifetime counters: sampled ones (imsnb.sampling) are what an incident is judged on."""
    return since(datetime.now(UTC) - timedelta(seconds=cache_stats.uptime_s))


def latency_finding(measured: Latency) -> Finding:
    """Judged on the median round trip (p99 on a shared host is noise); both are in the message."""
    return judge(
        "cache.latency",
        "cache",
        measured.p50_ms,
        f"PING round trip p50 {measured.p50_ms:.2f} ms, p99 {measured.p99_ms:.2f} ms over "
        f"{measured.samples} samples (runbook: < {threshold('cache.latency').warning:g} ms)",
    )


def clients_finding(cache_stats: CacheStats) -> Finding:
    severity = Severity.WARNING if cache_stats.blocked_clients else Severity.OK
    return Finding(
        "cache.blocked_clients",
        "cache",
        severity,
        cache_stats.blocked_clients,
        0,
        "clients",
        f"{cache_stats.connected_clients} clients connected, {cache_stats.blocked_clients} blocked",
    )


def cache_or_default(cache: Cache | None = None) -> Cache:
    """`cache`, or the interactive default client when None: the public name for other modules (actions)."""
    return _cache(cache)
