"""Session-wide sandbox: a real PostgreSQL with the `db-degradation` scenario, exported into os.environ before
any test or notebook (nbval) runs, so notebooks run unchanged against it. Tests that need another scenario
start their own (see tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import tempfile

_SAVED_ENV: dict[str, str] = {}
_HISTORY_DIR: list[str] = []


def pytest_sessionstart(session) -> None:
    from imsnb.sandbox import Sandbox

    _SAVED_ENV.update(os.environ)
    # Sandboxes seed their past and runs store counter snapshots in the history: the session keeps its own store,
    # never the repository's outputs/ (set before the sandbox starts, so its seeded history lands there too).
    _HISTORY_DIR.append(tempfile.mkdtemp(prefix="imsnb-history-"))
    os.environ.setdefault("IMSNB_HISTORY", os.path.join(_HISTORY_DIR[0], "history.sqlite"))
    session.config.imsnb_sandbox = Sandbox("db-degradation").start()
    os.environ.update(session.config.imsnb_sandbox.env())
    os.environ.setdefault("MPLBACKEND", "Agg")
    # The session's lock wait grows with the suite's age; keep it from reaching CRITICAL (300 s) on a slow run,
    # so tests about other things do not depend on how long the suite has been running.
    os.environ["IMSNB_THRESHOLD_POSTGRES_BLOCKED_QUERIES_CRITICAL"] = "86400"


def pytest_sessionfinish(session, exitstatus) -> None:
    sandbox = getattr(session.config, "imsnb_sandbox", None)
    if sandbox is not None:
        sandbox.stop()
    os.environ.clear()
    os.environ.update(_SAVED_ENV)
    for folder in _HISTORY_DIR:
        shutil.rmtree(folder, ignore_errors=True)
