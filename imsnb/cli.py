"""The `imsnb` command: thin commands over the library; library errors become one-line messages.

Exit status: 0 below --fail-on, 1 at or above it, 2 bad input, 3 the notebook failed or timed out.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from imsnb import __version__
from imsnb.errors import ImsnbError
from imsnb.findings import Severity
from imsnb.sandbox.scenarios import SCENARIOS

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage dump → one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"imsnb: error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="imsnb", description="Executable incident-response notebooks for the IMS 2.0 runbook.")
    parser.add_argument("--version", action="version", version=f"imsnb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="every notebook with its purpose and parameters")

    run = sub.add_parser("run", help="run a notebook headlessly into outputs/<incident>/<time>-<notebook>/")
    run.add_argument("notebook", help="notebook name (see `imsnb list`) or path to an .ipynb")
    run.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a notebook parameter (repeatable)",
    )
    run.add_argument("--incident", help="incident or ticket id the run is filed under (default: adhoc)")
    run.add_argument("--fail-on", default="ERROR", help="exit 1 when the worst finding is at or above (default ERROR)")
    run.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")
    run.add_argument("--timeout", type=float, default=600, help="seconds a single cell may run (default 600, > 0)")
    run.add_argument(
        "--allow-actions",
        action="store_true",
        help="the run's key for remediation: actions apply only with this AND -p apply_actions True -p approver NAME",
    )

    demo = sub.add_parser("demo", help="start the sandbox, run every notebook against it, print the findings")
    demo.add_argument("--scenario", default="db-degradation", help="one of: " + ", ".join(SCENARIOS))
    demo.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")

    iam = sub.add_parser("iam-policy", help="print the least-privilege read-only IAM policy for the AWS diagnostics")
    iam.add_argument("--actions", action="store_true", help="add the statement the two-key remediation actions need")

    box = sub.add_parser("sandbox", help="start local stand-ins for production and print their exports")
    box.add_argument("--scenario", default="healthy", help="one of: " + ", ".join(SCENARIOS))

    args = parser.parse_args(argv)
    try:
        commands = {"list": cmd_list, "run": cmd_run, "demo": cmd_demo, "sandbox": cmd_sandbox, "iam-policy": cmd_iam}
        return commands[args.command](args)
    except ImsnbError as exc:
        print(f"imsnb: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130


def cmd_list(args: argparse.Namespace) -> int:
    from imsnb.notebooks import list_notebooks

    for info in list_notebooks():
        print(f"{info.name}: {info.title}")
        if info.purpose:
            print(f"    {info.purpose}")
        for p in info.parameters.values():
            default = "None" if p.default is None else repr(p.default)
            print(f"    -p {p.name:<22} {p.type + ('?' if p.optional else ''):<6} default {default:<12} {p.help}")
        print()
    return 0


def cmd_iam(args: argparse.Namespace) -> int:
    from imsnb.aws import iam_policy_json

    print(iam_policy_json(remediation=args.actions))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from imsnb.runner import run_notebook

    params = dict(args.parameter)
    if len(params) != len(args.parameter):
        raise ImsnbError("a parameter is given twice: pass each -p NAME once")
    result = run_notebook(
        args.notebook,
        params,
        incident_id=args.incident,
        outputs=args.outputs,
        fail_on=args.fail_on,
        timeout_s=args.timeout,
        allow_actions=args.allow_actions,
    )
    _print_result(result)
    return result.exit_code


def _print_result(result) -> None:
    summary = result.summary
    for f in sorted(summary["findings"], key=lambda f: -Severity.parse(f["severity"])):
        print(f"  {f['severity']:<8} {f['check']:<30} {f['message']}")
    worst = summary["severity"] or "none"
    print(f"{summary['notebook']}: status {summary['status']}, worst {worst}, {summary['duration_s']} s")
    if summary.get("error"):
        print(f"  error: {summary['error']['ename']}: {summary['error']['evalue']}")
    for a in summary.get("actions") or []:
        print(f"  action {a['status']:<8} {a['action']} {a['target']}: {a['detail'] or a['reason']}")
    if summary.get("escalation"):
        esc = summary["escalation"]
        print(f"  escalation: {esc['escalation']}; notify {esc['notification']}; on call: {esc['on_call']}")
    print(f"run folder: {result.folder}")


def cmd_demo(args: argparse.Namespace) -> int:
    """Every notebook against the sandbox, db_performance first; the findings of each, then where they are."""
    from imsnb.notebooks import list_notebooks
    from imsnb.runner import run_notebook
    from imsnb.sandbox import Sandbox

    names = sorted((info.name for info in list_notebooks()), key=lambda n: (n != "db_performance", n))
    print(f"starting the sandbox ({args.scenario}) ...", flush=True)
    results = []
    with Sandbox(args.scenario) as sandbox:
        saved = dict(os.environ)
        os.environ.update(sandbox.env())
        try:
            for name in names:
                print(f"\n== {name}", flush=True)
                result = run_notebook(name, {"window": "30m"}, incident_id="DEMO", outputs=args.outputs)
                _print_result(result)
                results.append(result)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    print(f"\nopen {Path(results[0].folder) / 'report.html'} in a browser to read the db_performance report")
    return max((3 if r.status != "ok" else 0 for r in results), default=0)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from imsnb.sandbox import Sandbox

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Sandbox(args.scenario) as sandbox:
        print(f"# imsnb sandbox, scenario {args.scenario}: paste these exports, then run notebooks or JupyterLab")
        print(sandbox.exports(), flush=True)
        print("# Ctrl-C stops the sandbox and removes its files", file=sys.stderr, flush=True)
        try:
            while not stop.wait(1):
                pass
        except KeyboardInterrupt:
            pass
    print("sandbox stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
