"""What the commands share: the parser class (errors as one line, exit 2) and the option sets repeated across
commands. What they print is `imsnb.cli.output`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from imsnb.errors import ImsnbError
from imsnb.runs.exits import EXIT_BAD_INPUT
from imsnb.sandbox import SCENARIO_NAMES

OUTPUTS_HELP = "archive folder (default: ./outputs)"
SCENARIOS = ", ".join(SCENARIO_NAMES)


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage dump → one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"imsnb: error: {message} (see `{self.prog} --help`)\n")


def add_group(
    sub: argparse._SubParsersAction, name: str, help: str, handler: Callable[[argparse.Namespace], int]
) -> argparse._SubParsersAction:
    """A command with commands of its own (`imsnb archive list`), all handled by `handler`; theirs go in
    `NAME_command`. Returns what to add them to."""
    group = sub.add_parser(name, help=help)
    group.set_defaults(handler=handler)
    return group.add_subparsers(dest=f"{name}_command", required=True, parser_class=Parser)


def add_outputs_option(command: argparse.ArgumentParser, help: str = OUTPUTS_HELP) -> argparse.ArgumentParser:
    command.add_argument("--outputs", default="outputs", help=help)
    return command


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """What the run options (`add_run_options`) say, as keyword arguments of run_notebook, run_suite, run_triage."""
    return {"outputs": args.outputs, "fail_on": args.fail_on, "timeout_s": args.timeout}


def add_run_options(command: argparse.ArgumentParser, parameter_help: str, incident_help: str) -> None:
    """The options every command that runs notebooks shares: -p, --incident, --fail-on, --outputs, --timeout."""
    command.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help=parameter_help,
    )
    command.add_argument("--incident", help=f"incident or ticket id {incident_help}")
    command.add_argument(
        "--fail-on",
        default="ERROR",
        metavar="SEVERITY",
        help="exit 1 when a worst finding is at or above: OK, INFO, WARNING, ERROR or CRITICAL (default ERROR)",
    )
    add_outputs_option(command)
    command.add_argument("--timeout", type=float, default=600, help="seconds a single cell may run (default 600, > 0)")


def add_delivery_options(command: argparse.ArgumentParser) -> None:
    """What follows the runs, for every command that runs notebooks: --archive, --notify, --ticket."""
    command.add_argument(
        "--archive",
        default=os.environ.get("IMSNB_ARCHIVE") or None,
        metavar="s3://BUCKET/PREFIX",
        help="also upload the run folders and index.html there (default: $IMSNB_ARCHIVE)",
    )
    command.add_argument(
        "--notify",
        choices=("always", "changes", "never"),
        default="never",
        help="send the findings to the [notify] routes of imsnb.toml: always, on changes only, or never (default)",
    )
    command.add_argument(
        "--ticket",
        default=os.environ.get("IMSNB_TICKET") or None,
        metavar="KEY",
        help="attach report.html and summary.json to this Jira issue and comment the findings; `new` opens the "
        "incident's issue in [jira] project once and reuses it on later runs (default: $IMSNB_TICKET)",
    )


def parameters(args: argparse.Namespace) -> dict[str, str]:
    """The -p NAME VALUE pairs; a name given twice is bad input."""
    params = dict(args.parameter)
    if len(params) != len(args.parameter):
        raise ImsnbError("a parameter is given twice: pass each -p NAME once")
    return params


def check_delivery(args: argparse.Namespace) -> None:
    """Before any run: a bad --archive URL, --notify set-up or --ticket is bad input."""
    from imsnb import delivery  # lazy: archive and notify pull in boto3 and pandas; `imsnb --help` stays quick

    delivery.check_delivery(args.archive, args.notify, args.ticket)


def deliver(args: argparse.Namespace, results: list) -> None:
    """After the runs: `imsnb.delivery.deliver`, printed (a failed upload or channel is a stderr line only)."""
    from imsnb import delivery  # lazy, as above

    done = delivery.deliver(results, archive=args.archive, notify=args.notify, ticket=args.ticket)
    if done.archived_keys:
        folder = results[0].folder.parent.name
        print(f"archived {len(done.archived_keys)} file(s) to {args.archive.rstrip('/')}/{folder}/")
    if done.archive_error:
        print(f"imsnb: warning: {done.archive_error} (the local run folders are complete)", file=sys.stderr)
    for r in done.notifications:
        if r["status"] != "failed":
            print(f"notify {r['channel']}: {r['status']}" + (f" ({r['detail']})" if r.get("detail") else ""))
