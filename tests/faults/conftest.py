"""Fault injection: each destructive module starts its own sandbox (never the session's), and breaks it for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imsnb.sandbox import Sandbox


@pytest.fixture(scope="module")
def own_sandbox() -> Iterator[Sandbox]:
    """A healthy sandbox for this module alone: tests may stop its servers or exhaust its connections."""
    with Sandbox("healthy") as sandbox:
        yield sandbox


@pytest.fixture
def on(use_env):
    """Point this process (and the kernels it starts) at a sandbox, plus any overrides (tests/conftest.py's use_env)."""
    return use_env


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(session, config, items) -> None:
    """Fault tests run last: they take minutes, and the session sandbox's scenario (whose lock wait and idle
    transaction age with the clock) must be as young for the other tests as it is without this suite. They break
    real servers, kernels and processes: every one is marked `servers` (none runs in `make test-fast`)."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.path)).is_relative_to(here):
            item.add_marker(pytest.mark.servers)
    items.sort(key=lambda item: Path(str(item.path)).is_relative_to(here))
