"""Seeded incident scenarios: plain functions that make a running sandbox look like a given bad night.

Each takes the `Sandbox` and leaves its state behind (sessions it holds open are kept on `sandbox.held` and
released by `Sandbox.stop`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imsnb.sandbox import Sandbox

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL,
    status text NOT NULL,
    email text NOT NULL,
    total numeric(10, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
SEED = """
INSERT INTO orders (customer_id, status, email, total)
SELECT i %% 500, 'new', 'customer' || (i %% 500) || '@example.com', (i %% 97) * 1.5
FROM generate_series(1, %(rows)s) AS i
"""
FAST_QUERY = "SELECT status, total FROM orders WHERE id = %(id)s"
CUSTOMER_QUERY = "SELECT count(*) FROM orders WHERE customer_id = %(customer_id)s"
# A report that takes ~300 ms a call: "slow" by the runbook's 100 ms mean, whatever the machine's speed.
SLOW_QUERY = "SELECT pg_sleep(0.3), count(*) FROM orders WHERE email LIKE %(pattern)s"
# The classic: a request updates a row, then the app forgets to commit (idle in transaction, holding the lock).
# The email literal lets tests prove that query text in artifacts is masked.
BLOCKER_UPDATE = "UPDATE orders SET status = 'hold', email = 'jane.doe@example.com' WHERE id = 1"
BLOCKED_UPDATE = "UPDATE orders SET status = 'shipped' WHERE id = 1"
WAITING = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'ims-worker'"
CONNECTIONS_TARGET = 0.85  # of max_connections, counting the one the diagnostics will open


def _seed(sandbox: Sandbox, rows: int = 20_000) -> None:
    with sandbox.postgres.connect("ims-migrate", autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(SEED, {"rows": rows})
        conn.execute("ANALYZE orders")


def _normal_traffic(sandbox: Sandbox, calls: int = 200) -> None:
    with sandbox.postgres.connect("ims-backend", autocommit=True) as conn:
        for i in range(calls):
            conn.execute(FAST_QUERY, {"id": i + 1})
            conn.execute(CUSTOMER_QUERY, {"customer_id": i % 500})


def healthy(sandbox: Sandbox) -> None:
    """Fast queries only, a handful of connections, no lock waits."""
    _seed(sandbox)
    _normal_traffic(sandbox)


def db_degradation(sandbox: Sandbox) -> None:
    """The runbook's "Database Performance Degradation": slow statements, a lock pile-up, connections > 80%."""
    _seed(sandbox)
    _normal_traffic(sandbox)
    with sandbox.postgres.connect("ims-reports", autocommit=True) as conn:
        for _ in range(3):
            conn.execute(SLOW_QUERY, {"pattern": "%@example.org"})

    blocker = sandbox.postgres.connect("ims-backend")  # not autocommit: the UPDATE opens a transaction
    blocker.execute(BLOCKER_UPDATE)
    sandbox.held.append(blocker)

    blocked = sandbox.postgres.connect("ims-worker", autocommit=True)
    sandbox.held.append(blocked)
    waiter = threading.Thread(target=_wait_quietly, args=(blocked,), name="imsnb-blocked-update", daemon=True)
    waiter.start()
    sandbox.threads.append(waiter)
    _wait_until_waiting(sandbox)

    target = int(sandbox.postgres.max_connections * CONNECTIONS_TARGET)
    with sandbox.postgres.admin() as admin:
        in_use = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        current = in_use.fetchone()[0] - 1  # less this admin session
    for _ in range(max(0, target - current - 1)):  # leave room for the diagnostics' own session
        sandbox.held.append(sandbox.postgres.connect("ims-backend-pool", autocommit=True))


def _wait_quietly(conn) -> None:
    try:
        conn.execute(BLOCKED_UPDATE)
    except Exception:  # noqa: BLE001 - the sandbox is stopping under it
        pass


def _wait_until_waiting(sandbox: Sandbox, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    with sandbox.postgres.admin() as admin:
        while time.monotonic() < deadline:
            row = admin.execute(WAITING).fetchone()
            if row[0]:
                return
            time.sleep(0.05)
    raise RuntimeError("the blocked UPDATE never started waiting on the lock")


SCENARIOS: dict[str, Callable[[Sandbox], None]] = {
    "healthy": healthy,
    "db-degradation": db_degradation,
}
