"""A real local stand-in for production: private servers started from this machine's binaries, seeded per scenario.

    with Sandbox("db-degradation") as sandbox:
        os.environ.update(sandbox.env())   # PG*/DB_*, REDIS_*, PROMETHEUS_URL, ... for every target
        ...                                # run notebooks against it

Used by `imsnb demo`, `imsnb sandbox` (to practise in JupyterLab) and the tests.
"""

from __future__ import annotations

from typing import Any

# The scenarios' names, for the CLI's help and checks without starting (or importing) any server; a test checks
# them against `scenarios.SCENARIOS`.
SCENARIO_NAMES = (
    "healthy",
    "db-degradation",
    "cache-pressure",
    "api-degraded",
    "cert-expiring",
    "error-spike",
    "scaling",
    "memory-leak",
    "stale-backup",
    "disk-pressure",
    "cache-upgrade",
    "quiet",
)

__all__ = ["SCENARIOS", "SCENARIO_NAMES", "Sandbox"]


def __getattr__(name: str) -> Any:
    """Lazy: `Sandbox` and `SCENARIOS` load their servers' modules (psycopg, redis, boto3, moto) on first use only."""
    if name == "Sandbox":
        from imsnb.sandbox.box import Sandbox

        return Sandbox
    if name == "SCENARIOS":
        from imsnb.sandbox.scenarios import SCENARIOS

        return SCENARIOS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
