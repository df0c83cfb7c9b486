"""A schedule: one `[schedules.NAME]` table of imsnb.toml, validated field by field (a bad one is one line naming
the file, the table and the field), or the runbook's own timetable; its incident id and its next run times (UTC).

    [schedules.health_check]
    notebook = "health_check"                  # default: the table's name
    cron = "0 */4 * * *"                       # five fields, always UTC
    parameters = { window = "4h" }             # checked against the notebook's parameters cell
    environment = "prod"                       # [environments.prod] of the same file; default "default"
    incident = "sched-{notebook}-{date}"       # {schedule} {notebook} {environment} {date} (yyyymmdd) {month} (yyyymm)
    archive = "s3://ims-incidents/scheduled"   # default: IMSNB_ARCHIVE when the run starts, else none
    timeout = 600                              # seconds a cell may run

Without an imsnb.toml, or with one that has no `schedules` table, the runbook's own timetable (`DEFAULT_TIMETABLE`).
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imsnb import config
from imsnb.archive import parse_archive_url
from imsnb.errors import BadParameter, ImsnbError, NotConfigured
from imsnb.runs.catalogue import NotebookInfo, find_notebook, load_info
from imsnb.runs.parameters import check_incident_id, is_positive_seconds, validate
from imsnb.scrub import check_not_secret

DEFAULT_INCIDENT = "sched-{notebook}-{date}"
DEFAULT_TIMEOUT_S = 600.0
# The runbook's timetable (Daily Operations, Backup & Recovery, Monitoring), in UTC. The performance baseline is
# "Daily at 9 AM UTC" in the runbook; backup verification follows the 3 AM UTC automated backup.
DEFAULT_TIMETABLE: dict[str, str] = {
    "health_check": "0 */4 * * *",
    "backup_verification": "30 3 * * *",
    "performance_baseline": "0 9 * * *",
    "triage": "0 * * * *",
    "certificate_expiry": "0 6 * * *",
    "disk_usage": "15 6 * * *",
}
FIELDS = ("notebook", "cron", "parameters", "environment", "incident", "archive", "timeout")
PLACEHOLDERS = ("schedule", "notebook", "environment", "date", "month")
# Set by the schedule itself, not by its parameters table.
RESERVED_PARAMETERS = {
    "incident_id": "use the schedule's `incident` pattern",
    "environment": "use the schedule's `environment` field",
    "apply_actions": "a scheduled run never applies actions",
    "approver": "a scheduled run never applies actions",
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
# cron(8)'s own syntax: numbers, * , - / and month/day names; no croniter extensions (L, #, H, seconds).
_CRON_FIELD = re.compile(r"[0-9A-Za-z*,/-]+")
_CRON_NAMES = re.compile(r"[A-Za-z]+")
_CRON_WORDS = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"} | {
    "sun", "mon", "tue", "wed", "thu", "fri", "sat",
}  # fmt: skip


@dataclass(frozen=True)
class Schedule:
    name: str
    notebook: str
    cron: str
    parameters: dict[str, Any] = field(default_factory=dict)
    environment: str = "default"
    incident: str = DEFAULT_INCIDENT
    archive: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    source: str = "the runbook's default timetable"

    def archive_url(self) -> str | None:
        """Where its run folders go: its own `archive`, else IMSNB_ARCHIVE (read when the run starts)."""
        return self.archive or os.environ.get("IMSNB_ARCHIVE") or None

    def run_parameters(self) -> dict[str, Any]:
        """The notebook parameters of each of its runs (the incident id is added per run)."""
        params = dict(self.parameters)
        if self.environment != "default":
            params["environment"] = self.environment
        return params


def load_schedules(path: Path | None | str = "auto") -> dict[str, Schedule]:
    """Every schedule, by name: the `[schedules.*]` tables of imsnb.toml (`config_file()` unless a path is given),
    or the runbook's timetable when there is no file or it has no `schedules` table. Bad entries raise
    BadParameter with one line naming the file, the table and the field."""
    if path == "auto":
        path = config.config_file()
    if path is None:
        return default_schedules()
    path = Path(path)
    try:
        data = config.read_toml(path)
    except NotConfigured as exc:  # a schedule file that cannot be read is bad input here (exit 2)
        raise BadParameter(str(exc)) from None
    if "schedules" not in data:
        return default_schedules()
    tables = data["schedules"]
    if not isinstance(tables, dict):
        raise BadParameter(f"{path}: [schedules] must be a table of [schedules.NAME] tables")
    environments = data.get("environments") if isinstance(data.get("environments"), dict) else {}
    return {name: _schedule_from_table(path, name, table, environments) for name, table in tables.items()}


def default_schedules() -> dict[str, Schedule]:
    return {name: Schedule(name=name, notebook=name, cron=cron) for name, cron in DEFAULT_TIMETABLE.items()}


def get_schedule(name: str, path: Path | None | str = "auto") -> Schedule:
    schedules = load_schedules(path)
    if name not in schedules:
        known = ", ".join(schedules) or "none"
        raise BadParameter(f"no schedule {name!r} (known: {known}): see `imsnb schedule list`")
    return schedules[name]


def _schedule_from_table(path: Path, name: str, table: Any, environments: dict) -> Schedule:
    where = f"{path}: [schedules.{name}]"

    def bad(field_name: str, problem: str) -> BadParameter:
        return BadParameter(f"{where} {field_name}: {problem}")

    if not _NAME.fullmatch(name):
        raise BadParameter(f"{where}: the name must be letters, digits, '_' or '-' (max 48): it names DAGs and logs")
    if not isinstance(table, dict):
        raise BadParameter(f"{where}: must be a table with at least `cron`")
    for key, value in table.items():
        if key != "parameters":  # checked key by key below, to name the parameter
            _refuse_secret(where, key, value)
    unknown = sorted(set(table) - set(FIELDS))
    if unknown:
        raise bad(unknown[0], f"unknown field (known: {', '.join(FIELDS)})")

    notebook, info = _notebook(table.get("notebook", name), bad)
    if "cron" not in table:
        raise bad("cron", 'is missing: five fields in UTC, e.g. cron = "0 */4 * * *"')
    cron = check_cron(table["cron"], lambda problem: bad("cron", problem))

    parameters = _parameters(table, info, where, bad)
    environment = _environment(table, info, notebook, environments, bad)

    incident = table.get("incident", DEFAULT_INCIDENT)
    if not isinstance(incident, str):
        raise bad("incident", f"must be a pattern such as {DEFAULT_INCIDENT!r}")
    check_incident_pattern(incident, name, notebook, environment, lambda problem: bad("incident", problem))

    archive = table.get("archive")
    if archive is not None:
        if not isinstance(archive, str):
            raise bad("archive", "must be an S3 URL: s3://bucket or s3://bucket/prefix")
        try:
            parse_archive_url(archive)
        except ImsnbError as exc:
            raise bad("archive", str(exc)) from None

    timeout = table.get("timeout", DEFAULT_TIMEOUT_S)
    if not is_positive_seconds(timeout):
        raise bad("timeout", f"must be a positive number of seconds, not {timeout!r}")

    return Schedule(
        name=name,
        notebook=notebook,
        cron=cron,
        parameters=dict(parameters),
        environment=environment,
        incident=incident,
        archive=archive,
        timeout_s=float(timeout),
        source=str(path),
    )


def _notebook(notebook: Any, bad: Callable[[str, str], BadParameter]) -> tuple[str, NotebookInfo]:
    """The schedule's notebook (its name, default the schedule's) and what its parameters cell declares."""
    if not isinstance(notebook, str) or not notebook:
        raise bad("notebook", "must be a notebook name (see `imsnb list`)")
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in notebook):
        raise bad("notebook", f"{notebook[:60]!r} holds a control character: a crontab would read a line break")
    try:
        return notebook, load_info(find_notebook(notebook))
    except ImsnbError as exc:
        raise bad("notebook", str(exc)) from None


def _parameters(table: dict, info: NotebookInfo, where: str, bad: Callable[[str, str], BadParameter]) -> dict[str, Any]:
    """The schedule's `parameters`: no secret, none the schedule sets itself, each valid for the notebook (named
    when it is not), and valid together (a window with start/end)."""
    parameters = table.get("parameters", {})
    if not isinstance(parameters, dict):
        raise bad("parameters", 'must be a table, e.g. parameters = { window = "4h" }')
    for key, value in parameters.items():
        _refuse_secret(where, f"parameters.{key}", value)
        if key in RESERVED_PARAMETERS:
            raise bad(f"parameters.{key}", RESERVED_PARAMETERS[key])
    for key, value in parameters.items():
        try:
            validate(info, {key: value})
        except ImsnbError as exc:
            raise bad(f"parameters.{key}", str(exc)) from None
    try:
        validate(info, parameters)  # together: window with start/end
    except ImsnbError as exc:
        raise bad("parameters", str(exc)) from None
    return parameters


def _environment(
    table: dict, info: NotebookInfo, notebook: str, environments: dict, bad: Callable[[str, str], BadParameter]
) -> str:
    """The schedule's `environment`: "default", or a table of this file the notebook can take."""
    environment = table.get("environment", "default")
    if not isinstance(environment, str) or not environment:
        raise bad("environment", 'must be the name of an [environments.NAME] table, or "default"')
    if environment != "default":
        if "environment" not in info.parameters:
            raise bad("environment", f"notebook {notebook!r} takes no environment parameter")
        if not isinstance(environments.get(environment), dict):
            known = ", ".join(sorted(environments)) or "none"
            raise bad("environment", f"no [environments.{environment}] in this file (known: {known})")
    return environment


def _refuse_secret(where: str, key: str, value: Any) -> None:
    """The same refusal as [environments]: a secret-looking key, or a value that holds a secret by the one rule of
    every place a value enters (`config.secret_in_value`); plus the parameters' own (values of secret environment
    variables)."""

    last = key.rsplit(".", 1)[-1]
    if config.SECRET_ENV_NAME.search(last) or config.secret_in_value(value):
        raise BadParameter(f"{where} {key} looks like a secret: set it in the environment")
    try:
        check_not_secret(last, value)
    except BadParameter:
        raise BadParameter(f"{where} {key} looks like a secret: set it in the environment") from None


def check_cron(expression: Any, bad=None) -> str:
    """A five-field cron expression (UTC) that cron(8), croniter and Airflow all read the same way."""
    # lazy: croniter only where a cron is read; `imsnb --help` stays quick
    from croniter import croniter

    bad = bad or BadParameter
    if not isinstance(expression, str):
        raise bad(f'must be a string of five fields, e.g. "0 */4 * * *", not {expression!r}')
    fields = expression.split()
    hint = 'five fields in UTC: minute hour day-of-month month day-of-week, e.g. "0 */4 * * *"'
    if len(fields) != 5:
        raise bad(f"{expression!r} has {len(fields)} field(s): use {hint}")
    for part in fields:
        words = {w.lower() for w in _CRON_NAMES.findall(part)}
        if not _CRON_FIELD.fullmatch(part) or words - _CRON_WORDS:
            raise bad(f"{expression!r}: {part!r} is not cron syntax: use {hint}")
    if not croniter.is_valid(expression):
        raise bad(f"{expression!r} is not a valid cron expression: use {hint}")
    try:
        croniter(expression, datetime(2026, 1, 1, tzinfo=UTC)).get_next(datetime)
    except Exception as exc:  # noqa: BLE001 - croniter's errors for impossible dates (e.g. 30 February)
        raise bad(f"{expression!r} never fires ({' '.join(str(exc).split())})") from None
    return " ".join(fields)


def check_incident_pattern(pattern: str, schedule: str, notebook: str, environment: str, bad=None) -> None:
    bad = bad or BadParameter
    try:
        names = [name for _, name, spec, conv in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        raise bad(f"{pattern!r} is not a pattern ({exc}): e.g. {DEFAULT_INCIDENT!r}") from None
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise bad(f"unknown placeholder {{{unknown[0]}}} in {pattern!r} (known: {', '.join(PLACEHOLDERS)})")
    example = incident_id(pattern, schedule, notebook, environment, datetime(2026, 12, 31, tzinfo=UTC))

    try:
        check_incident_id(example)
    except ImsnbError as exc:
        raise bad(f"{pattern!r} gives {exc}") from None


def incident_id(pattern: str, schedule: str, notebook: str, environment: str, at: datetime) -> str:
    at = at.astimezone(UTC)
    return pattern.format(
        schedule=schedule, notebook=notebook, environment=environment, date=f"{at:%Y%m%d}", month=f"{at:%Y%m}"
    )


def incident_for(schedule: Schedule, at: datetime) -> str:
    """The incident id a run of `schedule` starting at `at` (UTC) is filed under."""
    return incident_id(schedule.incident, schedule.name, schedule.notebook, schedule.environment, at)


def next_runs(schedule: Schedule, after: datetime | None = None, count: int = 3) -> list[datetime]:
    """The next `count` run times after `after` (default now), in UTC."""
    # lazy: croniter only where a cron is read; `imsnb --help` stays quick
    from croniter import croniter

    start = (after or datetime.now(UTC)).astimezone(UTC)
    it = croniter(schedule.cron, start)
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]
