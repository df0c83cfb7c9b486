"""One Apache Airflow DAG per imsnb schedule. In a file of Airflow's DAGs folder:

    from imsnb.integrations.airflow import dags

    globals().update(dags())

Each DAG (`imsnb_<schedule>`) has one task, `run_notebook`, that makes the same run as `imsnb schedule run NAME`
(`imsnb.schedule.run_schedule`: imsnb's own runner, so the run folder, scrubbing, summary and exit codes are those
of `imsnb run`) and uploads the run folder to the schedule's archive (`archive`, else IMSNB_ARCHIVE): workers are
ephemeral, the archive is the record. Cron in UTC, `max_active_runs=1`, `catchup=False`, no start_date (the
first run is the next cron time).

What fails the task, and what is retried:
- the notebook failed or timed out (exit 3), or bad input (exit 2): the task fails, no retry;
- a target was unreachable (a `*.reachable` finding at ERROR or above): retried (`retries`, `retry_delay`); on the
  last try the run is reported like any other, the unreachable target being its finding;
- the archive upload failed: retried, and the task fails on the last try (the run folder would be lost);
- findings, even CRITICAL ones, are results, not failures: the worst severity is pushed as the XCom `severity`
  (and the task's return value holds severity, status, incident, run folder and archive keys).

Many workers (CeleryExecutor): `dags(queues={"db_performance": "db-workers"})` pins a schedule's task to a Celery
queue (the workers started with `airflow celery worker --queues db-workers` take it); `dags(record="* * * * *")`
adds the DAG `imsnb_record`, whose task `record` takes one `imsnb record` round into the configured store
(IMSNB_STATE_URL), so a `db_performance` run on any worker starts from snapshots another worker took. Only the
store is shared: each worker keeps its own IMSNB_OUTPUTS, and the archive holds every run folder.

Needs `pip install 'imsnb[airflow]'` on the scheduler and the workers (Airflow 3).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from imsnb.errors import BadParameter, ImsnbError
from imsnb.findings import Severity
from imsnb.history import History, retention
from imsnb.record import record_once
from imsnb.schedule import check_cron, get_schedule, load_schedules, run_schedule
from imsnb.state import check_store

DAG_PREFIX = "imsnb_"
TASK_ID = "run_notebook"
RECORD = "record"  # the record DAG's name (imsnb_record), its task id, and its key in `queues`
RECORD_TASK_ID = "record"
DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY = timedelta(minutes=5)
# No start_date: with one, Airflow (catchup=False) makes a run for the latest past cron time as soon as the DAG is
# unpaused, so a new deployment would run every notebook at once. Without it, and with run_immediately=0, the first
# run is the next cron time; a manual trigger runs at once.
RUN_IMMEDIATELY = timedelta(0)

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


def record_task() -> dict[str, Any]:
    """The record DAG's body, without Airflow: one `imsnb record` round of every configured target into the store
    (IMSNB_STATE_URL / `[state] url`, else the local history file). Returns the round's lines and the store's name
    (without credentials). Raises `Fail` on bad input (a bad store URL, one naming the diagnosed database) or when
    no target is configured, `Retry` when a target's snapshots could not be taken or written (an unreachable
    target or store): the next round tries again anyway."""

    try:
        retention()
        history = History(check_store())
    except ImsnbError as exc:
        raise Fail(f"bad input (exit 2): {exc}") from None
    lines = record_once(history)
    for line in lines:
        log.info("imsnb record: %s", line)
    if any(line.startswith("no target configured") for line in lines):
        raise Fail(lines[0])
    missed = [line for line in lines if "not recorded" in line or "not written" in line]
    if missed:
        raise Retry("; ".join(missed))
    return {"store": history.name, "lines": lines}


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
    queues: Mapping[str, str] | None = None,
    record: str | None = None,
) -> dict[str, Any]:
    """One DAG per schedule of imsnb.toml (or the runbook's timetable), keyed by DAG id (`imsnb_<schedule>`).

    `config` is an imsnb.toml path (default: IMSNB_CONFIG, the current directory, the repository root). `queues`
    maps a schedule's name (or "record") to the Celery queue its task is sent to; the others go to Airflow's
    default queue. `record`, a five-field cron in UTC, adds `imsnb_record`: one `imsnb record` round per tick
    (no retries: the next tick is the retry). A bad schedule, queue or cron raises BadParameter with one line
    naming it: Airflow shows it as the DAG file's import error."""

    schedules = load_schedules(Path(config) if config else "auto")
    queues = dict(queues or {})
    known = [*schedules, *([RECORD] if record is not None else [])]
    for name, queue in queues.items():
        if name not in known:
            raise BadParameter(f"dags(queues=...): no schedule {name!r} (known: {', '.join(known) or 'none'})")
        if not isinstance(queue, str) or not queue.strip() or queue != queue.strip():
            raise BadParameter(f"dags(queues=...): the queue of {name!r} must be a Celery queue name, not {queue!r}")
    if record is not None:
        if RECORD in schedules:
            raise BadParameter(f"dags(record=...): a schedule is named {RECORD!r} already (DAG {DAG_PREFIX}{RECORD})")
        record = check_cron(record, lambda problem: BadParameter(f"dags(record=...): {problem}"))
    built = {}
    for name, schedule in schedules.items():
        built[f"{DAG_PREFIX}{name}"] = _dag(schedule, retries, retry_delay, outputs, config, queues.get(name))
    if record is not None:
        built[f"{DAG_PREFIX}{RECORD}"] = _record_dag(record, queues.get(RECORD))
    return built


def _timetable(cron: str) -> Any:
    try:
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.sdk import CronTriggerTimetable
    except ImportError:  # older Airflow 3 releases
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.timetables.trigger import CronTriggerTimetable
    return CronTriggerTimetable(cron, timezone="UTC", run_immediately=RUN_IMMEDIATELY)


def _record_dag(cron: str, queue: str | None) -> Any:
    # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
    from airflow.sdk import DAG, task

    with DAG(
        dag_id=f"{DAG_PREFIX}{RECORD}",
        description=f"imsnb record (counter snapshots and plans into the store) on cron {cron} (UTC)",
        schedule=_timetable(cron),
        catchup=False,
        max_active_runs=1,
        tags=["imsnb", RECORD],
        default_args={"owner": "imsnb", "retries": 0},
        doc_md=f"`imsnb record`, one round, cron `{cron}` UTC: snapshots of every configured target into the store "
        "(IMSNB_STATE_URL), which every worker's runs start from.",
    ) as dag:

        @task(task_id=RECORD_TASK_ID, **_queue(queue))
        def record() -> dict[str, Any]:
            return _airflow_call(record_task)

        record()
    return dag


def _queue(queue: str | None) -> dict[str, str]:
    """The operator argument pinning a task to a Celery queue; none: Airflow's default queue."""
    return {"queue": queue} if queue else {}


def _dag(schedule, retries: int, retry_delay: timedelta, outputs, config, queue: str | None = None) -> Any:
    # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
    from airflow.sdk import DAG, task

    name = schedule.name
    with DAG(
        dag_id=f"{DAG_PREFIX}{name}",
        description=f"imsnb notebook {schedule.notebook} on cron {schedule.cron} (UTC)",
        schedule=_timetable(schedule.cron),
        catchup=False,
        max_active_runs=1,
        tags=["imsnb", schedule.notebook],
        default_args={"owner": "imsnb", "retries": retries, "retry_delay": retry_delay},
        doc_md=f"`imsnb schedule run {name}`: notebook `{schedule.notebook}`, cron `{schedule.cron}` UTC, "
        f"incident `{schedule.incident}`. XCom `severity`: the run's worst finding.",
    ) as dag:

        @task(task_id=TASK_ID, **_queue(queue))
        def run_notebook() -> dict[str, Any]:
            return _airflow_task(name, outputs, config)

        run_notebook()
    return dag


def _airflow_task(name: str, outputs, config) -> dict[str, Any]:
    """Inside a running Airflow task: run, then map our outcome to Airflow's exceptions and push the severity."""
    # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
    from airflow.sdk import get_current_context

    context = get_current_context()
    ti = context["ti"]
    retries = int(getattr(context.get("task"), "retries", 0) or 0)
    pushed = _airflow_call(
        lambda: run_task(name, try_number=int(ti.try_number or 1), retries=retries, outputs=outputs, config=config)
    )
    ti.xcom_push(key="severity", value=pushed["severity"])
    return pushed


def _airflow_call(body) -> dict[str, Any]:
    """`body()` with our outcomes mapped to Airflow's exceptions: Retry may be retried, Fail and anything
    unexpected fail the task at once."""
    try:
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.sdk.exceptions import AirflowException, AirflowFailException
    except ImportError:
        # lazy: Airflow is installed only on Airflow's workers (the `airflow` extra)
        from airflow.exceptions import AirflowException, AirflowFailException

    try:
        return body()
    except Retry as exc:
        raise AirflowException(str(exc)) from None
    except Fail as exc:
        raise AirflowFailException(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - only transient causes are retried
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
