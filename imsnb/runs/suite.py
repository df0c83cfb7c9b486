"""Run several notebooks under one incident id, in parallel kernels.

Every notebook and parameter is validated (`imsnb.runs.execute.prepare`) before any kernel starts. A `-p` parameter
goes to the notebooks that declare it; a name no notebook in the suite declares is bad input.

Workers are threads by default: each run's kernel is its own process, and the work left in this process
(papermill's bookkeeping, scrubbing, the HTML export) is small; `bench/suite.py` measures threads against
processes. Kernels get their cwd and environment explicitly (`imsnb.runs.execute`), so nothing here touches
os.environ or the process cwd. With thread workers, one warm parent (`imsnb.runs.kernels.ForkServer`) forks every
run's kernel, so the imports every notebook makes are paid once per suite.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from imsnb.errors import BadParameter
from imsnb.findings import Severity
from imsnb.runs.catalogue import find_notebook, list_notebooks, load_info
from imsnb.runs.execute import (
    DEFAULT_TIMEOUT_S,
    RunResult,
    check_run_settings,
    check_targets,
    prepare,
    run_notebook,
)
from imsnb.runs.exits import worst_exit_code
from imsnb.runs.folder import refresh_index
from imsnb.runs.kernels import ForkServer, notebook_imports
from imsnb.runs.parameters import check_incident_id

WORKER_KINDS = ("thread", "process")


def all_notebook_names() -> list[str]:
    return [info.name for info in list_notebooks()]


def suite_notebooks(names: list[str], *, every: bool, environment: str | None = None) -> tuple[list[str], list[str]]:
    """The notebooks a suite runs (those named, or with `every` the catalogue's), and those `every` leaves out for
    want of a configured target; naming some and asking for every one is bad input."""
    if every == bool(names):
        raise BadParameter("name the notebooks to run, or pass --all (not both)")
    if not every:
        return list(names), []
    names = all_notebook_names()
    left_out = without_targets(names, environment)
    return [n for n in names if n not in left_out], left_out


def without_targets(names: Iterable[str], environment: str | None = None) -> list[str]:
    """The notebooks none of whose declared targets is configured (`--all` leaves them out, with a note; named
    explicitly, each is bad input)."""
    left_out = []
    for name in names:
        try:
            check_targets(load_info(find_notebook(name)), environment)
        except BadParameter:
            left_out.append(name)
    return left_out


def default_jobs() -> int:
    return os.cpu_count() or 1


def suite_incident_id(incident_id: str | None, parameters: dict[str, Any]) -> str:
    """The suite's one incident id: given, else `-p incident_id`, else adhoc-<UTC time>."""
    chosen = incident_id or parameters.get("incident_id") or f"adhoc-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    return check_incident_id(str(chosen))


def plan_suite(
    names: Iterable[str],
    parameters: dict[str, Any],
    *,
    incident_id: str,
    outputs: Path | str = "outputs",
    fail_on: str | Severity = Severity.ERROR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[tuple[str, dict[str, Any]]]:
    """Each notebook with the parameters it declares, all validated with the run options (the same checks as
    `imsnb run`); raises BadParameter before anything runs or is written."""
    check_run_settings(fail_on, timeout_s)
    names = list(dict.fromkeys(names))
    if not names:
        raise BadParameter("no notebooks given: name some (see `imsnb list`) or pass --all")
    plan, declared = [], set()
    for name in names:
        info = load_info(find_notebook(name))
        declared |= set(info.parameters)
        own = {k: v for k, v in parameters.items() if k in info.parameters}
        prepare(name, own, incident_id, outputs)  # refuses bad values, secrets, unwritable outputs
        plan.append((name, own))
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise BadParameter(
            f"parameter {unknown[0]!r} is declared by none of these notebooks: check the name (see `imsnb list`)"
        )
    return plan


def check_jobs(jobs: object) -> int:
    """How many notebooks run at once: a whole number of at least 1, else bad input."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise BadParameter(f"jobs must be a whole number of at least 1, not {jobs!r}")
    return jobs


def run_suite(
    names: Iterable[str],
    parameters: dict[str, Any] | None = None,
    *,
    incident_id: str | None = None,
    outputs: Path | str = "outputs",
    jobs: int | None = None,
    fail_on: str | Severity = Severity.ERROR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[RunResult], None] | None = None,
    workers: str = "thread",
) -> list[RunResult]:
    """Run the notebooks under one incident id, `jobs` at a time; results in the order of `names`.

    `on_result` is called (in the caller's thread) as each run finishes. The incident's index.html is rewritten
    after each run and once more at the end.
    """

    parameters = dict(parameters or {})
    jobs = default_jobs() if jobs is None else jobs
    check_jobs(jobs)
    if workers not in WORKER_KINDS:
        raise BadParameter(f"workers must be one of {', '.join(WORKER_KINDS)}, not {workers!r}")
    incident = suite_incident_id(incident_id, parameters)
    parameters.pop("incident_id", None)
    plan = plan_suite(names, parameters, incident_id=incident, outputs=outputs, fail_on=fail_on, timeout_s=timeout_s)

    run = functools.partial(run_notebook, incident_id=incident, outputs=outputs, fail_on=fail_on, timeout_s=timeout_s)
    results, errors = _run_plan(plan, run, jobs=jobs, workers=workers, on_result=on_result)
    refresh_index(Path(outputs) / incident)
    if errors:
        raise errors[0]
    return [results[i] for i in sorted(results)]


def _run_plan(
    plan: list[tuple[str, dict[str, Any]]],
    run: Callable[..., RunResult],
    *,
    jobs: int,
    workers: str,
    on_result: Callable[[RunResult], None] | None,
) -> tuple[dict[int, RunResult], list[BaseException]]:
    """Every planned run, `jobs` at a time: the results by their place in the plan, and the errors of runs that
    raised (the others finish first)."""
    results: dict[int, RunResult] = {}
    errors: list[BaseException] = []
    # One warm parent forks every run's kernel (threads only: a spawned worker starts its own per run).
    warm = workers == "thread" and warm_kernels_enabled()
    shared = {"kernels": ForkServer(notebook_imports(find_notebook(name) for name, _ in plan))} if warm else {}
    with contextlib.ExitStack() as stack, _executor(workers, min(jobs, len(plan))) as pool:
        for server in shared.values():  # closed after the pool has finished every run
            stack.callback(server.close)
        futures = {pool.submit(run, name, own, **shared): index for index, (name, own) in enumerate(plan)}
        try:
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:  # noqa: BLE001 - let the other runs finish, raise afterwards
                    errors.append(exc)
                    continue
                results[futures[future]] = result
                if on_result is not None:
                    on_result(result)
        except KeyboardInterrupt:  # Ctrl-C: start nothing new; running kernels got the SIGINT too
            for future in futures:
                future.cancel()
            raise
    return results, errors


def _executor(workers: str, jobs: int) -> Executor:
    if workers == "process":  # spawn: forking a process that runs threads (zmq, asyncio) is unsafe
        return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"))
    return ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="imsnb-suite")


def suite_exit_code(results: list[RunResult]) -> int:
    """3 if any notebook failed or timed out, else 1 if any reached --fail-on, else 0."""
    return worst_exit_code(r.exit_code for r in results)


def worst_severity(results: list[RunResult]) -> str | None:
    level = Severity.worst((r.summary.get("severity") for r in results), default=None)
    return None if level is None else level.name


def warm_kernels_enabled() -> bool:
    """Suites fork their kernels from a warm parent (imsnb.runs.kernels), unless IMSNB_WARM_KERNELS=0 asks for
    plain ones."""
    return os.environ.get("IMSNB_WARM_KERNELS", "1").strip() != "0"
