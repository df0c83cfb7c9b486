"""One Apache Airflow DAG per imsnb schedule. In a file of Airflow's DAGs folder:

    from imsnb.integrations.airflow import dags

    globals().update(dags())

Each DAG (`imsnb_<schedule>`) has one task, `run_notebook`, that makes the same run as `imsnb schedule run NAME`
(`imsnb.schedule.run_schedule`: imsnb's own runner, so the run folder, scrubbing, summary and exit codes are those
of `imsnb run`) and uploads the run folder to the schedule's archive (`archive`, else IMSNB_ARCHIVE): workers are
ephemeral, the archive is the record. Cron in UTC, `max_active_runs=1`, `catchup=False`.

What fails the task, and what is retried:
- the notebook failed or timed out (exit 3), or bad input (exit 2): the task fails, no retry;
- a target was unreachable (a `*.reachable` finding at ERROR or above): retried (`retries`, `retry_delay`); on the
  last try the run is reported like any other, the unreachable target being its finding;
- the archive upload failed: retried, and the task fails on the last try (the run folder would be lost);
- findings, even CRITICAL ones, are results, not failures: the worst severity is pushed as the XCom `severity`
  (and the task's return value holds severity, status, incident, run folder and archive keys).

Needs `pip install 'imsnb[airflow]'` on the scheduler and the workers (Airflow 3).
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imsnb.errors import ImsnbError
from imsnb.findings import Severity
from imsnb.schedule import get_schedule, load_schedules, run_schedule

DAG_PREFIX = "imsnb_"
TASK_ID = "run_notebook"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = timedelta(minutes=5)
# A fixed past start: with catchup=False Airflow schedules only from now on.
START_DATE = datetime(2026, 1, 1, tzinfo=UTC)

log = logging.getLogger(__name__)


def unreachable_targets(summary: dict[str, Any]) -> list[str]:
    """The `*.reachable` checks a run reported at ERROR or above (e.g. ["postgres.reachable"])."""
    found = []
    for f in summary.get("findings") or []:
        check = str(f.get("check") or "")
        try:
            level = Severity.parse(f.get("severity") or "OK")
        except ValueError:
            continue
        if check.endswith(".reachable") and level >= Severity.ERROR:
            found.append(check)
    return found


def task_outcome(summary: dict[str, Any], *, archive_error: str | None, last_try: bool) -> tuple[str, str]:
    """What the task does with a finished run: ("ok" | "retry" | "fail", why)."""
    if summary.get("status") != "ok":
        error = summary.get("error") or {}
        detail = f": {error.get('ename')}: {error.get('evalue')}" if error else ""
        return "fail", f"notebook {summary.get('notebook')} {summary.get('status')}{detail} (exit 3)"
    unreachable = unreachable_targets(summary)
    if unreachable and not last_try:
        return "retry", f"unreachable: {', '.join(unreachable)}; retrying"
    if archive_error:
        return ("fail" if last_try else "retry"), archive_error
    return "ok", f"worst {summary.get('severity') or 'none'}"


def default_outputs() -> Path:
    """Where a worker writes run folders before the upload: IMSNB_OUTPUTS, else a folder under the temp dir."""
    return Path(os.environ.get("IMSNB_OUTPUTS") or Path(tempfile.gettempdir()) / "imsnb-outputs")


def run_task(
    name: str,
    *,
    try_number: int = 1,
    retries: int = 0,
    outputs: Path | str | None = None,
    config: Path | str | None = None,
) -> dict[str, Any]:
    """The task's body, without Airflow: run schedule `name` and decide. Raises `Retry` or `Fail` (mapped to
    Airflow's exceptions by the task), else returns what the task pushes."""

    try:
        schedule = get_schedule(name, Path(config) if config else "auto")
        scheduled = run_schedule(schedule, outputs=outputs or default_outputs())
    except ImsnbError as exc:
        raise Fail(f"bad input (exit 2): {exc}") from None
    summary = scheduled.result.summary
    if not scheduled.archive:
        log.warning("schedule %s has no archive (set `archive` or IMSNB_ARCHIVE): the run stays on this worker", name)
    kind, why = task_outcome(summary, archive_error=scheduled.archive_error, last_try=try_number > retries)
    log.info("imsnb schedule %s: %s, run folder %s: %s", name, kind, scheduled.result.folder, why)
    if kind == "fail":
        raise Fail(why)
    if kind == "retry":
        raise Retry(why)
    return {
        "severity": summary.get("severity") or "OK",
        "status": summary.get("status"),
        "exit_code": scheduled.result.exit_code,
        "incident": summary.get("incident_id"),
        "run_folder": str(scheduled.result.folder),
        "archive": scheduled.archive,
        "archived_keys": scheduled.archived_keys,
    }


class Retry(Exception):
    """A transient failure (unreachable target, archive upload): Airflow may try again."""


class Fail(Exception):
    """The notebook failed, or bad input: no retry."""


def dags(
    *,
    retries: int = DEFAULT_RETRIES,
    retry_delay: timedelta = DEFAULT_RETRY_DELAY,
    outputs: Path | str | None = None,
    config: Path | str | None = None,
) -> dict[str, Any]:
    """One DAG per schedule of imsnb.toml (or the runbook's timetable), keyed by DAG id (`imsnb_<schedule>`).

    `config` is an imsnb.toml path (default: IMSNB_CONFIG, the current directory, the repository root). A bad
    schedule raises BadParameter with one line naming the file, table and field: Airflow shows it as the DAG
    file's import error."""

    schedules = load_schedules(Path(config) if config else "auto")
    built = {}
    for name, schedule in schedules.items():
        built[f"{DAG_PREFIX}{name}"] = _dag(schedule, retries, retry_delay, outputs, config)
    return built


def _dag(schedule, retries: int, retry_delay: timedelta, outputs, config) -> Any:
    # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
    from airflow.sdk import DAG, task

    try:
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.sdk import CronTriggerTimetable
    except ImportError:  # older Airflow 3 releases
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.timetables.trigger import CronTriggerTimetable

    name = schedule.name
    with DAG(
        dag_id=f"{DAG_PREFIX}{name}",
        description=f"imsnb notebook {schedule.notebook} on cron {schedule.cron} (UTC)",
        schedule=CronTriggerTimetable(schedule.cron, timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["imsnb", schedule.notebook],
        default_args={"owner": "imsnb", "retries": retries, "retry_delay": retry_delay},
        doc_md=f"`imsnb schedule run {name}`: notebook `{schedule.notebook}`, cron `{schedule.cron}` UTC, "
        f"incident `{schedule.incident}`. XCom `severity`: the run's worst finding.",
    ) as dag:

        @task(task_id=TASK_ID)
        def run_notebook() -> dict[str, Any]:
            return _airflow_task(name, outputs, config)

        run_notebook()
    return dag


def _airflow_task(name: str, outputs, config) -> dict[str, Any]:
    """Inside a running Airflow task: run, then map our outcome to Airflow's exceptions and push the severity."""
    # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
    from airflow.sdk import get_current_context

    try:
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.sdk.exceptions import AirflowException, AirflowFailException
    except ImportError:
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.exceptions import AirflowException, AirflowFailException

    context = get_current_context()
    ti = context["ti"]
    retries = int(getattr(context.get("task"), "retries", 0) or 0)
    try:
        pushed = run_task(name, try_number=int(ti.try_number or 1), retries=retries, outputs=outputs, config=config)
    except Retry as exc:
        raise AirflowException(str(exc)) from None
    except Fail as exc:
        raise AirflowFailException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - only an unreachable target is retried
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
    ti.xcom_push(key="severity", value=pushed["severity"])
    return pushed
