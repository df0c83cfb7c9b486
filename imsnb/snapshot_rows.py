"""A snapshot stored as the rows that changed since another one: the encoding, and a snapshot rebuilt exactly from
a keyframe (a snapshot stored whole) and the changes after it.

The data of pg_stat_statements, pg_stat_database and pg_stat_user_tables snapshots is rows (lists of values); Redis
INFO's is a dict, always stored whole. A row's identity is its values that are not numbers, by position (a
statement's queryid, database, user and toplevel; a table's schema and name; a database's name); its counters are
the numbers. Rows whose identities are unique can be stored as changes against a base snapshot: the rows that are
new or differ (`set`) and the rows gone (`gone`, whole). Rebuilding gives the same rows as the full snapshot, each
value as JSON gave it back (the readers merge rows by identity, so their order is the base's, new rows last).
"""

from __future__ import annotations

import itertools
import json
import zlib
from typing import Any

Key = tuple
Rows = dict[Key, list]  # identity -> row, in the snapshot's order

LEVEL = 6  # zlib level, as the full snapshots always were


IDENTITY = frozenset({str, bool, type(None)})


def row_key(row: list) -> Key:
    """The row's identity: its text, booleans and None, in order (numbers are counters). Any deterministic key is
    exact here: rows whose keys repeat within a snapshot are stored whole (`as_rows`)."""
    return tuple([v for v in row if v.__class__ in IDENTITY])


def as_rows(data: Any) -> Rows | None:
    """The data as rows by identity; None when it is not rows or two rows share an identity (then stored whole)."""
    if not isinstance(data, list):
        return None
    rows: Rows = {}
    for row in data:
        if not isinstance(row, list):
            return None
        key = row_key(row)
        if key in rows:
            return None
        rows[key] = row
    return rows


PLAIN = frozenset({str, bool, type(None), int, float})


def normal(data: Any) -> tuple[Any, bytes | None]:
    """The data as a reader gets it back (through JSON, as stored) and its JSON text (None when not worked out:
    rows of plain values come back from JSON as they are, so they are only copied, which is cheaper)."""
    rows = isinstance(data, list) and set(map(type, data)) <= {list}
    if rows and set(map(type, itertools.chain.from_iterable(data))) <= PLAIN:
        return [list(row) for row in data], None
    text = json.dumps(data, separators=(",", ":"), default=str).encode()
    return json.loads(text), text


def changes(base: Rows, now: Rows) -> tuple[list[list], list[list]]:
    """(rows new or changed since `base`, rows of `base` gone). Equal means equal values of the same types."""
    changed = [row for key, row in now.items() if not _same(base.get(key), row)]
    gone = [row for key, row in base.items() if key not in now]
    return changed, gone


def apply(base: Rows, changed: list[list], gone: list[list]) -> Rows:
    """`base` with the changes: a new mapping, `base` untouched."""
    rows = dict(base)
    for row in gone:
        rows.pop(row_key(row), None)
    for row in changed:
        rows[row_key(row)] = row
    return rows


def _same(before: list | None, row: list) -> bool:
    return before is not None and before == row and list(map(type, before)) == list(map(type, row))


def pack_whole(text: bytes) -> bytes:
    return zlib.compress(text, LEVEL)


def pack_changes(changed: list[list], gone: list[list]) -> bytes:
    text = json.dumps({"set": changed, "gone": gone}, separators=(",", ":"), default=str).encode()
    return zlib.compress(text, LEVEL)


def unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob).decode())


class Rebuilt:
    """A stored snapshot's data rebuilt: stored whole (a keyframe: `whole`, its rows by identity worked out only when
    needed) or from a keyframe and changes (`rows`); `depth` deltas and `changed` rows were read after the keyframe
    (what the next delta would add to)."""

    def __init__(self, *, whole: Any = None, rows: Rows | None = None, depth: int = 0, changed: int = 0) -> None:
        self.is_whole = rows is None
        self.whole, self._rows, self.depth, self.changed = whole, rows, depth, changed
        self._keyed = not self.is_whole

    def rows(self) -> Rows | None:
        """By identity; None for data that is not rows (Redis INFO) or whose identities repeat."""
        if not self._keyed:
            self._rows, self._keyed = as_rows(self.whole), True
        return self._rows

    @property
    def data(self) -> Any:
        return self.whole if self.is_whole else list(self._rows.values())
