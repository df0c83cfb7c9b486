"""What this process was started with, for `imsnb.actions`: read once, when imsnb is first imported, then held here.

- the run key (IMSNB_ALLOW_ACTIONS=1): the runner gives it to the kernel's environment only with --allow-actions;
  an interactive kernel has it when it was started with it. Nothing imsnb does later reads os.environ for it, so
  neither a named environment (`config.use_environment`), a parameter nor any later os.environ change can turn it.
- the action journal (IMSNB_ACTIONS_JOURNAL): a file the runner reads after the run, where each action is written
  as `applying` before it acts (write-ahead) and again with its outcome;
- the cell timeout (IMSNB_CELL_TIMEOUT_S): the runner's per-cell bound, so that long waits stop short of it;
- the run folder (IMSNB_RUN_FOLDER): where the runner will write this run (a link to it, and its incident's earlier
  runs), and the run's files (IMSNB_RUN_FILES): a private folder whose files the runner adds to the run folder.

`imsnb/__init__.py` imports this module first, so it runs before any imsnb function can change os.environ.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

ALLOW_ENV = "IMSNB_ALLOW_ACTIONS"
JOURNAL_ENV = "IMSNB_ACTIONS_JOURNAL"
CELL_TIMEOUT_ENV = "IMSNB_CELL_TIMEOUT_S"
RUN_FOLDER_ENV = "IMSNB_RUN_FOLDER"
RUN_FILES_ENV = "IMSNB_RUN_FILES"

_RUN_KEY: bool = os.environ.get(ALLOW_ENV, "").strip() == "1"
_JOURNAL: Path | None = Path(os.environ[JOURNAL_ENV]) if os.environ.get(JOURNAL_ENV) else None
_RUN_FOLDER: Path | None = Path(os.environ[RUN_FOLDER_ENV]) if os.environ.get(RUN_FOLDER_ENV) else None
_RUN_FILES: Path | None = Path(os.environ[RUN_FILES_ENV]) if os.environ.get(RUN_FILES_ENV) else None


def _read_cell_timeout() -> float | None:
    try:
        value = float(os.environ.get(CELL_TIMEOUT_ENV, ""))
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


_CELL_TIMEOUT_S: float | None = _read_cell_timeout()
_cell_started: float | None = None


def run_key() -> bool:
    """Whether this process was started with the run key."""
    return _RUN_KEY


def journal_path() -> Path | None:
    """The runner's action journal for this run, if the runner passed one."""
    return _JOURNAL


def run_folder() -> Path | None:
    """The folder the runner will write this run to (outputs/<incident>/<time>-<notebook>), if run by the runner."""
    return _RUN_FOLDER


def run_files() -> Path | None:
    """Where a notebook puts files to keep with the run (the runner adds them to the run folder, scrubbed)."""
    return _RUN_FILES


def cell_timeout_s() -> float | None:
    """The runner's per-cell timeout, if the runner passed one."""
    return _CELL_TIMEOUT_S


def cell_deadline() -> float | None:
    """time.monotonic() at which the running cell is timed out by the runner (None: no bound known)."""
    if _CELL_TIMEOUT_S is None:
        return None
    return (_cell_started if _cell_started is not None else time.monotonic()) + _CELL_TIMEOUT_S


def _on_cell_start(*_: object) -> None:
    global _cell_started
    _cell_started = time.monotonic()


def _watch_cells() -> None:
    """In a kernel, note when each cell starts (the runner's timeout counts from there)."""
    if _CELL_TIMEOUT_S is None:
        return
    try:
        # lazy: IPython is there only inside a kernel; the CLI and workers never load it
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.events.register("pre_run_cell", _on_cell_start)
        _on_cell_start()  # the cell importing imsnb is running now


_watch_cells()
