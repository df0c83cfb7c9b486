"""The `imsnb` command: argument parsing and printing only, over the library; library errors become one-line
messages. Each command is a parser (`add_*`) and a `cmd_*` beside it in the module of its group (`runs`, `archive`,
`sandbox`, `schedule`, `reference`, `state`); each imports what it needs when it runs, so `import imsnb.cli` (and
`--help`) stays light.

Exit status: 0 below --fail-on, 1 at or above it, 2 bad input, 3 the notebook failed or timed out; a command that
runs several notebooks (suite, triage --run-suggested) exits with the worst of them (3 over 1 over 0). A failed
archive upload prints one line on stderr and leaves the exit status as it was (the local run folders are complete).
"""

from __future__ import annotations

import argparse
import os
import sys

from imsnb import __version__
from imsnb.cli import archive, reference, runs, sandbox, schedule, state
from imsnb.cli.common import Parser
from imsnb.errors import ImsnbError
from imsnb.runs.exits import EXIT_BAD_INPUT
from imsnb.terminal import SafeStream

# The subcommands in the order `imsnb --help` lists them.
COMMANDS = (
    reference.add_list,
    runs.add_run,
    runs.add_triage,
    runs.add_suite,
    archive.add_archive,
    archive.add_summarize,
    sandbox.add_lab,
    sandbox.add_demo,
    reference.add_iam_policy,
    sandbox.add_sandbox,
    schedule.add_schedule,
    schedule.add_record,
    state.add_state,
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="imsnb", description="Executable incident-response notebooks for the IMS 2.0 runbook.")
    parser.add_argument("--version", action="version", version=f"imsnb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the command whose --help lists the options, not the top level's
        command = " ".join(part for part in (args.command, getattr(args, f"{args.command}_command", None)) if part)
        extra = " ".join(unknown)
        parser.exit(EXIT_BAD_INPUT, f"imsnb: error: unrecognized arguments: {extra} (see `imsnb {command} --help`)\n")
    saved_streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)  # messages carry text from targets
    try:
        return args.handler(args)
    except ImsnbError as exc:
        print(f"imsnb: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `imsnb archive show ID | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        sys.stdout, sys.stderr = saved_streams


__all__ = ["build_parser", "main"]
