"""The notification state in a shared store: what was last notified per target and check (`notify_checks`) and the
destinations whose last message failed (`notify_failed`), the same content as outputs/.notify/state.json.

`exchange` reads it, lets the caller compare, page and update it, and writes it back, all inside one transaction
holding the notification lock, so two workers that find the same failure at once page once: the second reads what
the first wrote. The lock is waited for at most LOCK_WAIT_S (a page's own deadline is 10 s a call); a store that
cannot be used is one warning, and the run notifies as if nothing had been sent (too many messages, never too few).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from imsnb.errors import StoreError
from imsnb.state.store import Store

NOTIFY_LOCK = "notify"
LOCK_WAIT_S = 120.0

SELECT_CHECKS = """
SELECT key, target, check_name, notebook, severity, paged, since, updated
FROM notify_checks
ORDER BY key
"""
SELECT_FAILED = "SELECT destination FROM notify_failed ORDER BY destination"
DELETE_CHECKS = "DELETE FROM notify_checks"
DELETE_FAILED = "DELETE FROM notify_failed"
INSERT_CHECK = """
INSERT INTO notify_checks (key, target, check_name, notebook, severity, paged, since, updated)
VALUES (:key, :target, :check_name, :notebook, :severity, :paged, :since, :updated)
"""
INSERT_FAILED = "INSERT INTO notify_failed (destination) VALUES (:destination)"

T = TypeVar("T")


def read_state(conn: Any) -> dict[str, Any]:
    """The state as `imsnb.notify.state` holds it: {"version": 1, "checks": {key: entry}, "failed": [...]}."""
    checks = {}
    for key, target, check, notebook, severity, paged, since, updated in conn.execute(SELECT_CHECKS).fetchall():
        checks[key] = {
            "target": target,
            "check": check,
            "notebook": notebook,
            "severity": severity,
            "paged": bool(paged),
            "since": since,
            "updated": updated,
        }
    failed = [row[0] for row in conn.execute(SELECT_FAILED).fetchall()]
    return {"version": 1, "checks": checks, "failed": failed}


def write_state(conn: Any, state: dict[str, Any]) -> None:
    """Replace the stored state by `state` (inside the caller's transaction)."""
    conn.execute(DELETE_CHECKS)
    conn.execute(DELETE_FAILED)
    rows = [
        {
            "key": key,
            "target": str(entry.get("target")),
            "check_name": str(entry.get("check")),
            "notebook": entry.get("notebook"),
            "severity": str(entry.get("severity")),
            "paged": bool(entry.get("paged")),
            "since": entry.get("since"),
            "updated": entry.get("updated"),
        }
        for key, entry in state["checks"].items()
    ]
    if rows:
        conn.executemany(INSERT_CHECK, rows)
    failed = [{"destination": d} for d in dict.fromkeys(state.get("failed") or [])]
    if failed:
        conn.executemany(INSERT_FAILED, failed)


def exchange(
    store: Store,
    work: Callable[[dict[str, Any]], T],
    warn: Callable[[str], None],
    *,
    check: Callable[[dict[str, Any]], str | None] = lambda state: None,
) -> tuple[T, bool]:
    """Under the notification lock: read the state, `work(state)` (which compares, pages and updates it in place),
    write it back. Returns (what `work` returned, whether the state was kept).

    A store that cannot be used before `work`: one warning, `work` on an empty state, nothing kept. After it (the
    write or the commit failed): one warning saying the next run may notify again. A state `check` finds malformed
    (its reason) is replaced, with one warning, as the file's is set aside."""
    phase, result = "read", None
    try:
        with store.locked(NOTIFY_LOCK, wait_s=LOCK_WAIT_S) as conn:
            state = read_state(conn)
            problem = check(state)
            if problem:
                warn(f"imsnb: warning: notification state in {store.name} refused: malformed: {problem}; replaced")
                state = fresh()
            phase = "work"
            result = work(state)
            phase = "write"
            write_state(conn, state)
        return result, True
    except Exception as exc:  # noqa: BLE001 - sqlite3/psycopg errors too: the store never costs the notification
        if phase == "work":
            raise  # the caller's own error, not the store's
        reason = str(exc) if isinstance(exc, StoreError) else f"store {store.name}: {' '.join(str(exc).split())}"
        if phase == "write":
            warn(f"imsnb: warning: notification state not kept: {reason} (the next run may notify again)")
            return result, False  # type: ignore[return-value]
    warn(f"imsnb: warning: notification state not used: {reason}; notifying as if nothing had been sent")
    return work(fresh()), False


def fresh() -> dict[str, Any]:
    return {"version": 1, "checks": {}, "failed": []}
