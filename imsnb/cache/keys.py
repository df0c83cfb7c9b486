"""Redis keys: counts per database (INFO keyspace) and the biggest keys of a bounded SCAN sample (never KEYS)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from imsnb.cache.session import UNREACHABLE, Cache, cache_or_default
from imsnb.errors import Unreachable
from imsnb.session import one_line

__all__ = [
    "big_keys",
    "keyspace",
]


def keyspace(cache: Cache | None = None) -> pd.DataFrame:
    """Keys and keys-with-expiry per database (INFO keyspace)."""
    info = cache_or_default(cache).call("info", "keyspace")
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


def big_keys(
    cache: Cache | None = None, *, sample: int = 1000, top: int = 10, match: str | None = None, db: int | None = None
) -> pd.DataFrame:
    """The largest of up to `sample` keys found by SCAN (never KEYS), with type, MEMORY USAGE and TTL.

    Only the `top` largest are asked their TYPE and TTL: Redis counts each as a keyspace hit (or miss), which the
    hit rate of every later window would take for the application's (MEMORY USAGE and SCAN count none). So a run
    costs the hit rate at most 2 x `top` lookups, not 2 x `sample`."""
    cache = cache_or_default(cache)
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
    sizes = _pipelined(cache, [("memory_usage", key) for key in keys])
    largest = sorted(zip(keys, sizes, strict=True), key=lambda pair: pair[1] or 0, reverse=True)[:top]
    answers = _pipelined(cache, [(method, key) for key, _ in largest for method in ("type", "ttl")])
    rows = [
        {"key": decoded(key), "type": decoded(answers[2 * i]), "bytes": size or 0, "ttl_s": answers[2 * i + 1]}
        for i, (key, size) in enumerate(largest)
    ]
    return pd.DataFrame(rows, columns=["key", "type", "bytes", "ttl_s"])


def _pipelined(cache: Cache, commands: list[tuple[str, bytes]]) -> list[Any]:
    """One round trip for many one-key commands (MEMORY USAGE with Redis's default 5 samples: SAMPLES 0 walks every
    element, blocking the server)."""
    pipe = cache.client().pipeline(transaction=False)
    for method, key in commands:
        getattr(pipe, method)(key)
    try:
        return pipe.execute()
    except UNREACHABLE as exc:
        raise Unreachable(f"cache {cache.label}", one_line(exc)) from None


def decoded(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
