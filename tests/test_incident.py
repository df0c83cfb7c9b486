"""`incident.begin`: a notebook's set-up cell in one call, against the session's real PostgreSQL sandbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from imsnb import incident
from imsnb.errors import BadParameter
from imsnb.postgres import verification_database


def test_begin_resolves_the_window_and_opens_only_what_the_notebook_reads(degraded, capsys):
    run = incident.begin(
        "health_check", incident_id="INC-7", window=None, start="2026-11-29T20:17:00Z", end="2026-11-29T20:47:00Z"
    )
    assert (run.window.start, run.window.end) == (
        datetime(2026, 11, 29, 20, 17, tzinfo=UTC),
        datetime(2026, 11, 29, 20, 47, tzinfo=UTC),
    )
    assert run.db is None and run.cache is None and run.aws is None and run.sample is None
    assert list(run.findings) == []
    assert capsys.readouterr().out == "Incident INC-7: window 2026-11-29 20:17:00 – 2026-11-29 20:47:00 UTC\n"


def test_begin_takes_the_first_snapshots_on_the_sessions_it_opens(degraded):
    run = incident.begin("api_timeout", incident_id="INC-8", window="30m", sample_s=0.2, db=True)
    try:
        assert run.db.application == "imsnb/api_timeout"
        assert run.sample.sample_s == 0.2 and run.sample.taken_by == "api_timeout"
        assert "pg_stat_statements" in run.sample.first  # taken in begin, before any section ran
        statements = run.sample.statements(limit=5)
        period = run.sample.period("pg_stat_statements")
        # window: the session's sandbox started less than 30 minutes ago, so its statistics started inside the window
        assert not statements.empty and period.basis in ("sample", "history", "window")
        assert period.seconds >= 0.2
    finally:
        run.close()


def test_begin_refuses_a_bad_window_in_one_line():
    with pytest.raises(BadParameter, match="window '90x' is not a duration"):
        incident.begin("health_check", incident_id="INC-9", window="90x")


def test_verification_database_prefers_the_conninfo_then_the_restored_endpoint(degraded):
    import pandas as pd

    assert verification_database("point_in_time_recovery") is None
    assert verification_database("point_in_time_recovery", "", pd.DataFrame({"endpoint": [None]})) is None
    restored = pd.DataFrame({"endpoint": [None, "127.0.0.1"]})
    on_endpoint = verification_database("point_in_time_recovery", "", restored)
    assert on_endpoint is not None and "127.0.0.1" in on_endpoint.label
    port = degraded.env()["PGPORT"]
    given = verification_database("point_in_time_recovery", f"host=localhost port={port} dbname=postgres")
    assert given is not None and given.label.startswith(f"localhost:{port}/postgres")
