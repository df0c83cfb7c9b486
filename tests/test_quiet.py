"""Quiet hours are a scenario (issue 22 §4): on a quiet database of many small tables, nobody working, the scheduled
health_check and db_performance page nobody (nothing at WARNING or above, imsnb's own reads included); one real
problem added to it (a blocked session) still pages."""

from __future__ import annotations

import threading

import pytest
from helpers import checks_at_or_above, finding, read_summary, window_from_present

from imsnb.runs.execute import run_notebook
from imsnb.sandbox import Sandbox
from imsnb.sandbox.scenarios import BLOCKED_UPDATE, BLOCKER_UPDATE, QUIET_TABLES, WAITING

pytestmark = pytest.mark.servers  # a quiet sandbox


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    """The quiet sandbox, the process environment pointing at it for the module (the kernels inherit it)."""
    with Sandbox("quiet") as sandbox, pytest.MonkeyPatch.context() as env:
        for key, value in sandbox.env().items():
            env.setenv(key, value)
        yield sandbox


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return tmp_path_factory.mktemp("quiet-runs")


def test_the_quiet_scenario_has_many_tables_and_a_recorded_past(quiet):
    with quiet.postgres.admin("ims") as admin:
        tables = admin.execute("SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'tenants'").fetchone()[0]
    assert tables == QUIET_TABLES
    assert quiet.past_recorded_at is not None, "the past's snapshots are in the history store"


@pytest.mark.parametrize("notebook", ["health_check", "db_performance"])
def test_scheduled_checks_on_quiet_hours_page_nobody(quiet, outputs, notebook):
    result = run_notebook(notebook, window_from_present(quiet), incident_id="INC-QUIET", outputs=outputs)
    summary = read_summary(result.folder)
    assert summary["status"] == "ok", summary.get("error")
    loud = [f for f in summary["findings"] if f["check"] in checks_at_or_above(summary, "WARNING")]
    assert not loud, [(f["check"], f["severity"], f["message"]) for f in loud]
    if notebook == "db_performance":
        texts = " ".join(str(r.get("query", "")) for f in summary["findings"] for r in (f.get("evidence") or []))
        assert "pg_stat_" not in texts, "imsnb's own catalogue reads are named nowhere"


def test_a_blocked_session_on_quiet_hours_still_pages(quiet, outputs):
    blocker = quiet.postgres.connect("ims-backend")  # not autocommit: the UPDATE holds its row lock
    blocked = quiet.postgres.connect("ims-worker", autocommit=True)
    waiter = threading.Thread(target=_run_quietly, args=(blocked, BLOCKED_UPDATE), daemon=True)
    try:
        blocker.execute(BLOCKER_UPDATE)
        waiter.start()
        with quiet.postgres.admin("ims") as admin:
            for _ in range(100):
                if admin.execute(WAITING).fetchone()[0]:
                    break
                threading.Event().wait(0.1)
        result = run_notebook("db_performance", window_from_present(quiet), incident_id="INC-QUIET", outputs=outputs)
    finally:
        blocker.rollback()
        waiter.join(timeout=10)
        blocker.close()
        blocked.close()
    summary = read_summary(result.folder)
    assert "postgres.blocked_queries" in checks_at_or_above(summary, "WARNING"), finding(
        summary, "postgres.blocked_queries"
    )


def _run_quietly(conn, statement: str) -> None:
    try:
        conn.execute(statement)
    except Exception:  # noqa: BLE001 - the connection is closed under it when the test ends
        pass
