"""imsnb's memory in one store chosen by URL: counter snapshots, baselines and plans (`imsnb.history`), the
notification state and the incident's ticket (`imsnb.notify`) and the run catalogue (`imsnb.archive`).

    IMSNB_STATE_URL=postgresql://imsnb@state-db.internal/imsnb_state   # a team's workers share one store
    IMSNB_STATE_URL=sqlite:///var/lib/imsnb/state.sqlite                 # one machine, everything in one file
    (neither)                                                            # today's files: IMSNB_HISTORY or
                                                                         # outputs/.history.sqlite, per-folder state

Where things are:

    url.py        the URL: parsing, where it is configured, its name without credentials, the refusal of the
                  diagnosed database itself (IMSNB_STATE_ALLOW_TARGET=1 allows it)
    backends.py   SQLite and PostgreSQL connections behind sqlite3's interface; the locks
    schema.py     the schema's migrations, one text per dialect where they differ
    store.py      Store: open, schema made current on first use, transactions holding a named lock
    notify.py     the notification state's tables: read and written under the notification lock
    catalogue.py  the run catalogue: each run folder recorded (and where it was archived), the runs of other
                  workers read back
    tickets.py    the incident's Jira issue, opened once across workers (`--ticket new`)
    postmortems.py  the incident's post-mortem as written last on any worker

Concurrency: every write is a transaction; the notification state is read, compared, paged on and written inside
one transaction holding the notification lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`), so
two workers finding the same failure page once.
"""

from imsnb.state.store import Store, open_store
from imsnb.state.url import (
    ALLOW_TARGET_ENV,
    STATE_URL_ENV,
    StoreUrl,
    check_not_target,
    check_store,
    configured_store,
    parse_store_url,
)

__all__ = [
    "ALLOW_TARGET_ENV",
    "STATE_URL_ENV",
    "Store",
    "StoreUrl",
    "check_not_target",
    "check_store",
    "configured_store",
    "open_store",
    "parse_store_url",
]
