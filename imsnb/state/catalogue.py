"""The run catalogue in a shared store: one row per run folder written on any worker (its incident, notebook, start,
status, worst severity and scrubbed summary.json), so an incident's index.html and `imsnb archive list` show the
runs every worker made, not only this one's outputs folder.

A run is identified by the worker that wrote it (its host name) and the folder's path there. The folders stay
where they are (and in the S3 archive); the catalogue only says they exist and what they found. Without a shared
store (no IMSNB_STATE_URL or `[state] url`) nothing is recorded and only the local folders are read, as before.
"""

from __future__ import annotations

import json
import os
import socket
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imsnb.errors import BadParameter
from imsnb.state.store import Store, open_store

UPSERT_RUN = """
INSERT INTO runs (worker, location, incident, folder, notebook, started_at, status, severity, recorded_at, summary)
VALUES (:worker, :location, :incident, :folder, :notebook, :started_at, :status, :severity, :recorded_at, :summary)
ON CONFLICT (worker, location) DO UPDATE SET
    incident = excluded.incident, folder = excluded.folder, notebook = excluded.notebook,
    started_at = excluded.started_at, status = excluded.status, severity = excluded.severity,
    recorded_at = excluded.recorded_at, summary = excluded.summary
"""
INCIDENT_RUNS = """
SELECT worker, location, folder, summary, archived_as
FROM runs
WHERE incident = :incident
ORDER BY started_at, folder
LIMIT :limit
"""
# Without the summaries: what `imsnb archive list` needs of every incident's runs.
ALL_RUNS = """
SELECT incident, worker, location, folder, notebook, started_at, status, severity
FROM runs
ORDER BY started_at DESC
LIMIT :limit
"""
MAX_RUNS = 10_000
# Kept for IMSNB_CATALOGUE_DAYS (default 90): the run folders themselves live on in the archive (S3); the catalogue
# is what index.html and `imsnb archive list` read, and at a run every few minutes per notebook it would grow by
# megabytes a day without a bound.
DEFAULT_CATALOGUE_DAYS = 90.0
PRUNE_RUNS = "DELETE FROM runs WHERE recorded_at < :cutoff"
RUN_ARCHIVED = "UPDATE runs SET archived_as = :archived_as WHERE worker = :worker AND location = :location"


def worker_name() -> str:
    """This worker, as the catalogue names it: the host name."""
    return socket.gethostname()


def shared_store() -> Store | None:
    """The configured store when it is a shared one (IMSNB_STATE_URL or `[state] url`), else None."""
    store = open_store()
    return store if store.shared else None


def record_run(folder: Path, summary: dict[str, Any], store: Store | None = None) -> str | None:
    """Record a written run folder in the shared store; None when recorded (or there is no shared store), else why
    not, in one line naming the store without credentials (the folder itself is complete either way)."""
    store = store or shared_store()
    if store is None:
        return None
    folder = Path(folder).resolve()
    row = {
        "worker": worker_name(),
        "location": str(folder),
        "incident": folder.parent.name,
        "folder": folder.name,
        "notebook": str(summary.get("notebook") or ""),
        "started_at": str(summary.get("started_at") or ""),
        "status": str(summary.get("status") or ""),
        "severity": summary.get("severity"),
        "recorded_at": time.time(),
        "summary": zlib.compress(json.dumps(summary, ensure_ascii=False, default=str).encode(), 6),
    }

    def upsert(conn: Any) -> None:
        conn.execute(UPSERT_RUN, row)
        conn.execute(PRUNE_RUNS, {"cutoff": row["recorded_at"] - catalogue_days() * 86400})

    problem = _in_transaction(store, upsert)
    return f"run {folder.name} not recorded in the store: {problem}" if problem else None


def catalogue_days() -> float:
    """How long the catalogue keeps a run: IMSNB_CATALOGUE_DAYS, default 90 (a bad value is bad input)."""
    raw = os.environ.get("IMSNB_CATALOGUE_DAYS") or DEFAULT_CATALOGUE_DAYS
    try:
        days = float(raw)
    except ValueError:
        days = 0.0
    if not days > 0:
        raise BadParameter(f"IMSNB_CATALOGUE_DAYS must be a positive number of days (e.g. 90), not {raw!r}")
    return days


def remote_runs(incident_dir: Path, store: Store | None = None) -> list[dict[str, Any]]:
    """The incident's runs the catalogue holds from other workers or other outputs folders (those in `incident_dir`
    are read from their folders), as `read_runs` returns local ones (summary.json plus `folder`), with `worker`,
    `location` and `remote: True`; empty without a shared store. StoreError (or the driver's error) when the store
    cannot be read."""
    store = store or shared_store()
    if store is None:
        return []
    conn = store.connect()
    try:
        rows = conn.execute(INCIDENT_RUNS, {"incident": Path(incident_dir).name, "limit": MAX_RUNS}).fetchall()
    finally:
        conn.close()
    runs = []
    for worker, location, folder, blob, archived_as in rows:
        if _is_in(worker, location, incident_dir):
            continue
        try:
            summary = json.loads(zlib.decompress(bytes(blob)).decode())
        except (ValueError, zlib.error):
            continue
        if isinstance(summary, dict):
            where = {"folder": folder, "worker": worker, "location": location, "archived_as": archived_as}
            runs.append({**summary, **where, "remote": True})
    return runs


def record_archived(archived: dict[Path, str], store: Store | None = None) -> str | None:
    """Record where this worker's run folders were archived (folder -> its URL in the archive), so every worker's
    archive index links them; None when recorded (or there is no shared store), else why not, in one line."""
    store = store or shared_store()
    if store is None or not archived:
        return None
    rows = [
        {"worker": worker_name(), "location": str(Path(folder).resolve()), "archived_as": url}
        for folder, url in archived.items()
    ]

    def update(conn: Any) -> None:
        for row in rows:
            conn.execute(RUN_ARCHIVED, row)

    problem = _in_transaction(store, update)
    return f"where the runs were archived not recorded in the store: {problem}" if problem else None


def remote_incidents(outputs: Path, store: Store | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every incident's runs from other workers or outputs folders than `outputs` (without their findings: what a
    listing needs), by incident id."""
    store = store or shared_store()
    if store is None:
        return {}
    conn = store.connect()
    try:
        rows = conn.execute(ALL_RUNS, {"limit": MAX_RUNS}).fetchall()
    finally:
        conn.close()
    found: dict[str, list[dict[str, Any]]] = {}
    for incident, worker, location, folder, notebook, started_at, status, severity in rows:
        if _is_in(worker, location, Path(outputs) / incident):
            continue
        found.setdefault(incident, []).append(
            {
                "folder": folder,
                "notebook": notebook,
                "started_at": started_at,
                "status": status,
                "severity": severity,
                "worker": worker,
                "location": location,
                "remote": True,
            }
        )
    return found


def _is_in(worker: str, location: str, incident_dir: Path) -> bool:
    """A run this worker wrote into `incident_dir`: read from its folder there, not from the catalogue."""
    return worker == worker_name() and Path(location).parent == Path(incident_dir).resolve()


def _in_transaction(store: Store, work: Callable[[Any], None]) -> str | None:
    """`work(conn)` in one transaction on the store; None when done, else why not, in one line naming the store
    without credentials (what the caller wrote down is complete either way)."""
    try:
        conn = store.connect()
        try:
            with conn:
                work(conn)
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - sqlite3/psycopg errors (and a bad setting): said, never raised
        return _reason(store, exc)
    return None


def _reason(store: Store, exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if store.name in text else f"store {store.name}: {text}"
