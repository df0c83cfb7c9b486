"""`imsnb schedule` (list, run, crontab: the runbook's routine from imsnb.toml) and `imsnb record` (counter
snapshots between incidents)."""

# Lazy imports: each command imports the library when it runs (imsnb/cli/__init__.py), so `imsnb --help` and a
# mistyped flag answer without loading pandas, papermill, psycopg or boto3 (tests/test_startup.py).

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from imsnb.cli.common import add_group, add_outputs_option
from imsnb.cli.output import print_result
from imsnb.errors import ImsnbError


def add_schedule(sub: argparse._SubParsersAction) -> None:
    routine = "the runbook's routine: [schedules.NAME] of imsnb.toml (times in UTC)"
    commands = add_group(sub, "schedule", routine, cmd_schedule)
    add_outputs_option(commands.add_parser("list", help="each schedule, its next three runs (UTC) and its last run"))
    run = add_outputs_option(
        commands.add_parser("run", help="one run of a schedule, exactly as cron or Airflow makes it")
    )
    run.add_argument("name", help="schedule name (see `imsnb schedule list`)")
    cron = commands.add_parser("crontab", help="crontab lines for one host (CRON_TZ=UTC, flock, a log per schedule)")
    add_outputs_option(cron, "archive folder the runs write to (default: ./outputs)")
    cron.add_argument("--log-dir", help="where NAME.log and NAME.lock go (default /var/log/imsnb as root)")
    cron.add_argument("--env-file", help="a file of VAR=value lines each run sources first (targets, secrets)")


def cmd_schedule(args: argparse.Namespace) -> int:
    from imsnb import config
    from imsnb.schedule import crontab_lines, default_log_dir, describe_schedules, get_schedule, load_schedules

    if args.schedule_command == "list":
        for line in describe_schedules(load_schedules(), args.outputs):
            print(line)
        return 0
    if args.schedule_command == "run":
        from imsnb.schedule import run_schedule

        scheduled = run_schedule(get_schedule(args.name), outputs=args.outputs)
        print_result(scheduled.result)
        if scheduled.archive_error:
            print(f"imsnb: warning: {scheduled.archive_error} (the local run folder is complete)", file=sys.stderr)
        elif scheduled.archive:
            print(f"archived {len(scheduled.archived_keys)} file(s) to {scheduled.archive}")
        return scheduled.result.exit_code
    env_file = Path(args.env_file).resolve() if args.env_file else None
    if env_file is not None and not env_file.is_file():
        raise ImsnbError(f"--env-file {args.env_file} does not exist: give a file of VAR=value lines")
    found = config.config_file()
    lines = crontab_lines(
        load_schedules(found),
        workdir=Path.cwd(),
        outputs=Path(args.outputs).resolve(),
        log_dir=Path(args.log_dir).resolve() if args.log_dir else default_log_dir(),
        config_path=found.resolve() if found else None,
        env_file=env_file,
    )
    print("\n".join(lines))
    return 0


def add_record(sub: argparse._SubParsersAction) -> None:
    rec = sub.add_parser("record", help="store counter snapshots of every configured target in the history")
    rec.add_argument("--every", metavar="DURATION", help="one round every DURATION (e.g. 60s); without --for: forever")
    rec.add_argument("--for", dest="duration", metavar="DURATION", help="stop after DURATION (e.g. 2h)")
    rec.add_argument(
        "--history", metavar="PATH", help="a SQLite file to record into (default: IMSNB_STATE_URL, else IMSNB_HISTORY)"
    )
    rec.set_defaults(handler=cmd_record)


def cmd_record(args: argparse.Namespace) -> int:
    """One round of snapshots (cron), or rounds --every for --for (a scheduler, a terminal); each line stamped."""
    from datetime import UTC, datetime

    from imsnb.record import record_until_stopped

    def printed(lines: list[str]) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for line in lines:
            print(f"{stamp} {line}", flush=True)

    try:
        rounds, store = record_until_stopped(args.every, args.duration, history_path=args.history, on_round=printed)
    except KeyboardInterrupt:
        return 0
    print(f"{rounds} round(s) recorded into {store}", file=sys.stderr)
    return 0
