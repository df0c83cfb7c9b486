"""`imsnb archive` (list incidents, show one) and `imsnb summarize` (summary.json from an executed notebook)."""

from __future__ import annotations

import argparse
import sys

from imsnb.cli.common import add_group, add_outputs_option


def add_archive(sub: argparse._SubParsersAction) -> None:
    commands = add_group(sub, "archive", "the incident archive: list incidents, show one", cmd_archive)
    add_outputs_option(commands.add_parser("list", help="incidents, newest first, with worst severity and run count"))
    show = add_outputs_option(commands.add_parser("show", help="an incident's runs, findings and actions"))
    show.add_argument("incident", help="incident id (see `imsnb archive list`)")


def cmd_archive(args: argparse.Namespace) -> int:
    from imsnb import archive

    if args.archive_command == "list":
        incidents = archive.list_incidents(args.outputs)
        if not incidents:
            print(f"no incidents in {args.outputs}")
        for inc in incidents:
            failed = f", {inc.failed} failed" if inc.failed else ""
            print(f"{inc.id:<30} {inc.last_started:<21} {inc.worst or 'none':<9} {len(inc.runs)} run(s){failed}")
        return 0
    for line in archive.describe_incident(archive.load_incident(args.incident, args.outputs)):
        print(line)
    return 0


def add_summarize(sub: argparse._SubParsersAction) -> None:
    summ = sub.add_parser("summarize", help="rebuild summary.json from an executed notebook (plain papermill too)")
    summ.add_argument("notebook", help="path to an executed .ipynb")
    summ.add_argument("--output", "-o", help="write here (default: print to stdout)")
    summ.set_defaults(handler=cmd_summarize)


def cmd_summarize(args: argparse.Namespace) -> int:
    from imsnb.cli.output import outcome_text
    from imsnb.runs.summary import summary_of_file, summary_text, write_summary

    summary = summary_of_file(args.notebook)
    if not args.output:
        sys.stdout.write(summary_text(summary))
        return 0
    out = write_summary(summary, args.output)
    print(f"wrote {out}: {summary['notebook']} {outcome_text(summary)}")
    return 0
