"""What follows the runs, in one order for every caller — `imsnb run/suite/triage` and scheduled runs from cron and
Airflow: the run folders uploaded to the archive, then the notifications and the ticket (linking to the archive
only when the upload succeeded). Nothing here fails a run: an upload or a channel that fails is reported in the
returned `Delivery` (and, for channels, in each run's summary.json), the local run folders stay complete.

The direction of the data: runs write folders; archive and notify read them; this module is the one place that
sequences them, above both."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from imsnb import archive as archive_store
from imsnb import notify as notifier

__all__ = ["Delivery", "check_delivery", "deliver"]


@dataclass
class Delivery:
    """What became of the runs after they finished."""

    archive: str | None = None
    archived_keys: list[str] = field(default_factory=list)
    archive_error: str | None = None
    notifications: list[dict[str, Any]] = field(default_factory=list)


def check_delivery(archive: str | None = None, notify: str = "never", ticket: str | None = None) -> None:
    """Before any run: a bad archive URL, notification set-up or ticket is bad input (BadParameter, one line)."""
    if archive:
        archive_store.parse_archive_url(archive)
    notifier.check_ready(notify, ticket)


def deliver(
    results: Iterable[Any],
    *,
    archive: str | None = None,
    notify: str = "never",
    ticket: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> Delivery:
    """Upload the runs' folders (RunResults of one run, suite or triage, all under one incident) to `archive`, then
    notify (`notify`: always, changes or never) and attach them to `ticket`."""
    results = list(results)
    done = Delivery(archive=archive)
    folders = [r.folder for r in results]
    if archive and folders:
        try:
            done.archived_keys = archive_store.upload(archive, folders, folders[0].parent)
        except archive_store.UploadFailed as exc:
            done.archive_error = str(exc)
    linked = archive if done.archived_keys else None
    done.notifications = notifier.deliver(results, mode=notify, ticket=ticket, archive=linked, warn=warn)
    return done
