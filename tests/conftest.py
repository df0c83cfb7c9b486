"""The sandboxes tests run against. Requesting any of these fixtures marks a test `servers` (the root conftest.py):
it runs in `make test`, not in `make test-fast`.

- `degraded`: the session's db-degradation sandbox, started lazily and exported in os.environ (the default env of
  every `servers` test and notebook).
- `healthy_sandbox`: one healthy sandbox shared by the session (read-only use: tests that break things take their own).
- `private_sandbox(scenario, **options)`: a sandbox of this test's own, stopped at its teardown.
- `use_env(sandbox, **overrides)`: point this process (and the kernels and processes it starts) at a sandbox.
"""

from __future__ import annotations

import fcntl
import os
import pickle
from collections.abc import Callable, Iterator

import pytest

from imsnb.sandbox import Sandbox


def pytest_configure(config) -> None:
    # `make test` and CI run every marker; `-m "not celery"` leaves the CeleryExecutor test (~3 min) out of a quick
    # local run (registered here, not in pyproject.toml, whose every change rebuilds both venvs)
    config.addinivalue_line("markers", "celery: Airflow's CeleryExecutor with two workers (test_airflow_celery.py)")


@pytest.fixture(scope="session")
def degraded(session_sandbox) -> Sandbox:
    """The session's db-degradation sandbox (root conftest.py), by the name the tests use."""
    return session_sandbox


@pytest.fixture(scope="session")
def healthy_sandbox() -> Iterator[Sandbox]:
    with Sandbox("healthy") as sandbox:
        yield sandbox


@pytest.fixture
def private_sandbox() -> Iterator[Callable[..., Sandbox]]:
    """Start a sandbox for this test alone: `private_sandbox("cache-pressure")`; each is stopped at teardown."""
    started: list[Sandbox] = []

    def start(scenario: str = "healthy", **options) -> Sandbox:
        sandbox = Sandbox(scenario, **options).start()  # a start that fails stops what it started
        started.append(sandbox)
        return sandbox

    yield start
    for sandbox in reversed(started):
        sandbox.stop()


@pytest.fixture
def use_env(monkeypatch) -> Callable[..., None]:
    """Point the process environment (and so the kernels started from it) at a sandbox, plus any overrides."""

    def apply(sandbox: Sandbox, **overrides: str) -> None:
        for key, value in (sandbox.env() | overrides).items():
            monkeypatch.setenv(key, value)

    return apply


@pytest.fixture(scope="session")
def degraded_suite(request, tmp_path_factory):
    """Every notebook run as one suite (2 jobs) on a db-degradation sandbox, under INC-SUITE: once per test run,
    whatever the xdist workers (the first to ask runs it on its session sandbox, under a lock; the others wait and
    read its results and folders, read-only: ~60 s of CPU each would spend again).

    Returns (outputs folder, results in notebook order, the results in the order on_result saw them)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing to share
        return _degraded_suite(request, tmp_path_factory)
    shared = tmp_path_factory.getbasetemp().parent / f"degraded-suite-{run}"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released as the file closes, also when the suite raised
        done = shared / "results.pickle"
        if done.exists():
            return pickle.loads(done.read_bytes())
        built = _degraded_suite(request, tmp_path_factory)
        done.write_bytes(pickle.dumps(built))
        return built


def _degraded_suite(request, tmp_path_factory):
    from imsnb.runs.suite import all_notebook_names, run_suite

    request.getfixturevalue("degraded")  # the session's sandbox, exported
    outputs = tmp_path_factory.mktemp("suite-outputs")
    seen = []
    results = run_suite(
        all_notebook_names(), {"window": "30m"}, incident_id="INC-SUITE", outputs=outputs, jobs=2, on_result=seen.append
    )
    return outputs, results, seen
