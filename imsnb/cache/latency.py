"""Redis round-trip latency: PING timings judged on the median (the runbook's "Latency: < 1ms")."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd

from imsnb.cache.session import Cache, cache_or_default
from imsnb.findings import Finding, judge, threshold

__all__ = [
    "Latency",
    "latency",
    "latency_finding",
]


@dataclass
class Latency:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def latency(cache: Cache | None = None, *, samples: int = 50) -> Latency:
    """Round-trip time of `samples` PINGs, in ms (the runbook's "Latency: < 1ms")."""
    cache = cache_or_default(cache)
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


def latency_finding(measured: Latency) -> Finding:
    """Judged on the median round trip (p99 on a shared host is noise); both are in the message."""
    return judge(
        "cache.latency",
        measured.p50_ms,
        f"PING round trip p50 {measured.p50_ms:.2f} ms, p99 {measured.p99_ms:.2f} ms over "
        f"{measured.samples} samples (runbook: < {threshold('cache.latency').warning:g} ms)",
    )
