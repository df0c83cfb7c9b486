"""`imsnb archive` (list incidents, show one, draft its post-mortem) and `imsnb summarize` (summary.json from an
executed notebook)."""

# Lazy imports: each command imports the library when it runs (imsnb/cli/__init__.py), so `imsnb --help` and a
# mistyped flag answer without loading pandas, papermill, psycopg or boto3 (tests/test_startup.py).

from __future__ import annotations

import argparse
import sys

from imsnb.cli.common import add_group, add_outputs_option


def add_archive(sub: argparse._SubParsersAction) -> None:
    commands = add_group(sub, "archive", "the incident archive: list incidents, show one", cmd_archive)
    add_outputs_option(commands.add_parser("list", help="incidents, newest first, with worst severity and run count"))
    show = add_outputs_option(commands.add_parser("show", help="an incident's runs, findings and actions"))
    show.add_argument("incident", help="incident id (see `imsnb archive list`)")
    draft = add_outputs_option(
        commands.add_parser("postmortem", help="write the incident's post-mortem draft (Markdown) from its archive")
    )
    draft.add_argument("incident", help="incident id (see `imsnb archive list`)")
    draft.add_argument(
        "--ticket",
        metavar="KEY",
        nargs="?",
        const="new",
        help="also attach the draft to this Jira issue (PROJ-123); alone (or `new`), to the incident's own issue",
    )


def cmd_archive(args: argparse.Namespace) -> int:
    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb import archive

    if args.archive_command == "list":
        incidents = archive.list_incidents(args.outputs)
        if not incidents:
            print(f"no incidents in {args.outputs}")
        for inc in incidents:
            failed = f", {inc.failed} failed" if inc.failed else ""
            print(f"{inc.id:<30} {inc.last_started:<21} {inc.worst or 'none':<9} {len(inc.runs)} run(s){failed}")
        return 0
    if args.archive_command == "postmortem":
        return _postmortem(args)
    for line in archive.describe_incident(archive.load_incident(args.incident, args.outputs)):
        print(line)
    return 0


def _postmortem(args: argparse.Namespace) -> int:
    """Write the draft; with --ticket attach it (a refused attachment is one line on stderr and exit 1: the draft
    is written all the same)."""
    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb import archive

    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.archive.postmortem import write_postmortem_draft

    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.errors import BadParameter

    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.notify import jira

    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.notify.http import DeliveryFailed

    key = args.ticket
    if key == jira.NEW:  # the issue `--ticket new` opened for this incident (or the one postmortem.json names)
        key = archive.ticket_key(archive.load_incident(args.incident, args.outputs).folder)
        if key is None:
            raise BadParameter(
                f"incident {args.incident!r} has no Jira issue yet: pass --ticket KEY, or run it with --ticket new"
            )
    key = jira.check_ticket(key) if key else None
    path = write_postmortem_draft(args.incident, args.outputs)
    print(f"wrote {path}")
    if key is None:
        return 0
    try:
        print(f"{key}: {jira.attach(jira.site(), key, [(path.name, path)])}")
    except DeliveryFailed as exc:
        print(f"imsnb: post-mortem draft not attached to {key}: {exc}", file=sys.stderr)
        return 1
    return 0


def add_summarize(sub: argparse._SubParsersAction) -> None:
    summ = sub.add_parser("summarize", help="rebuild summary.json from an executed notebook (plain papermill too)")
    summ.add_argument("notebook", help="path to an executed .ipynb")
    summ.add_argument("--output", "-o", help="write here (default: print to stdout)")
    summ.set_defaults(handler=cmd_summarize)


def cmd_summarize(args: argparse.Namespace) -> int:
    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.cli.output import outcome_text

    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.runs.summary import summary_of_file, summary_text, write_summary

    summary = summary_of_file(args.notebook)
    if not args.output:
        sys.stdout.write(summary_text(summary))
        return 0
    out = write_summary(summary, args.output)
    print(f"wrote {out}: {summary['notebook']} {outcome_text(summary)}")
    return 0
