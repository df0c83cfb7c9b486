"""One scheduled run, exactly as cron (`imsnb schedule run`) and Airflow make it: cron, crontab lines and Airflow DAGs
all go through `run_schedule`, so one place says what a scheduled run is."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imsnb import config
from imsnb.runs.execute import run_notebook
from imsnb.schedule.timetable import Schedule, incident_for


@dataclass
class ScheduledRun:
    result: Any  # imsnb.runs.execute.RunResult
    archive: str | None
    archived_keys: list[str]
    archive_error: str | None


def run_schedule(schedule: Schedule, *, outputs: Path | str = "outputs", at: datetime | None = None) -> ScheduledRun:
    """One run of `schedule`, exactly as cron (`imsnb schedule run`) and Airflow make it: its parameters and
    environment, the incident from its pattern, fail-on ERROR, never actions (no run key), then the run folder
    uploaded to its archive. An upload failure is returned, not raised (the local run folder is complete)."""
    from imsnb import delivery  # lazy: archive and notify pull in boto3; listing schedules needs neither

    url = schedule.archive_url()
    delivery.check_delivery(url)  # a bad IMSNB_ARCHIVE is bad input, before the run
    at = at or datetime.now(UTC)
    with config_of(schedule):
        result = run_notebook(
            schedule.notebook,
            schedule.run_parameters(),
            incident_id=incident_for(schedule, at),
            outputs=outputs,
            timeout_s=schedule.timeout_s,
            allow_actions=False,  # a scheduled run plans actions in its report, never applies them
        )
        # A scheduled run tells people when the state changes (a new finding at a level, an escalation, a
        # resolution), not every time, through the [notify] routes of the schedule's imsnb.toml (state kept in the
        # archive). A channel that fails is a line on stderr and a record in summary.json, never a failed run.
        mode = "changes" if config.toml_section("notify") is not None else "never"
        done = delivery.deliver([result], archive=url, notify=mode)
    return ScheduledRun(result, url, done.archived_keys, done.archive_error)


@contextlib.contextmanager
def config_of(schedule: Schedule) -> Iterator[None]:
    """The run (and its kernel) reads [environments] from the file the schedule came from, even when that is not
    the one IMSNB_CONFIG names (`dags(config=...)`)."""
    source = Path(schedule.source)
    current = config.config_file()
    if not source.is_file() or (current is not None and current.resolve() == source.resolve()):
        yield
        return
    saved = os.environ.get("IMSNB_CONFIG")
    os.environ["IMSNB_CONFIG"] = str(source.resolve())
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("IMSNB_CONFIG", None)
        else:
            os.environ["IMSNB_CONFIG"] = saved
