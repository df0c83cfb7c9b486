"""The Jira step: the run's report and summary attached to the ticket (`--ticket KEY`), or to the incident's own issue
(`--ticket new`: the one its archive names, else one opened once across runs and workers), with the findings as a
comment; ticket.json keeps the key the index links."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imsnb import archive
from imsnb.errors import BadParameter, StoreError
from imsnb.files import locked_folder
from imsnb.notify import jira
from imsnb.notify.http import DeliveryFailed
from imsnb.notify.message import Notice
from imsnb.notify.records import failed_record, now, scrub, write_json
from imsnb.state.catalogue import shared_store
from imsnb.state.tickets import incident_issue


def ticket_step(key: str, notice: Notice, files: list, incident_dir: Path) -> list[dict[str, Any]]:
    try:
        jira.check_ticket(key)
    except BadParameter as exc:
        return [failed_record("jira", str(exc), "ticket")]
    records = []
    where: jira.Site | None = None
    unknown: DeliveryFailed | None = None
    try:
        where = jira.site()  # Cloud or Server/Data Center: asked once, before either call
    except DeliveryFailed as exc:
        unknown = exc
    opened = None
    if key == jira.NEW:  # the incident's issue: the one its archive names, else a new one, opened once
        found, opened, said = _incident_key(notice, where, unknown, incident_dir)
        records += said
        if found is None:
            return records
        key = found
    calls = [("attach", lambda site: jira.attach(site, key, files))]
    if not opened:  # an issue opened just now has the findings as its description: the same comment adds nothing
        calls.append(("comment", lambda site: jira.comment(site, key, scrub(jira.comment_body(site, notice)))))
    for what, call in calls:
        try:
            if where is None:
                raise unknown or DeliveryFailed("jira: the site could not be asked")
            detail = call(where)
        except (DeliveryFailed, OSError) as exc:
            records.append({**failed_record("jira", str(exc), "ticket"), "detail": f"{what} {key}"})
            continue
        records.append(
            {
                "channel": "jira",
                "status": "sent",
                "error": None,
                "detail": f"{key}: {detail}",
                "mode": "ticket",
                "at": now(),
            }
        )
    write_json(incident_dir / archive.TICKET, _ticket_record(incident_dir, key, opened))
    try:
        archive.write_index(incident_dir)
    except OSError as exc:
        records.append(failed_record("index", f"index.html not rewritten with the ticket link: {exc}", "ticket"))
    return records


def _incident_key(
    notice: Notice, where: jira.Site | None, unknown: DeliveryFailed | None, incident_dir: Path
) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """`--ticket new`: the incident's issue key (the one its archive names, else one opened now), when imsnb opened
    it (None: it was there), and the records to keep; the key is None when no issue could be opened (the failure is
    in the records). `unknown`: why the Jira site could not be asked (`where` None)."""
    created: dict[str, Any] = {}

    def open_issue() -> str:
        created["asked"] = True
        if where is None:
            raise unknown or DeliveryFailed("jira: the site could not be asked")
        created["fields"] = scrub(jira.issue_fields(where, notice, jira.new_issue_settings()))
        created["key"], created["priority"] = jira.create_issue(where, created["fields"])
        return created["key"]

    records: list[dict[str, Any]] = []
    opened = None
    # under the incident folder's lock (two runs on this worker) and the shared store's (two workers with their own
    # folders): two runs of one incident at once open one issue, the second reuses it
    with locked_folder(incident_dir):
        key = archive.ticket_key(incident_dir) or ""
        if not key:
            try:
                key, said = _incident_issue(incident_dir.name, open_issue, created)
            except (DeliveryFailed, BadParameter, OSError) as exc:
                return (
                    None,
                    None,
                    [{**failed_record("jira", str(exc), "ticket"), "detail": "open the incident's issue"}],
                )
            records += said
            opened = now() if "key" in created else None
            # kept at once: a run that stops before the end must not leave the next one to open a second issue
            write_json(incident_dir / archive.TICKET, _ticket_record(incident_dir, key, opened))
    if opened:
        priority = created["priority"]
        set_as = f"priority {priority}" if priority else "no priority (not on the project's create screen)"
        detail = f"{key}: opened in {created['fields']['project']['key']}, {set_as}"
        records.append(
            {"channel": "jira", "status": "sent", "error": None, "detail": detail, "mode": "ticket", "at": opened}
        )
    return key, opened, records


def _incident_issue(
    incident: str, open_issue: Callable[[], str], created: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The incident's issue key from the shared store (opened there once, under its lock), else opened by this
    worker alone; with a record saying so when the store could not be used (`created` holds what open_issue made:
    an issue opened before the store failed is kept, never opened twice)."""
    store = shared_store()
    if store is None:
        return open_issue(), []
    try:
        key, _ = incident_issue(store, incident, open_issue)
        return key, []
    except Exception as exc:  # noqa: BLE001 - sqlite3/psycopg errors too: the store never costs the ticket
        if created.get("asked") and "key" not in created:
            raise  # Jira's answer, not the store's
        reason = str(exc) if isinstance(exc, StoreError) else " ".join(str(exc).split())
    said = failed_record("store", f"{reason}; the incident's issue is this worker's own", "ticket")
    if "key" in created:  # opened, then the store failed: keep it (never open a second one now)
        return created["key"], [said]
    return open_issue(), [said]


def _ticket_record(incident_dir: Path, key: str, opened: str | None) -> dict[str, Any]:
    """ticket.json: the key and link the index shows and `--ticket new` reuses, and when imsnb opened the issue
    (kept across later runs that attach to it)."""
    record: dict[str, Any] = {"key": key, "url": jira.issue_url(key), "updated": now()}
    try:
        before = json.loads((incident_dir / archive.TICKET).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    if isinstance(before, dict) and before.get("key") == key and before.get("opened"):
        opened = opened or str(before["opened"])
    if opened:
        record["opened"] = opened
    return record
