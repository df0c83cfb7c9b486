"""Commands that print what imsnb has and needs: `imsnb list` (the notebooks and their parameters) and
`imsnb iam-policy` (the AWS permissions)."""

# Lazy imports: each command imports the library when it runs (imsnb/cli/__init__.py), so `imsnb --help` and a
# mistyped flag answer without loading pandas, papermill, psycopg or boto3 (tests/test_startup.py).

from __future__ import annotations

import argparse


def add_list(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("list", help="every notebook with its purpose and parameters").set_defaults(handler=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.runs.catalogue import list_notebooks

    for info in list_notebooks():
        print(f"{info.name}: {info.title}")
        if info.purpose:
            print(f"    {info.purpose}")
        for p in info.parameters.values():
            default = "None" if p.default is None else repr(p.default)
            print(f"    -p {p.name:<22} {p.type + ('?' if p.optional else ''):<6} default {default:<12} {p.help}")
        print()
    return 0


def add_iam_policy(sub: argparse._SubParsersAction) -> None:
    iam = sub.add_parser("iam-policy", help="print the least-privilege read-only IAM policy for the AWS diagnostics")
    iam.add_argument("--actions", action="store_true", help="add the statement the two-key remediation actions need")
    iam.add_argument(
        "--archive", metavar="S3_URL", help="add s3:PutObject and s3:GetObject under s3://bucket/prefix for --archive"
    )
    iam.set_defaults(handler=cmd_iam_policy)


def cmd_iam_policy(args: argparse.Namespace) -> int:
    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.archive import parse_archive_url

    # lazy: imsnb.tables pulls in pandas (~2 s); the runner's parent renders reports without it otherwise
    from imsnb.aws import iam_policy_json

    archive = parse_archive_url(args.archive) if args.archive else None
    print(iam_policy_json(remediation=args.actions, archive=archive))
    return 0
