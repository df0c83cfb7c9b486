"""The incident's Jira issue in a shared store: `--ticket new` opens one issue per incident across every worker.

Without a shared store the incident folder's `ticket.json`, written under a lock on that folder, is what a second
run reuses; workers with their own outputs folders (Celery or Kubernetes tasks, several laptops) do not share that
folder, so each would open an issue of its own. With one, the issue is looked up and, if no worker opened it yet,
opened and recorded under the store's `tickets` lock: a second worker waits, then reuses the key.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from imsnb.state.store import Store

__all__ = ["TICKETS_LOCK", "incident_issue"]

TICKETS_LOCK = "tickets"
LOCK_WAIT_S = 120.0  # the first worker may be waiting on Jira (its calls are bounded by their own timeouts)

SELECT_TICKET = "SELECT ticket_key FROM tickets WHERE incident = :incident"
INSERT_TICKET = """
INSERT INTO tickets (incident, ticket_key, opened_at)
VALUES (:incident, :ticket_key, :opened_at)
ON CONFLICT (incident) DO NOTHING
"""


def incident_issue(store: Store, incident: str, open_issue: Callable[[], str]) -> tuple[str, bool]:
    """The incident's issue key and whether it was opened now: the key a worker recorded before, else the one
    `open_issue()` opens, recorded before the lock is released. What `open_issue` raises propagates, nothing
    recorded; StoreError when the store cannot be used (the caller must know whether `open_issue` ran)."""
    with store.locked(TICKETS_LOCK, wait_s=LOCK_WAIT_S) as conn:
        row = conn.execute(SELECT_TICKET, {"incident": incident}).fetchone()
        if row:
            return str(row[0]), False
        key = open_issue()
        conn.execute(INSERT_TICKET, {"incident": incident, "ticket_key": key, "opened_at": time.time()})
        return key, True
