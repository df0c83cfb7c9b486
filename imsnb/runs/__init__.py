"""The run machinery: find notebooks (`catalogue`), check their parameters (`parameters`), execute them in warm
kernels (`execute`, `kernels`), summarize (`summary`) and write the run folder (`folder`, `html` renders
report.html; secrets scrubbed by the shared `imsnb.scrub`) and the incident's index.html (`index`); several at once
(`suite`), triage and the notebooks it suggests (`followups`), every notebook against a sandbox (`demo`); exit
codes (`exits`). What follows a run (archive, notify, ticket) is `imsnb.delivery`'s; runs on a timetable are
`imsnb.schedule`'s.

The public entry points are importable from here (`from imsnb.runs import run_notebook, run_suite`); they are
loaded on first use, so importing `imsnb.runs` (as `imsnb.cli` does) costs no pandas, papermill or psycopg.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "run_notebook": "imsnb.runs.execute",
    "RunResult": "imsnb.runs.execute",
    "EXIT_OK": "imsnb.runs.exits",
    "EXIT_SEVERITY": "imsnb.runs.exits",
    "EXIT_BAD_INPUT": "imsnb.runs.exits",
    "EXIT_NOTEBOOK_FAILED": "imsnb.runs.exits",
    "run_suite": "imsnb.runs.suite",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
