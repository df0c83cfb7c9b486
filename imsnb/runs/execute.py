"""Run a notebook headlessly and archive it: validate, execute with papermill in a (warm) kernel, then summarize
(`summary`), scrub (`scrub`) and write the run folder (`folder`).

papermill's autosaves go to a private temp dir, never under outputs/, because they are written before secrets are
scrubbed. The exit code of a run is `imsnb.runs.exits.run_exit_code`.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imsnb import config
from imsnb.errors import BadParameter, NotConfigured
from imsnb.findings import Severity, check_threshold_overrides
from imsnb.progress import PROGRESS_ENV, Follower
from imsnb.runs.catalogue import NotebookInfo, find_notebook, load_info
from imsnb.runs.exits import run_exit_code
from imsnb.runs.folder import check_writable, record_in_catalogue, refresh_index, write_run_folder
from imsnb.runs.kernels import ForkServer, provisioner_class
from imsnb.runs.parameters import check_bounds, check_incident_id, is_positive_seconds, validate
from imsnb.runs.summary import merge_journal, note_unfinished_actions, read_journal, summarize
from imsnb.scrub import scrubber
from imsnb.started_with import ALLOW_ENV, CELL_TIMEOUT_ENV, JOURNAL_ENV, RUN_FILES_ENV, RUN_FOLDER_ENV
from imsnb.state import check_store

DEFAULT_TIMEOUT_S = 600


@dataclass
class RunResult:
    folder: Path
    summary: dict[str, Any]
    exit_code: int

    @property
    def status(self) -> str:
        return self.summary["status"]


def check_run_settings(fail_on: str | Severity, timeout_s: float) -> Severity:
    """The options every run shares (`imsnb run`, `suite`, `triage`), checked in one place: the --fail-on
    severity, a cell timeout that is a positive, finite number of seconds (nan and inf bound nothing), and the
    IMSNB_THRESHOLD_* overrides in the environment."""
    try:
        threshold = Severity.parse(fail_on)
    except ValueError as exc:
        raise BadParameter(str(exc)) from None
    if not is_positive_seconds(timeout_s):
        raise BadParameter(f"timeout must be a positive number of seconds, not {timeout_s!r}")
    check_threshold_overrides()
    return threshold


def prepare(
    notebook: str, raw_parameters: dict[str, Any], incident_id: str | None, outputs: Path | str = "outputs"
) -> tuple[Path, dict, str]:
    """Everything that can be refused, refused before anything is written or a kernel starts."""
    path = find_notebook(notebook)
    info = load_info(path)
    parameters = validate(info, raw_parameters)
    incident = check_incident_id(incident_id or str(parameters.get("incident_id") or "adhoc"))
    if "incident_id" in info.parameters:
        parameters["incident_id"] = incident
    environment = parameters.get("environment")
    if environment and environment != "default":
        try:
            config.environment_settings(environment)
        except NotConfigured as exc:
            raise BadParameter(str(exc)) from None
    check_targets(info, environment, parameters)
    if parameters.get("apply_actions") is True and not str(parameters.get("approver") or "").strip():
        raise BadParameter("apply_actions is True but no approver is named: add -p approver NAME (who approved)")
    check_bounds(parameters)
    check_writable(Path(outputs))
    check_store(target_environ(environment))  # a bad IMSNB_STATE_URL, or the diagnosed database itself: bad input
    return path, parameters, incident


def check_targets(info: NotebookInfo, environment: str | None = None, parameters: dict[str, Any] | None = None) -> None:
    """Bad input when none of the targets a notebook declares (metadata `imsnb.targets`) is configured, in the
    process environment or the named environment: the run would check nothing and must not read as an all-clear
    ("NOTHING CHECKED: ..."). A notebook with at least one configured target runs; the others are skipped, and
    said so first (`imsnb.findings.skipped_target`). AWS is asked last: resolving its credentials can take a
    moment, and one configured target is enough. `parameters` may name a target themselves (certificate_expiry's
    `endpoints`)."""
    if not info.targets:
        return
    environ = target_environ(environment)
    if "tls" in info.targets and (parameters or {}).get("endpoints"):
        return
    ordered = sorted(info.targets, key=lambda t: t == "aws")
    if not any(config.target_configured(t, environ) for t in ordered):
        raise BadParameter(config.nothing_checked_message(info.targets, info.name))


def target_environ(environment: str | None = None) -> dict[str, str]:
    """The environment a run's kernel will see its targets in: this process's, with the named environment's
    settings (`-p environment NAME`) applied."""
    environ = dict(os.environ)
    if environment and environment != "default":
        environ |= config.environment_settings(environment)
    return environ


def target_labels(path: Path, parameters: dict[str, Any]) -> list[str]:
    """Where the notebook's declared targets are, for the report's header ("PostgreSQL db:5432/ims as monitor",
    "Redis: not configured"); certificate_expiry's `endpoints` parameter names its TLS target itself."""
    environ = target_environ(parameters.get("environment"))
    if parameters.get("endpoints"):
        environ["IMSNB_TLS_ENDPOINTS"] = ",".join(map(str, parameters["endpoints"]))
    return [config.target_label(t, environ) for t in load_info(path).targets]


def run_notebook(
    notebook: str,
    parameters: dict[str, Any] | None = None,
    *,
    incident_id: str | None = None,
    outputs: Path | str = "outputs",
    fail_on: str | Severity = Severity.ERROR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    allow_actions: bool = False,
    kernels: ForkServer | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> RunResult:
    """Execute one notebook into a new run folder; raises BadParameter (nothing written) for bad input.

    `allow_actions` is the run's key for `imsnb.actions` (the CLI's --allow-actions); without it the notebook's
    actions are planned and shown, never applied. `kernels`: a warm parent to fork the kernel from (a suite and
    triage's follow-ups share one); without it, a plain kernel: for a single run a warm parent of its own cost
    more than it saved (bench/run_overhead.py, 2026-11-30: 1.05x wall, 1.16x CPU of a plain kernel).
    `on_progress`: called with each line the notebook reports while it runs (`imsnb.progress.say`), secrets
    scrubbed; triage says each key metric as it is judged.
    """
    threshold = check_run_settings(fail_on, timeout_s)
    path, params, incident = prepare(notebook, parameters or {}, incident_id, outputs)
    started = datetime.now(UTC)
    clock = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="imsnb-run-"))
    try:
        journal = scratch / "actions.jsonl"
        files = scratch / "files"
        files.mkdir()
        run = RunPlace(Path(outputs).resolve() / incident / run_folder_name(started, path.stem), files)
        progress = scratch / "progress.log" if on_progress is not None else None
        follower = _follow(progress, on_progress)
        try:
            executed, status, error = _execute(
                path,
                scratch / "notebook.ipynb",
                params,
                timeout_s,
                allow_actions,
                journal=journal,
                kernels=kernels,
                run=run,
                progress=progress,
            )
        finally:
            if follower is not None:
                follower.stop()
        summary = _run_summary(executed, path, params, incident, journal, started, time.monotonic() - clock)
        if status != "ok":
            summary["status"] = status
        if error:
            summary["error"] = error
        source_text = path.read_text(encoding="utf-8")
        folder, summary = write_run_folder(
            Path(outputs) / incident, started, path.stem, executed, summary, source_text, extra_files=files
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record_in_catalogue(folder, summary)
    refresh_index(folder.parent)
    return RunResult(folder, summary, run_exit_code(summary["status"], summary["severity"], threshold))


def _run_summary(
    executed: dict, path: Path, params: dict, incident: str, journal: Path, started: datetime, duration: float
) -> dict[str, Any]:
    """summary.json's content: the findings from the notebook, the actions from it and from the write-ahead journal
    (an action the kernel died in is said unfinished), the timing and the targets."""
    summary = summarize(executed, notebook=path.stem, incident_id=incident)
    summary["actions"] = merge_journal(summary["actions"], read_journal(journal))
    note_unfinished_actions(executed, summary["actions"])
    summary.update(started_at=_iso(started), finished_at=_iso(datetime.now(UTC)), duration_s=round(duration, 2))
    summary["targets"] = target_labels(path, params)
    return summary


def _execute(
    path: Path,
    output: Path,
    params: dict[str, Any],
    timeout_s: float,
    allow_actions: bool = False,
    *,
    journal: Path | None = None,
    kernels: ForkServer | None = None,
    run: RunPlace | None = None,
    progress: Path | None = None,
) -> tuple[dict, str, dict | None]:
    """papermill in this process; returns the executed notebook (as a dict), the status and the error, if any."""
    # lazy: papermill (~3 s to import) only in the process that executes a notebook
    import papermill

    # lazy: the kernel machinery (~1 s) only in the process that executes a notebook
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    status, error = "ok", None
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=params,
            # not papermill's cwd=, which os.chdir()s the whole process (parallel runs would write elsewhere)
            progress_bar=False,
            log_output=False,
            execution_timeout=math.ceil(timeout_s),  # nbclient takes whole seconds only
            start_timeout=60,
            shutdown_kernel="immediate",  # every output is in by then; a graceful stop only costs time
            kernel_manager_class=_kernel_manager_class(
                kernel_environment(allow_actions, journal=journal, timeout_s=timeout_s, run=run, progress=progress),
                cwd=path.parent.resolve(),
                ipc=output.parent,
                kernels=kernels,
            ),
        )
    except papermill.PapermillExecutionError as exc:
        status = "failed"
        error = {"ename": exc.ename, "evalue": exc.evalue, "cell_index": exc.cell_index}
    except CellTimeoutError as exc:
        status = "timeout"
        error = {"ename": "CellTimeoutError", "evalue": f"a cell ran longer than {timeout_s:g} s: {exc}"}
    except DeadKernelError as exc:
        status = "failed"
        error = {"ename": "DeadKernelError", "evalue": f"the kernel died: {exc}"}
    except Exception as exc:  # noqa: BLE001 - the run folder must still be written
        status = "failed"
        error = {"ename": type(exc).__name__, "evalue": " ".join(str(exc).split())}
    try:
        executed = json.loads(output.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        executed = json.loads(path.read_text(encoding="utf-8"))
    if error and "cell_index" not in error:  # papermill marks a raising cell itself; not a timeout or death
        _mark_interrupted(executed, error)
    return executed, status, error


@dataclass(frozen=True)
class RunPlace:
    """Where a run will be written (`folder`, named before the kernel starts) and the private folder whose files
    the runner adds to it (`files`)."""

    folder: Path
    files: Path


def run_folder_name(started: datetime, notebook: str) -> str:
    """A run folder's name: `<UTC yyyymmddTHHMMSSZ>-<notebook>` (the runner adds -2, -3 ... when it is taken)."""
    return f"{started:%Y%m%dT%H%M%SZ}-{notebook}"


def kernel_environment(
    allow_actions: bool = False,
    *,
    journal: Path | None = None,
    timeout_s: float | None = None,
    run: RunPlace | None = None,
    progress: Path | None = None,
) -> dict[str, str | None]:
    """What the kernel's environment differs by from this process's (None: removed).

    IMSNB_CONFIG: the kernel runs in notebooks/, so it is told which imsnb.toml the caller meant.
    IMSNB_ALLOW_ACTIONS: the run key of `imsnb.actions`; a headless run has it only with --allow-actions, never
    inherited from an exported variable. The kernel reads it once, when imsnb is imported (`imsnb.started_with`).
    IMSNB_ACTIONS_JOURNAL: where the kernel writes each action as `applying` before it acts (write-ahead).
    IMSNB_CELL_TIMEOUT_S: the cell timeout, so that long waits (a restore) stop short of it.
    IMSNB_RUN_FOLDER, IMSNB_RUN_FILES: where the run will be written (a link to it, its incident's earlier runs),
    and where the notebook puts files to keep with it (performance_baseline's metrics export).
    IMSNB_PROGRESS: where the notebook says what it is doing (`imsnb.progress`), when the caller follows it.
    """

    changes: dict[str, str | None] = {
        ALLOW_ENV: "1" if allow_actions else None,
        JOURNAL_ENV: str(journal) if journal is not None else None,
        CELL_TIMEOUT_ENV: f"{math.ceil(timeout_s)}" if timeout_s else None,
        RUN_FOLDER_ENV: str(run.folder) if run is not None else None,
        RUN_FILES_ENV: str(run.files) if run is not None else None,
        PROGRESS_ENV: str(progress) if progress is not None else None,
    }
    found = config.config_file()
    if "IMSNB_CONFIG" not in os.environ and found is not None:
        changes["IMSNB_CONFIG"] = str(found.resolve())
    return changes


def _kernel_manager_class(
    changes: dict[str, str | None], *, cwd: Path, ipc: Path | None = None, kernels: ForkServer | None = None
) -> type:
    """A kernel manager that starts the kernel in `cwd` with `changes` applied to its environment (never to this
    process's environment or working directory: papermill's own `cwd=` is a process-wide os.chdir, so concurrent
    runs in threads would write each other's files in the wrong place or see each other's keys).

    `ipc`: a private folder for the kernel's sockets (IPC, not TCP: no ports, nothing reachable from the network,
    and no "running over TCP without encryption" warning). `kernels`: fork the kernel from this warm parent."""
    # lazy: the kernel machinery (~1 s) only in the process that executes a notebook
    from jupyter_client import AsyncKernelManager

    provisioner = None if kernels is None else provisioner_class(kernels)

    class RunKernelManager(AsyncKernelManager):
        if ipc is not None:
            transport = "ipc"
            ip = str(ipc / "kernel")

        async def start_kernel(self, **kw: Any) -> None:
            if provisioner is not None and self.provisioner is None:
                self.kernel_id = self.kernel_id or secrets.token_hex(16)
                self.provisioner = provisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
            env = dict(kw.pop("env", None) or os.environ)
            for name, value in changes.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
            kw["cwd"] = str(cwd)
            return await super().start_kernel(env=env, **kw)

    return RunKernelManager


def _mark_interrupted(nb: dict, error: dict) -> None:
    """A timeout or dead kernel leaves no banner: say at the top where and why the run stopped, and mark the
    cells after that one as not run (papermill leaves them marked completed)."""
    cells = nb["cells"]
    started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    stopped = started[-1] if started else None
    if stopped is not None:
        cells[stopped].setdefault("outputs", []).append(
            {"output_type": "error", "ename": error["ename"], "evalue": error["evalue"], "traceback": []}
        )
        for cell in cells[stopped + 1 :]:
            cell.setdefault("metadata", {}).setdefault("papermill", {})["status"] = "not run"
    where = f" in cell {stopped + 1}" if stopped is not None else ""  # +1: the banner goes first
    banner = {
        "cell_type": "markdown",
        "id": "imsnb-interrupted",
        "metadata": {"tags": ["imsnb-interrupted"]},
        "source": f"**This run did not finish{where}: {error['ename']}: {error['evalue']}.** Later cells did not run.",
    }
    cells.insert(0, banner)


def _follow(path: Path | None, on_line: Callable[[str], None] | None) -> Any:
    """A started `imsnb.progress.Follower` of `path` (secrets scrubbed from each line), or None."""
    if path is None or on_line is None:
        return None

    path.touch()
    return Follower(path, on_line, clean=scrubber()).start()


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")
