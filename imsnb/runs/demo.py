"""`imsnb demo`: a sandbox started, every notebook run against it one after the other (db_performance first), the
sandbox stopped. Its targets are exported to this process's environment for the runs only, then the environment is
put back as it was."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from imsnb.runs.catalogue import list_notebooks
from imsnb.runs.execute import RunResult, run_notebook
from imsnb.runs.exits import EXIT_NOTEBOOK_FAILED, EXIT_OK
from imsnb.sandbox import Sandbox

DEMO_INCIDENT = "DEMO"
DEMO_PARAMETERS = {"window": "30m"}
FIRST = "db_performance"  # the report the demo points to at the end


def demo_notebooks() -> list[str]:
    """Every notebook of the catalogue, db_performance first, then by name."""
    return sorted((info.name for info in list_notebooks()), key=lambda n: (n != FIRST, n))


@contextlib.contextmanager
def exported(variables: dict[str, str]) -> Iterator[None]:
    """`variables` set in os.environ for the block; the environment exactly as it was afterwards."""
    saved = dict(os.environ)
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_demo(
    scenario: str,
    outputs: Path | str = "outputs",
    *,
    on_start: Callable[[str], None] = lambda name: None,
    on_result: Callable[[RunResult], None] = lambda result: None,
) -> list[RunResult]:
    """Start the `scenario` sandbox, run every notebook against it under incident DEMO, stop it; the results in
    the order run. `on_start` and `on_result` are called around each run (the CLI prints there)."""

    names, results = demo_notebooks(), []
    with Sandbox(scenario) as sandbox, exported(sandbox.env()):
        for name in names:
            on_start(name)
            result = run_notebook(name, dict(DEMO_PARAMETERS), incident_id=DEMO_INCIDENT, outputs=outputs)
            on_result(result)
            results.append(result)
    return results


def demo_exit_code(results: list[RunResult]) -> int:
    """3 when any notebook failed or timed out, else 0: the demo's findings are the scenario's, not a verdict."""
    return EXIT_NOTEBOOK_FAILED if any(r.status != "ok" for r in results) else EXIT_OK
