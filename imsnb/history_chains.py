"""The history's snapshots as chains in the store, and what keeps its size growing with what changes, not with time.

A stored snapshot is a keyframe (`base_id` NULL: its data whole, as every snapshot was before schema version 3) or
the rows that changed since its base (`base_id`: an earlier snapshot of the same target and source,
`imsnb.snapshot_rows`). Its counters are its keyframe's rows with each change after it applied, in order: one
recursive read (`CHAIN`), so exact at any stored time. Bases always point back in time ((taken_at, id) order), so
chains have no cycles.

Dropping snapshots (downsampling, retention by age, the size cap) first rewrites every snapshot whose base is
dropped: re-encoded against the snapshot kept before it, or made a keyframe; the counters each kept snapshot
answers never change, only how they are stored. Written under the history lock, inside the writer's transaction,
so a reader (one read transaction, `Store.reading`) sees the chains before or after, never half.

Downsampling (TIERS): snapshots older than a day are kept one per 15-minute bucket, and older than three days one per
hour (the last of the bucket, per statistics epoch, so the last one before a restart stays too):
with 20% of 5,000 statements moving each minute, nearly every statement moves within 15 minutes, so an older
15-minute snapshot costs almost a whole one; hourly ones past three days keep 14 days under the 200 MB cap
(`bench/history_growth.py`). The window rule's slack grows with the spacing (`kept_every`), so "this time last week"
starts from the snapshot kept within the hour before it (for a window of an hour or more).
"""

from __future__ import annotations

import bisect
import json
import math
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from imsnb.snapshot_rows import Rebuilt, apply, as_rows, changes, pack_changes, pack_whole, unpack

# Downsampling, youngest tier first: past this age, one snapshot per bucket this wide (every one kept before the first)
TIERS = ((timedelta(hours=24), timedelta(minutes=15)), (timedelta(days=3), timedelta(hours=1)))
CHAIN_FACTOR = 2.0  # a keyframe when the changes since the last one would pass this many times its rows
MAX_DEPTH = 60  # ... or when this many deltas follow it (an idle server's empty deltas)
SAFE_DEPTH = 10_000  # the recursive read stops here whatever the store holds
MEMO = 8  # rebuilt snapshots kept while one transaction works (a chain's neighbours)
CHUNK = 500  # ids per IN (...) list

CHAIN = """
WITH RECURSIVE chain (id, base_id, data, depth) AS (
    SELECT id, base_id, data, 0 FROM snapshots WHERE id = :id
    UNION ALL
    SELECT s.id, s.base_id, s.data, chain.depth + 1
    FROM snapshots AS s
    JOIN chain ON s.id = chain.base_id
    WHERE chain.depth < :safe_depth
)
SELECT id, base_id, data FROM chain ORDER BY depth DESC
"""
COUNT_BETWEEN = """
SELECT count(*), min(taken_at) FROM snapshots
WHERE target = :target AND source = :source AND taken_at >= :lo AND taken_at < :hi
"""
SERIES_BETWEEN = """
SELECT id, taken_at, epoch FROM snapshots
WHERE target = :target AND source = :source AND taken_at >= :lo AND taken_at < :hi
ORDER BY taken_at, id
"""
DEPENDENTS = "SELECT id, taken_at FROM snapshots WHERE base_id IN ({ids})"
DELETE_IDS = "DELETE FROM snapshots WHERE id IN ({ids})"
REWRITE = "UPDATE snapshots SET base_id = :base_id, data = :data WHERE id = :id"
OLDER_THAN = "SELECT id FROM snapshots WHERE taken_at < :oldest"
OLDEST_IDS = "SELECT id FROM snapshots ORDER BY taken_at, id LIMIT :rows"
STORED_BYTES = "SELECT coalesce(sum(length(data)), 0) FROM snapshots"
COUNT_ROWS = "SELECT count(*) FROM snapshots"


class Chains:
    """Stored snapshots rebuilt within one connection's transaction, the last few remembered (a chain's next
    snapshot starts from its base's rows instead of the keyframe)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.memo: OrderedDict[int, Rebuilt] = OrderedDict()

    def get(self, row_id: int) -> Rebuilt | None:
        """The snapshot `row_id` rebuilt; None when it is not stored (or its chain is broken, never left so)."""
        if row_id in self.memo:
            self.memo.move_to_end(row_id)
            return self.memo[row_id]
        links = self.conn.execute(CHAIN, {"id": row_id, "safe_depth": SAFE_DEPTH}).fetchall()
        start, rebuilt = 0, None
        for i in range(len(links) - 1, -1, -1):
            if links[i][0] in self.memo:
                start, rebuilt = i + 1, self.memo[links[i][0]]
                break
        if rebuilt is None and (not links or links[0][1] is not None):
            return None
        for _, base_id, blob in links[start:]:
            if base_id is None:
                rebuilt = Rebuilt(whole=unpack(blob))
                continue
            base_rows = rebuilt.rows() if rebuilt is not None else None
            if base_rows is None:
                return None
            delta = unpack(blob)
            moved = len(delta["set"]) + len(delta["gone"])
            rows = apply(base_rows, delta["set"], delta["gone"])
            rebuilt = Rebuilt(rows=rows, depth=rebuilt.depth + 1, changed=rebuilt.changed + moved)
        self.remember(row_id, rebuilt)
        return rebuilt

    def remember(self, row_id: int, rebuilt: Rebuilt) -> None:
        self.memo[row_id] = rebuilt
        self.memo.move_to_end(row_id)
        while len(self.memo) > MEMO:
            self.memo.popitem(last=False)

    def forget(self, row_id: int) -> None:
        self.memo.pop(row_id, None)


def encode(data: Any, base: Rebuilt | None, text: bytes | None = None) -> tuple[bool, bytes, Rebuilt]:
    """(as changes against `base`?, the blob, the snapshot as rebuilt from it). `data` as JSON gives it back
    (`snapshot_rows.normal`; `text` its JSON when known), no longer changed by the caller (it is remembered).
    Changes when `base` and `data` are rows and the chain stays short (CHAIN_FACTOR, MAX_DEPTH); else whole."""
    rows = as_rows(data)
    base_rows = base.rows() if base is not None and rows is not None else None
    if base is not None and base_rows is not None and base.depth < MAX_DEPTH:
        changed, gone = changes(base_rows, rows)
        moved = len(changed) + len(gone)
        if base.changed + moved <= CHAIN_FACTOR * max(len(rows), 1):
            rebuilt = Rebuilt(rows=rows, depth=base.depth + 1, changed=base.changed + moved)
            return True, pack_changes(changed, gone), rebuilt
    if text is None:
        text = json.dumps(data, separators=(",", ":"), default=str).encode()
    rebuilt = Rebuilt(whole=data)
    return False, pack_whole(text), rebuilt


def _ids(ids: list[int]) -> tuple[str, dict[str, int]]:
    names = {f"id{i}": row_id for i, row_id in enumerate(ids)}
    return ", ".join(f":{name}" for name in names), names


def drop(conn: Any, chains: Chains, ids: list[int], new_base: Callable[[int, float], int | None] | None = None) -> int:
    """Delete the snapshots `ids`, first rewriting each kept one whose base is among them: against `new_base(id,
    taken_at)` (a kept snapshot before it) when given, else as a keyframe. Returns how many were deleted."""
    dropped = set(ids)
    dependents: set[tuple[float, int]] = set()
    for i in range(0, len(ids), CHUNK):
        marks, params = _ids(ids[i : i + CHUNK])
        for row_id, taken_at in conn.execute(DEPENDENTS.format(ids=marks), params).fetchall():
            if row_id not in dropped:
                dependents.add((taken_at, row_id))
    for taken_at, row_id in sorted(dependents):  # oldest first: a rewritten one can be the next one's base
        rebuilt = chains.get(row_id)
        if rebuilt is None:
            continue
        base_id = new_base(row_id, taken_at) if new_base is not None else None
        base = chains.get(base_id) if base_id is not None else None
        as_changes, blob, again = encode(rebuilt.data, base)
        conn.execute(REWRITE, {"id": row_id, "base_id": base_id if as_changes else None, "data": blob})
        chains.remember(row_id, again)
    for i in range(0, len(ids), CHUNK):
        marks, params = _ids(ids[i : i + CHUNK])
        conn.execute(DELETE_IDS.format(ids=marks), params)
    for row_id in dropped:
        chains.forget(row_id)
    return len(dropped)


def downsample(conn: Any, chains: Chains, target: str, source: str, now: datetime) -> int:
    """One snapshot per bucket of each tier (TIERS: past its age, its width; the last per epoch), the oldest tier
    first; returns how many were dropped."""
    series = {"target": target, "source": source}
    dropped, lo = 0, 0.0
    for age, width in reversed(TIERS):
        hi = max(lo, _edge(now - age, width))
        dropped += _downsample(conn, chains, {**series, "lo": lo, "hi": hi}, width)
        lo = hi
    return dropped


def kept_every(age: timedelta) -> timedelta:
    """How far apart the history keeps snapshots this old (TIERS; zero: every one is kept)."""
    width = timedelta(0)
    for tier_age, tier_width in TIERS:
        if age > tier_age:
            width = tier_width
    return width


def _edge(at: datetime, width: timedelta) -> float:
    return math.floor(at.timestamp() / width.total_seconds()) * width.total_seconds()


def _downsample(conn: Any, chains: Chains, series: dict[str, Any], width: timedelta) -> int:
    """One snapshot per `width` bucket of the snapshots taken from `series`' lo to its hi. Cheap when there is
    nothing to do (the usual case: a bucket fills every `width`): the index says how many snapshots the span holds
    and how many buckets they cover; only more snapshots than buckets are read."""
    every = width.total_seconds()
    count, oldest = conn.execute(COUNT_BETWEEN, series).fetchone()
    if count <= 1 or count <= series["hi"] // every - math.floor(oldest / every):
        return 0
    rows = conn.execute(SERIES_BETWEEN, series).fetchall()
    last: dict[tuple[int, str], int] = {}
    for row_id, taken_at, epoch in rows:
        last[(math.floor(taken_at / every), epoch)] = row_id
    kept = set(last.values())
    dropped = [row_id for row_id, _, _ in rows if row_id not in kept]
    if not dropped:
        return 0
    order = [(taken_at, row_id) for row_id, taken_at, _ in rows if row_id in kept]

    def kept_before(row_id: int, taken_at: float) -> int | None:
        i = bisect.bisect_left(order, (taken_at, row_id))
        return order[i - 1][1] if i > 0 else None

    return drop(conn, chains, dropped, kept_before)


def prune(conn: Any, chains: Chains, *, oldest: datetime, max_bytes: int) -> int:
    """Retention: the snapshots taken before `oldest`, then the oldest tenth at a time while the snapshot data
    passes `max_bytes` (the newest snapshot always stays). Returns how many were dropped."""
    dropped = 0
    old = [row_id for (row_id,) in conn.execute(OLDER_THAN, {"oldest": oldest.timestamp()}).fetchall()]
    if old:
        dropped += drop(conn, chains, old)
    rows = conn.execute(COUNT_ROWS).fetchone()[0]
    while rows > 1 and conn.execute(STORED_BYTES).fetchone()[0] > max_bytes:
        ids = [row_id for (row_id,) in conn.execute(OLDEST_IDS, {"rows": max(1, rows // 10)}).fetchall()]
        dropped += drop(conn, chains, ids)
        rows = conn.execute(COUNT_ROWS).fetchone()[0]
    return dropped
