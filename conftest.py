"""Servers start only for the tests that need them, so the unit tests run in seconds (`make test-fast`).

- The `servers` marker is set at collection on every item that is not a unit test: one that requests a sandbox
  fixture (SANDBOX_FIXTURES), a notebook run by nbval, every test under tests/faults/ (its conftest), or one marked
  by hand (`pytestmark = pytest.mark.servers` in a module that starts servers, notebook runs or a browser itself, or
  relies on the session's sandbox). `pytest -m "not servers"` is the fast lane.
- The session's sandbox, a real PostgreSQL (and the rest) with the `db-degradation` scenario, starts lazily: before
  the first `servers` item runs, its env exported into os.environ, so notebooks (nbval) and the `imsnb` processes the
  tests start run unchanged against it. A run that selects no `servers` item starts no server; under pytest-xdist
  only the workers that get such items start one (the controller runs no test and never does).
- A run that selected no `servers` item refuses to start a sandbox or any of its servers (PostgreSQL, Redis,
  Prometheus, moto), so a unit test that needs one fails at once with a message saying how to mark it, instead of
  making the fast lane slow or needing the servers' system packages.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

# Fixtures (tests/conftest.py, tests/faults/conftest.py) that start or point at a sandbox: requesting one needs servers.
SANDBOX_FIXTURES = frozenset(
    {"degraded", "session_sandbox", "healthy_sandbox", "private_sandbox", "use_env", "degraded_suite", "own_sandbox"}
)
NO_SERVERS_HINT = (
    "this run selected no test that needs servers (e.g. `make test-fast`, `-m 'not servers'`), so none may start: "
    "if this test needs PostgreSQL, Redis, Prometheus, moto or a notebook run on them, request a sandbox fixture "
    "(degraded, private_sandbox, healthy_sandbox) or mark it `@pytest.mark.servers` (a module: "
    "`pytestmark = pytest.mark.servers`)"
)

_SAVED_ENV: dict[str, str] = {}
_HISTORY_DIR: list[str] = []


class NoServersInThisRun(RuntimeError):
    """A sandbox was asked for in a run that selected no `servers` test."""


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "servers: needs real servers, notebook runs or a browser; set for sandbox fixtures, notebooks and "
        "tests/faults/ (conftest.py), deselected by `make test-fast`",
    )
    config.imsnb_sandbox = None
    config.imsnb_sandbox_failure = None
    config.imsnb_servers_selected = True  # until collection says otherwise


def pytest_sessionstart(session) -> None:
    _SAVED_ENV.update(os.environ)
    # Sandboxes seed their past and runs store counter snapshots in the history: the session keeps its own store,
    # never the repository's outputs/ (set before any sandbox starts, so its seeded history lands there too).
    _HISTORY_DIR.append(tempfile.mkdtemp(prefix="imsnb-history-"))
    os.environ.setdefault("IMSNB_HISTORY", os.path.join(_HISTORY_DIR[0], "history.sqlite"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    # The session's lock wait grows with the suite's age; keep it from reaching CRITICAL (300 s) on a slow run,
    # so tests about other things do not depend on how long the suite has been running.
    os.environ["IMSNB_THRESHOLD_POSTGRES_BLOCKED_QUERIES_CRITICAL"] = "86400"


def _needs_servers(item) -> bool:
    return (
        item.path.suffix == ".ipynb"  # nbval: a notebook runs against the session's sandbox
        or bool(SANDBOX_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        or item.get_closest_marker("servers") is not None
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(session, config, items) -> None:
    for item in items:
        if _needs_servers(item) and item.get_closest_marker("servers") is None:
            item.add_marker(pytest.mark.servers)


def pytest_collection_finish(session) -> None:
    """After -m and -k: whether any selected item needs servers (in an xdist worker, of all the items it knows)."""
    session.config.imsnb_servers_selected = any(item.get_closest_marker("servers") for item in session.items)
    if not session.config.imsnb_servers_selected:
        _refuse_sandboxes()


def _refuse_sandboxes() -> None:
    """Every server imsnb.sandbox can start refuses to: the fast lane needs none (nor their system packages)."""
    from imsnb.sandbox import Sandbox
    from imsnb.sandbox.aws import AwsServer
    from imsnb.sandbox.postgres import PostgresServer
    from imsnb.sandbox.prometheus import PrometheusServer
    from imsnb.sandbox.redis import RedisServer

    def refuser(name: str):
        def refuse(self, *args, **kwargs):
            raise NoServersInThisRun(f"{name}: {NO_SERVERS_HINT}")

        return refuse

    for server, method in [
        (Sandbox, "start"),
        (PostgresServer, "start"),
        (RedisServer, "start"),
        (PrometheusServer, "start"),
        (AwsServer, "launch"),
    ]:
        setattr(server, method, refuser(f"{server.__name__}.{method}()"))


def _session_sandbox(config):
    """The session's db-degradation sandbox, started on first use and exported into os.environ. A start that failed
    is not tried again for every later test: each of them errors at once with the first failure."""
    if config.imsnb_sandbox is None:
        from imsnb.sandbox import Sandbox

        if config.imsnb_sandbox_failure is not None:
            raise RuntimeError(f"the session's sandbox did not start: {config.imsnb_sandbox_failure}")
        try:
            config.imsnb_sandbox = Sandbox("db-degradation").start()
        except Exception as exc:
            config.imsnb_sandbox_failure = f"{type(exc).__name__}: {exc}"
            raise
        os.environ.update(config.imsnb_sandbox.env())
    return config.imsnb_sandbox


@pytest.hookimpl(tryfirst=True)  # before the item's setup: an nbval notebook starts its kernel there, with this env
def pytest_runtest_setup(item) -> None:
    if item.get_closest_marker("servers") is not None:
        _session_sandbox(item.config)


@pytest.fixture(scope="session")
def session_sandbox(pytestconfig):
    """The session's db-degradation sandbox (`degraded` in tests/conftest.py)."""
    return _session_sandbox(pytestconfig)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and not item.config.imsnb_servers_selected:
        report.sections.append(("no servers in this run", NO_SERVERS_HINT))
    return report


def pytest_sessionfinish(session, exitstatus) -> None:
    sandbox = session.config.imsnb_sandbox
    if sandbox is not None:
        sandbox.stop()
        session.config.imsnb_sandbox = None
    os.environ.clear()
    os.environ.update(_SAVED_ENV)
    for folder in _HISTORY_DIR:
        shutil.rmtree(folder, ignore_errors=True)
