"""Redis diagnostics, one module per topic, each holding its fetcher and its judge together.

    session.py  Cache (one connection per run, short socket timeouts, failure remembered), reachability
    memory.py   used_memory against maxmemory, the eviction policy, fragmentation
    stats.py    INFO stats since restart (shown as context) and blocked clients; hit rate and evictions are judged
                on a sample, in `imsnb.sampling`
    latency.py  PING round trips
    keys.py     keys per database, the biggest keys of a bounded SCAN sample
    slowlog.py  the slow log, arguments masked

Nothing here walks the keyspace with KEYS: big keys come from a bounded SCAN sample and MEMORY USAGE.
"""

from imsnb.cache.keys import big_keys, keyspace
from imsnb.cache.latency import Latency, latency, latency_finding
from imsnb.cache.memory import MemoryUsage, memory_finding, memory_usage
from imsnb.cache.session import (
    CONNECT_TIMEOUT_S,
    SOCKET_TIMEOUT_S,
    Cache,
    cache_or_default,
    default_cache,
    reachable_finding,
)
from imsnb.cache.slowlog import slow_log
from imsnb.cache.stats import CacheStats, clients_finding, stats

__all__ = [
    "CONNECT_TIMEOUT_S",
    "SOCKET_TIMEOUT_S",
    "Cache",
    "CacheStats",
    "Latency",
    "MemoryUsage",
    "big_keys",
    "cache_or_default",
    "clients_finding",
    "default_cache",
    "keyspace",
    "latency",
    "latency_finding",
    "memory_finding",
    "memory_usage",
    "reachable_finding",
    "slow_log",
    "stats",
]
