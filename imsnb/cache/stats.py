"""Redis INFO stats since restart: hit rate, evictions, clients (sampled rates: `imsnb.sampling`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imsnb.cache.session import Cache, cache_or_default
from imsnb.findings import Finding, Severity, judge, unjudged
from imsnb.period import Period, since


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


def stats(cache: Cache | None = None) -> CacheStats:
    """Hit rate from keyspace hits/misses, evictions, clients and throughput (INFO server, clients, stats)."""
    info = cache_or_default(cache).call("info", "everything")
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


def hit_rate_finding(cache_stats: CacheStats, min_lookups: int = 100) -> Finding:
    lookups = cache_stats.keyspace_hits + cache_stats.keyspace_misses
    if cache_stats.hit_rate is None or lookups < min_lookups:
        return unjudged(
            "cache.hit_rate",
            "cache",
            Severity.OK,
            f"too few lookups to judge ({lookups} since restart)",
            value=cache_stats.hit_rate,
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


def _since_restart(cache_stats: CacheStats) -> Period:
    """Lifetime counters: sampled ones (imsnb.sampling) are what an incident is judged on."""
    return since(datetime.now(UTC) - timedelta(seconds=cache_stats.uptime_s))


def clients_finding(cache_stats: CacheStats) -> Finding:
    severity = Severity.WARNING if cache_stats.blocked_clients else Severity.OK
    return Finding.of(
        "cache.blocked_clients",
        "cache",
        severity,
        f"{cache_stats.connected_clients} clients connected, {cache_stats.blocked_clients} blocked",
        value=cache_stats.blocked_clients,
        threshold=0,
        unit="clients",
    )
