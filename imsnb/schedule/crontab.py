"""The crontab for one host: CRON_TZ=UTC, one `imsnb schedule run NAME` line per schedule under `flock -n`, and
`imsnb record` every minute for the counter history.

Every value that reaches a line (names, notebook paths, the incident pattern, the config, outputs, log and
working folders, the env file, the command) is refused when it holds a control character: shlex quoting protects a
shell word, not a crontab, where a newline starts a new entry (`* * * * * touch ...`) and a comment line is not
quoted at all."""

from __future__ import annotations

import os
import shlex
import sys
import unicodedata
from pathlib import Path

from imsnb.errors import BadParameter
from imsnb.schedule.timetable import Schedule


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
    for what, value in [
        ("the working directory", workdir),
        ("--outputs", outputs),
        ("--log-dir", log_dir),
        ("the config file", config_path),
        ("--env-file", env_file),
        *(("the imsnb command", part) for part in command),
    ]:
        check_line_safe(what, value)
    for s in schedules.values():
        for field_name in ("name", "notebook", "cron", "environment", "incident", "archive"):
            check_line_safe(f"[schedules.{s.name!r}] {field_name}", getattr(s, field_name))
    header = [
        f"# imsnb schedules from {config_path or 'the runbook default timetable (no imsnb.toml)'}",
        "# install: imsnb schedule crontab ... > imsnb.cron && crontab imsnb.cron   (replaces this user's crontab;"
        " merge by hand otherwise; `| crontab -` would install an empty one if this command is refused)",
        "# Times are UTC: cronie honours CRON_TZ; a cron that ignores it (Debian's may) needs the host clock in UTC.",
        "# flock -n skips a run while the previous one of the same schedule still runs; output goes to NAME.log.",
        "CRON_TZ=UTC",
        "SHELL=/bin/sh",
    ]
    q = shlex.quote
    env = f"IMSNB_CONFIG={q(str(config_path))} " if config_path else ""
    prefix = f"set -a && . {q(str(env_file))} && set +a && " if env_file else ""

    def locked(name: str, argv: list[str]) -> str:
        """`argv` under `flock -n` on NAME.lock in the working directory, its output appended to NAME.log."""
        lock, log = log_dir / f"{name}.lock", log_dir / f"{name}.log"
        shell = (
            f"{prefix}mkdir -p {q(str(log_dir))} && cd {q(str(workdir))} && {env}"
            f"flock -n {q(str(lock))} {' '.join(q(part) for part in argv)} >> {q(str(log))} 2>&1"
        )
        return _cron_escape(shell)

    lines = header
    for s in schedules.values():
        run = [*command, "schedule", "run", s.name, "--outputs", str(outputs)]
        lines += [f"# {s.name}: notebook {q(s.notebook)}", f"{s.cron} {locked(s.name, run)}"]
    # The counter history between incidents (`imsnb record`, one round a minute): what a later run's `window`
    # starts from. Cheap: a few catalogue reads of every configured target.
    record = [*command, "record", "--history", str(outputs / ".history.sqlite")]
    lines += [
        "# record: counter snapshots of every configured target for the history",
        f"* * * * * {locked('record', record)}",
    ]
    return lines


def check_line_safe(what: str, value: object) -> None:
    """BadParameter when `value` holds a control character (a newline, carriage return, NUL, escape, DEL, C1) or a
    Unicode line separator: in a crontab it would end the line and start an entry of its own."""
    if value is None:
        return
    text = str(value)
    bad = next((c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:
        raise BadParameter(
            f"crontab: {what} {text[:60]!r} holds the control character {bad!r}: cron would read it as a line break "
            "or worse; rename it without control characters"
        )


def _cron_escape(command: str) -> str:
    """cron turns an unescaped % into a newline (stdin for the command): escape it."""
    return command.replace("%", "\\%")
