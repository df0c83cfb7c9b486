"""Schedules: the runbook's routine as `[schedules.NAME]` tables of imsnb.toml, one module per concern.

    timetable.py      Schedule, load_schedules (validated, or the runbook's DEFAULT_TIMETABLE), check_cron, the
                      incident id of a run, next_runs (UTC)
    listing.py        last_run in the local archive, describe_schedules (`imsnb schedule list`)
    scheduled_run.py  run_schedule: one run exactly as cron and Airflow make it (no actions, archived, notified)
    crontab.py        crontab_lines for one host (CRON_TZ=UTC, flock, a log per schedule, `imsnb record`)

Cron, crontab lines and Airflow DAGs all make a run through `run_schedule`: one place says what a scheduled run is.
"""

from imsnb.schedule.crontab import crontab_lines, default_log_dir, imsnb_command
from imsnb.schedule.listing import describe_schedules, last_run
from imsnb.schedule.scheduled_run import ScheduledRun, config_of, run_schedule
from imsnb.schedule.timetable import (
    DEFAULT_INCIDENT,
    DEFAULT_TIMEOUT_S,
    DEFAULT_TIMETABLE,
    FIELDS,
    PLACEHOLDERS,
    RESERVED_PARAMETERS,
    Schedule,
    check_cron,
    check_incident_pattern,
    default_schedules,
    get_schedule,
    incident_for,
    incident_id,
    load_schedules,
    next_runs,
)

__all__ = [
    "DEFAULT_INCIDENT",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TIMETABLE",
    "FIELDS",
    "PLACEHOLDERS",
    "RESERVED_PARAMETERS",
    "Schedule",
    "ScheduledRun",
    "check_cron",
    "check_incident_pattern",
    "config_of",
    "crontab_lines",
    "default_log_dir",
    "default_schedules",
    "describe_schedules",
    "get_schedule",
    "imsnb_command",
    "incident_for",
    "incident_id",
    "last_run",
    "load_schedules",
    "next_runs",
    "run_schedule",
]
