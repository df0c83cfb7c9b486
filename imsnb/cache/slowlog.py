"""The Redis slow log, newest first, with each command's arguments after the key masked."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from imsnb.cache.keys import decoded
from imsnb.cache.session import Cache, cache_or_default

__all__ = [
    "slow_log",
]


def slow_log(cache: Cache | None = None, *, limit: int = 20) -> pd.DataFrame:
    """The slow log, newest first; arguments after the key are masked (they can hold customer data)."""
    entries = cache_or_default(cache).call("slowlog_get", limit)
    rows = []
    for entry in entries:
        words = decoded(entry.get("command", b"")).split()
        shown = _masked_command(words)
        rows.append(
            {
                "id": entry.get("id"),
                "at": datetime.fromtimestamp(int(entry.get("start_time", 0)), UTC),
                "duration_ms": int(entry.get("duration", 0)) / 1000,
                "command": shown,
                "client": decoded(entry.get("client_address", b"")),
                "client_name": decoded(entry.get("client_name", b"")),
            }
        )
    return pd.DataFrame(rows, columns=["id", "at", "duration_ms", "command", "client", "client_name"])


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
