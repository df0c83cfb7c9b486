"""The `imsnb` command: thin commands over the library; library errors become one-line messages.

Exit status: 0 below --fail-on, 1 at or above it, 2 bad input, 3 the notebook failed or timed out; a command that
runs several notebooks (triage --run-suggested) exits with the worst of them (3 over 1 over 0).
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

    tri = sub.add_parser("triage", help="key metrics vs thresholds, then (--run-suggested) the notebooks they point to")
    tri.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a triage parameter (repeatable); window/start/end/environment also go to suggested notebooks",
    )
    tri.add_argument("--run-suggested", action="store_true", help="then run each suggested notebook, same incident")
    tri.add_argument("--incident", help="incident or ticket id every run is filed under (default: adhoc)")
    tri.add_argument("--fail-on", default="ERROR", help="exit 1 when the worst finding is at or above (default ERROR)")
    tri.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")
    tri.add_argument("--timeout", type=float, default=600, help="seconds a single cell may run (default 600, > 0)")

    demo = sub.add_parser("demo", help="start the sandbox, run every notebook against it, print the findings")
    demo.add_argument("--scenario", default="db-degradation", help="one of: " + ", ".join(SCENARIOS))
    demo.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")

    iam = sub.add_parser("iam-policy", help="print the least-privilege read-only IAM policy for the AWS diagnostics")
    iam.add_argument("--actions", action="store_true", help="add the statement the two-key remediation actions need")

    box = sub.add_parser("sandbox", help="start local stand-ins for production and print their exports")
    box.add_argument("--scenario", default="healthy", help="one of: " + ", ".join(SCENARIOS))

    args = parser.parse_args(argv)
    try:
        commands = {
            "list": cmd_list,
            "run": cmd_run,
            "triage": cmd_triage,
            "demo": cmd_demo,
            "sandbox": cmd_sandbox,
            "iam-policy": cmd_iam,
        }
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


# Triage parameters that mean the same in every notebook, so the follow-ups look at the same time and place.
SHARED_PARAMETERS = ("window", "start", "end", "environment")
TRIAGE_ROWS_SHOWN = 6


def cmd_triage(args: argparse.Namespace) -> int:
    from imsnb.findings import Finding
    from imsnb.runner import run_notebook
    from imsnb.triage import key_metrics, suggested_notebooks

    params = dict(args.parameter)
    if len(params) != len(args.parameter):
        raise ImsnbError("a parameter is given twice: pass each -p NAME once")
    result = run_notebook(
        "triage", params, incident_id=args.incident, outputs=args.outputs, fail_on=args.fail_on, timeout_s=args.timeout
    )
    findings = [Finding.from_dict(f) for f in result.summary["findings"]]
    table = key_metrics(findings)
    summary = result.summary
    print(f"triage: status {result.status}, worst {summary['severity'] or 'none'}, {summary['duration_s']} s")
    for row in table.head(TRIAGE_ROWS_SHOWN).itertuples():
        print(f"  {row.severity:<8} {row.area + ' ' + row.metric:<28} {row.message}")
    if result.summary.get("error"):
        print(f"  error: {result.summary['error']['ename']}: {result.summary['error']['evalue']}")
    if result.summary.get("escalation"):
        esc = result.summary["escalation"]
        print(f"  escalation: {esc['escalation']}; notify {esc['notification']}; on call: {esc['on_call']}")
    suggested = suggested_notebooks(findings)
    print(f"suggested notebooks: {', '.join(suggested) or 'none'}")
    print(f"run folder: {result.folder}")
    results = [result]
    if args.run_suggested and suggested:
        shared = {k: v for k, v in params.items() if k in SHARED_PARAMETERS}
        incident = result.summary["incident_id"]
        results += run_suggested(suggested, shared, incident_id=incident, outputs=args.outputs, args=args)
    return worst_exit_code([r.exit_code for r in results])


def run_suggested(names: list[str], parameters: dict, *, incident_id: str, outputs: str, args: argparse.Namespace):
    """Each suggested notebook under the triage's incident id, one after the other (the one place to parallelise).

    Only the shared parameters a notebook declares are passed to it."""
    from imsnb.notebooks import find_notebook, load_info
    from imsnb.runner import run_notebook

    results = []
    for name in names:
        print(f"\n== {name}", flush=True)
        declared = load_info(find_notebook(name)).parameters
        given = {k: v for k, v in parameters.items() if k in declared}
        result = run_notebook(
            name, given, incident_id=incident_id, outputs=outputs, fail_on=args.fail_on, timeout_s=args.timeout
        )
        _print_result(result)
        results.append(result)
    return results


def worst_exit_code(codes: list[int]) -> int:
    """Several runs' exit codes as one: a failed notebook (3) over a severity at --fail-on (1) over 0."""
    for code in (3, 1):
        if code in codes:
            return code
    return max(codes, default=0)


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
