"""Schedules: the runbook's routine as `[schedules.NAME]` tables of imsnb.toml, validated; their next run times (UTC),
their last run in the archive, one scheduled run, and the crontab lines for one host.

    [schedules.health_check]
    notebook = "health_check"                  # default: the table's name
    cron = "0 */4 * * *"                       # five fields, always UTC
    parameters = { window = "4h" }             # checked against the notebook's parameters cell
    environment = "prod"                       # [environments.prod] of the same file; default "default"
    incident = "sched-{notebook}-{date}"       # {schedule} {notebook} {environment} {date} (yyyymmdd) {month} (yyyymm)
    archive = "s3://ims-incidents/scheduled"   # default: IMSNB_ARCHIVE when the run starts, else none
    timeout = 600                              # seconds a cell may run

Without an imsnb.toml, or with one that has no `schedules` table, the runbook's own timetable (`DEFAULT_TIMETABLE`).
Cron, crontab lines and Airflow DAGs all make a run through `run_schedule`: one place says what a scheduled run is.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import string
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imsnb import config
from imsnb.errors import BadParameter, ImsnbError

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


# ---------------------------------------------------------------- loading and validation


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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BadParameter(f"{path}: cannot read it: {' '.join(str(exc).split())}") from None
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

    notebook = table.get("notebook", name)
    if not isinstance(notebook, str) or not notebook:
        raise bad("notebook", "must be a notebook name (see `imsnb list`)")
    from imsnb.runs.catalogue import find_notebook, load_info

    try:
        info = load_info(find_notebook(notebook))
    except ImsnbError as exc:
        raise bad("notebook", str(exc)) from None

    if "cron" not in table:
        raise bad("cron", 'is missing: five fields in UTC, e.g. cron = "0 */4 * * *"')
    cron = check_cron(table["cron"], lambda problem: bad("cron", problem))

    parameters = table.get("parameters", {})
    if not isinstance(parameters, dict):
        raise bad("parameters", 'must be a table, e.g. parameters = { window = "4h" }')
    for key, value in parameters.items():
        _refuse_secret(where, f"parameters.{key}", value)
        if key in RESERVED_PARAMETERS:
            raise bad(f"parameters.{key}", RESERVED_PARAMETERS[key])
    from imsnb.runs.parameters import validate

    for key, value in parameters.items():
        try:
            validate(info, {key: value})
        except ImsnbError as exc:
            raise bad(f"parameters.{key}", str(exc)) from None
    try:
        validate(info, parameters)  # together: window with start/end
    except ImsnbError as exc:
        raise bad("parameters", str(exc)) from None

    environment = table.get("environment", "default")
    if not isinstance(environment, str) or not environment:
        raise bad("environment", 'must be the name of an [environments.NAME] table, or "default"')
    if environment != "default":
        if "environment" not in info.parameters:
            raise bad("environment", f"notebook {notebook!r} takes no environment parameter")
        if not isinstance(environments.get(environment), dict):
            known = ", ".join(sorted(environments)) or "none"
            raise bad("environment", f"no [environments.{environment}] in this file (known: {known})")

    incident = table.get("incident", DEFAULT_INCIDENT)
    if not isinstance(incident, str):
        raise bad("incident", f"must be a pattern such as {DEFAULT_INCIDENT!r}")
    check_incident_pattern(incident, name, notebook, environment, lambda problem: bad("incident", problem))

    archive = table.get("archive")
    if archive is not None:
        from imsnb.archive import parse_archive_url

        if not isinstance(archive, str):
            raise bad("archive", "must be an S3 URL: s3://bucket or s3://bucket/prefix")
        try:
            parse_archive_url(archive)
        except ImsnbError as exc:
            raise bad("archive", str(exc)) from None

    from imsnb.runs.parameters import is_positive_seconds

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


def _refuse_secret(where: str, key: str, value: Any) -> None:
    """The same refusal as [environments]: a secret-looking key or a URL with a password; plus the parameters'
    own checks (AWS key ids, private keys, values of secret environment variables)."""
    from imsnb.runs.parameters import check_not_secret

    last = key.rsplit(".", 1)[-1]
    if config.SECRET_ENV_NAME.search(last) or (isinstance(value, str) and config.url_password(value)):
        raise BadParameter(f"{where} {key} looks like a secret: set it in the environment")
    try:
        check_not_secret(last, value)
    except BadParameter:
        raise BadParameter(f"{where} {key} looks like a secret: set it in the environment") from None


def check_cron(expression: Any, bad=None) -> str:
    """A five-field cron expression (UTC) that cron(8), croniter and Airflow all read the same way."""
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
    from imsnb.runs.parameters import check_incident_id

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


# ---------------------------------------------------------------- times and last runs


def next_runs(schedule: Schedule, after: datetime | None = None, count: int = 3) -> list[datetime]:
    """The next `count` run times after `after` (default now), in UTC."""
    from croniter import croniter

    start = (after or datetime.now(UTC)).astimezone(UTC)
    it = croniter(schedule.cron, start)
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]


def _incident_regex(schedule: Schedule) -> re.Pattern:
    known = {"schedule": schedule.name, "notebook": schedule.notebook, "environment": schedule.environment}
    parts = []
    for literal, name, _, _ in string.Formatter().parse(schedule.incident):
        parts.append(re.escape(literal))
        if name in known:
            parts.append(re.escape(known[name]))
        elif name == "date":
            parts.append(r"\d{8}")
        elif name == "month":
            parts.append(r"\d{6}")
    return re.compile("".join(parts))


def last_run(schedule: Schedule, outputs: Path | str = "outputs") -> dict[str, Any] | None:
    """The newest run of this schedule in the local archive (summary.json plus `folder`, the run folder's path), or
    None. A run is this schedule's when its incident matches the pattern, its notebook is the schedule's and its
    recorded parameters include the schedule's (two schedules of one notebook differ by parameters/environment)."""
    from imsnb.archive import read_runs
    from imsnb.runs.catalogue import find_notebook, load_info
    from imsnb.runs.parameters import validate

    outputs = Path(outputs)
    if not outputs.is_dir():
        return None
    try:
        expected = validate(load_info(find_notebook(schedule.notebook)), schedule.run_parameters())
    except ImsnbError:
        expected = schedule.run_parameters()
    pattern = _incident_regex(schedule)
    newest = None
    for incident in outputs.iterdir():
        if incident.name.startswith(".") or not incident.is_dir() or not pattern.fullmatch(incident.name):
            continue
        for run in read_runs(incident):
            recorded = run.get("parameters") or {}
            if run.get("notebook") != schedule.notebook:
                continue
            if any(recorded.get(k) != v for k, v in expected.items()):
                continue
            key = (str(run.get("started_at") or ""), run["folder"])
            if newest is None or key > newest[0]:
                newest = (key, {**run, "folder": str(incident / run["folder"])})
    return newest[1] if newest else None


def describe_schedules(
    schedules: dict[str, Schedule], outputs: Path | str = "outputs", now: datetime | None = None
) -> list[str]:
    """Lines for `imsnb schedule list`: each schedule, its next three runs and its last run (times in UTC)."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    source = next(iter(schedules.values())).source if schedules else "imsnb.toml"
    lines = [f"schedules from {source}; every time is UTC (now {_iso(now)})"]
    if not schedules:
        lines.append("  none: the file's [schedules] table is empty")
    for s in schedules.values():
        extra = "" if s.environment == "default" else f", environment {s.environment}"
        params = " ".join(f"-p {k} {v}" for k, v in s.parameters.items())
        lines.append("")
        lines.append(f"{s.name}: notebook {s.notebook}, cron {s.cron!r} UTC{extra}{', ' + params if params else ''}")
        lines.append(f"    next runs (UTC): {', '.join(_iso(t) for t in next_runs(s, now))}")
        last = last_run(s, outputs)
        if last is None:
            lines.append(f"    last run: none in {outputs}")
        else:
            lines.append(
                f"    last run: {last.get('started_at') or '?'} (UTC), status {last.get('status') or '?'}, "
                f"worst {last.get('severity') or 'none'}, {last['folder']}"
            )
        archive = s.archive_url()
        lines.append(f"    incident {s.incident}, archive {archive or 'none (local only)'}")
    return lines


# ---------------------------------------------------------------- one scheduled run


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
    from imsnb import archive as archive_mod
    from imsnb import notify
    from imsnb.runs.execute import run_notebook

    url = schedule.archive_url()
    if url:
        archive_mod.parse_archive_url(url)  # a bad IMSNB_ARCHIVE is bad input, before the run
    at = at or datetime.now(UTC)
    with _config_of(schedule):
        result = run_notebook(
            schedule.notebook,
            schedule.run_parameters(),
            incident_id=incident_for(schedule, at),
            outputs=outputs,
            timeout_s=schedule.timeout_s,
            allow_actions=False,  # a scheduled run plans actions in its report, never applies them
        )
        keys, error = [], None
        if url:
            try:
                keys = archive_mod.upload(url, [result.folder], result.folder.parent)
            except archive_mod.UploadFailed as exc:
                error = str(exc)
        # A scheduled run tells people when the state changes (a new finding at a level, an escalation, a
        # resolution), not every time, through the [notify] routes of the schedule's imsnb.toml (state kept in the
        # archive). A channel that fails is a line on stderr and a record in summary.json, never a failed run.
        if config.toml_section("notify") is not None:
            notify.deliver([result], mode="changes", archive=url if keys else None)
    return ScheduledRun(result, url, keys, error)


@contextlib.contextmanager
def _config_of(schedule: Schedule) -> Iterator[None]:
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


# ---------------------------------------------------------------- crontab


def default_log_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/log/imsnb")
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local/state") / "imsnb"


def imsnb_command() -> list[str]:
    """How cron starts this same imsnb: the console script beside this interpreter, else `python -m imsnb.cli`."""
    script = Path(sys.executable).parent / "imsnb"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "imsnb.cli"]


def crontab_lines(
    schedules: dict[str, Schedule],
    *,
    workdir: Path,
    outputs: Path,
    log_dir: Path,
    config_path: Path | None,
    env_file: Path | None = None,
    command: list[str] | None = None,
) -> list[str]:
    """A crontab for one host: CRON_TZ=UTC, one line per schedule running `imsnb schedule run NAME` under
    `flock -n` (a run still going makes the next one skip, never pile up), output appended to NAME.log."""
    command = command or imsnb_command()
    q = shlex.quote
    header = [
        f"# imsnb schedules from {config_path or 'the runbook default timetable (no imsnb.toml)'}",
        "# install: imsnb schedule crontab ... > imsnb.cron && crontab imsnb.cron   (replaces this user's crontab;"
        " merge by hand otherwise; `| crontab -` would install an empty one if this command is refused)",
        "# Times are UTC: cronie honours CRON_TZ; a cron that ignores it (Debian's may) needs the host clock in UTC.",
        "# flock -n skips a run while the previous one of the same schedule still runs; output goes to NAME.log.",
        "CRON_TZ=UTC",
        "SHELL=/bin/sh",
    ]
    lines = header
    for s in schedules.values():
        log = log_dir / f"{s.name}.log"
        lock = log_dir / f"{s.name}.lock"
        run = [*command, "schedule", "run", s.name, "--outputs", str(outputs)]
        env = f"IMSNB_CONFIG={q(str(config_path))} " if config_path else ""
        prefix = f"set -a && . {q(str(env_file))} && set +a && " if env_file else ""
        shell = (
            f"{prefix}mkdir -p {q(str(log_dir))} && cd {q(str(workdir))} && {env}"
            f"flock -n {q(str(lock))} {' '.join(q(part) for part in run)} >> {q(str(log))} 2>&1"
        )
        lines += [f"# {s.name}: notebook {s.notebook}", f"{s.cron} {_cron_escape(shell)}"]
    # The counter history between incidents (`imsnb record`, one round a minute): what a later run's `window`
    # starts from. Cheap: a few catalogue reads of every configured target.
    record = [*command, "record", "--history", str(outputs / ".history.sqlite")]
    env = f"IMSNB_CONFIG={q(str(config_path))} " if config_path else ""
    prefix = f"set -a && . {q(str(env_file))} && set +a && " if env_file else ""
    lock, log = log_dir / "record.lock", log_dir / "record.log"
    shell = (
        f"{prefix}mkdir -p {q(str(log_dir))} && cd {q(str(workdir))} && {env}"
        f"flock -n {q(str(lock))} {' '.join(q(part) for part in record)} >> {q(str(log))} 2>&1"
    )
    lines += [
        "# record: counter snapshots of every configured target for the history",
        f"* * * * * {_cron_escape(shell)}",
    ]
    return lines


def _cron_escape(command: str) -> str:
    """cron turns an unescaped % into a newline (stdin for the command): escape it."""
    return command.replace("%", "\\%")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
