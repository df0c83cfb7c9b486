from __future__ import annotations

import pytest

from imsnb.sandbox import Sandbox


def pytest_configure(config) -> None:
    # `make test` and CI run every marker; `-m "not celery"` leaves the CeleryExecutor test (~3 min) out of a quick
    # local run (registered here, not in pyproject.toml, whose every change rebuilds both venvs)
    config.addinivalue_line("markers", "celery: Airflow's CeleryExecutor with two workers (test_airflow_celery.py)")


@pytest.fixture(scope="session")
def degraded(pytestconfig):
    """The session's db-degradation sandbox (started by the root conftest and exported in os.environ)."""
    return pytestconfig.imsnb_sandbox


@pytest.fixture(scope="session")
def healthy_sandbox():
    with Sandbox("healthy") as sandbox:
        yield sandbox


@pytest.fixture
def use_env(monkeypatch):
    """Point the process environment (and so the kernels started from it) at a sandbox."""

    def apply(sandbox: Sandbox) -> None:
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)

    return apply


@pytest.fixture(scope="session")
def degraded_suite(degraded, tmp_path_factory):
    """Every notebook run as one suite (2 jobs) on the session's db-degradation sandbox, under INC-SUITE.

    Returns (outputs folder, results in notebook order, the results in the order on_result saw them)."""
    from imsnb.runs.suite import all_notebook_names, run_suite

    outputs = tmp_path_factory.mktemp("suite-outputs")
    seen = []
    results = run_suite(
        all_notebook_names(), {"window": "30m"}, incident_id="INC-SUITE", outputs=outputs, jobs=2, on_result=seen.append
    )
    return outputs, results, seen
