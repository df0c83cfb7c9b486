"""Redis INFO stats since restart: hit rate, evictions, clients (sampled rates: `imsnb.sampling`)."""

from __future__ import annotations

from dataclasses import dataclass

from imsnb.cache.session import Cache, cache_or_default
from imsnb.findings import Finding, Severity

__all__ = [
    "CacheStats",
    "clients_finding",
    "stats",
]


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


def clients_finding(cache_stats: CacheStats) -> Finding:
    severity = Severity.WARNING if cache_stats.blocked_clients else Severity.OK
    return Finding.of(
        "cache.blocked_clients",
        severity,
        f"{cache_stats.connected_clients} clients connected, {cache_stats.blocked_clients} blocked",
        value=cache_stats.blocked_clients,
        threshold=0,
        unit="clients",
    )
