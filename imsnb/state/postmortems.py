"""The incident's post-mortem in a shared store: what people wrote in `postmortem.json` on any worker, the last
written one shown by every worker's index.html and post-mortem draft.

People write `postmortem.json` in the incident folder of the machine they are on. Whenever imsnb reads it there
(every index written, every draft), the file's fields (scrubbed) are offered to the store with the file's
modification time; the store keeps the one written last (`ON CONFLICT ... WHERE` older: two workers offering at once
keep the later, without a lock). A worker whose file is older, or that has none, shows the store's, saying where it
was written. No file is ever overwritten: what someone typed stays in their folder.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

from imsnb.state.catalogue import shared_store
from imsnb.state.store import Store

__all__ = ["Postmortem", "shared_postmortem"]

OFFER_POSTMORTEM = """
INSERT INTO postmortems (incident, written_at, worker, location, fields)
VALUES (:incident, :written_at, :worker, :location, :fields)
ON CONFLICT (incident) DO UPDATE SET
    written_at = excluded.written_at, worker = excluded.worker, location = excluded.location, fields = excluded.fields
WHERE postmortems.written_at < excluded.written_at
"""
NEWEST_POSTMORTEM = "SELECT written_at, worker, location, fields FROM postmortems WHERE incident = :incident"


@dataclass(frozen=True)
class Postmortem:
    """The post-mortem fields and where they were written (`worker`, the file's `location`, `written_at` its
    modification time in seconds since the epoch)."""

    fields: dict[str, str]
    worker: str
    location: str
    written_at: float


def shared_postmortem(incident_dir: Path, local: Postmortem | None, store: Store | None = None) -> Postmortem | None:
    """The incident's post-mortem written last on any worker: `local` (this folder's, already scrubbed) offered to
    the shared store first; `local` itself without a shared store. StoreError (or the driver's error) when the
    store cannot be used."""
    store = store or shared_store()
    if store is None:
        return local
    incident = Path(incident_dir).name
    conn = store.connect()
    try:
        with conn:
            if local is not None:
                conn.execute(
                    OFFER_POSTMORTEM,
                    {
                        "incident": incident,
                        "written_at": local.written_at,
                        "worker": local.worker,
                        "location": local.location,
                        "fields": zlib.compress(json.dumps(local.fields, ensure_ascii=False).encode(), 6),
                    },
                )
            row = conn.execute(NEWEST_POSTMORTEM, {"incident": incident}).fetchone()
    finally:
        conn.close()
    if row is None:
        return local
    written_at, worker, location, blob = row
    if local is not None and float(written_at) <= local.written_at:
        return local
    try:
        fields = json.loads(zlib.decompress(bytes(blob)).decode())
    except (ValueError, zlib.error):
        return local
    if not isinstance(fields, dict):
        return local
    return Postmortem({str(k): str(v) for k, v in fields.items()}, str(worker), str(location), float(written_at))
