from __future__ import annotations

import pytest

from imsnb.sandbox import Sandbox


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
