"""Redis memory: used_memory against maxmemory, the eviction policy, fragmentation (INFO memory)."""

from __future__ import annotations

from dataclasses import dataclass

from imsnb.cache.session import Cache, cache_or_default
from imsnb.findings import Finding, Severity, judge, unjudged

__all__ = [
    "MemoryUsage",
    "memory_finding",
    "memory_usage",
]


@dataclass
class MemoryUsage:
    used_bytes: int
    maxmemory_bytes: int
    used_ratio: float | None  # None when maxmemory is 0 (unbounded)
    policy: str
    peak_bytes: int
    fragmentation_ratio: float


def memory_usage(cache: Cache | None = None) -> MemoryUsage:
    """used_memory against maxmemory, the eviction policy and fragmentation (INFO memory)."""
    info = cache_or_default(cache).call("info", "memory")
    used, limit = int(info["used_memory"]), int(info.get("maxmemory", 0))
    return MemoryUsage(
        used,
        limit,
        used / limit if limit else None,
        str(info.get("maxmemory_policy", "")),
        int(info.get("used_memory_peak", 0)),
        float(info.get("mem_fragmentation_ratio", 0)),
    )


def memory_finding(memory: MemoryUsage) -> Finding:
    if memory.used_ratio is None:
        return unjudged(
            "cache.memory_used",
            Severity.WARNING,
            f"no maxmemory set: Redis uses {memory.used_bytes / 2**20:.1f} MiB and can grow until the "
            "host runs out of memory",
        )
    return judge(
        "cache.memory_used",
        round(memory.used_ratio, 4),
        f"{memory.used_bytes / 2**20:.1f} of {memory.maxmemory_bytes / 2**20:.1f} MiB used "
        f"({memory.used_ratio:.0%}), policy {memory.policy}",
    )
