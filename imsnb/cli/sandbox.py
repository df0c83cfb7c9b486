"""The commands around the sandbox: `imsnb sandbox` (start it, print its exports), `imsnb lab` (JupyterLab on fresh
notebook copies, a sandbox optional) and `imsnb demo` (every notebook against a sandbox)."""

# Lazy imports: each command imports the library when it runs (imsnb/cli/__init__.py), so `imsnb --help` and a
# mistyped flag answer without loading pandas, papermill, psycopg or boto3 (tests/test_startup.py).

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from imsnb.cli.common import SCENARIOS, add_outputs_option
from imsnb.cli.output import print_result

SANDBOX_STOPS = (
    "Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the sandbox within seconds and removes its files, also when it was "
    "started in the background (&) from a script; a second signal during the clean-up is ignored"
)


def add_lab(sub: argparse._SubParsersAction) -> None:
    lab = sub.add_parser(
        "lab",
        help="start JupyterLab on fresh copies of the notebooks (OUTPUTS/.lab/<time>/) with the targets exported",
        description="Start JupyterLab on fresh copies of the catalogue's notebooks in OUTPUTS/.lab/<UTC time>/ "
        "(the repository's notebooks/ stay untouched), with the targets exported, and print the one URL to open. "
        "Ctrl-C stops JupyterLab and the sandbox; a second Ctrl-C during the clean-up is ignored.",
    )
    lab.add_argument("--sandbox", metavar="SCENARIO", help=f"start a sandbox and export it: {SCENARIOS}")
    lab.add_argument("--port", type=int, default=8888, help="port for JupyterLab (default 8888)")
    lab.add_argument("--dry-run", action="store_true", help="print the command and the variables it adds, then exit")
    add_outputs_option(lab, "the session's folder goes under OUTPUTS/.lab/ (./outputs)")
    lab.set_defaults(handler=cmd_lab)


def cmd_lab(args: argparse.Namespace) -> int:
    from imsnb import lab
    from imsnb.config import SECRET_ENV_NAME
    from imsnb.shutdown import Shutdown

    lab.check_session(args.sandbox, args.port, dry_run=args.dry_run)
    folder, token = lab.session_folder(args.outputs), lab.new_token()
    shutdown = Shutdown()
    if not args.dry_run:
        shutdown.install()  # a second Ctrl-C during the clean-up is ignored: nothing is left running
    sandbox = None
    try:
        if args.sandbox:  # a dry run starts it too, to show the real variables, and stops it at once
            from imsnb.sandbox import Sandbox

            print(f"starting the sandbox ({args.sandbox}) ...", file=sys.stderr, flush=True)
            sandbox = Sandbox(args.sandbox)
            sandbox.start()
        added = lab.session_env(folder, token, sandbox.env() if sandbox else {})
        command = lab.lab_command(folder, args.port)
        if args.dry_run:
            print(" ".join(command))
            for key, value in sorted(added.items()):
                print(f"{key}={'********' if SECRET_ENV_NAME.search(key) else value}")
            return 0
        copied = lab.prepare_session(folder, lab.user_settings_dir())
        targets = f"sandbox ready ({args.sandbox}): its targets" if sandbox else "lab ready: this shell's targets"

        def ready() -> None:
            print(
                f"{targets} exported; {len(copied)} notebooks copied to {folder}; "
                f"open {lab.lab_url(args.port, token)}  (Ctrl-C stops everything)",
                flush=True,
            )

        return lab.serve(command, added, args.port, shutdown, on_ready=ready)
    except KeyboardInterrupt:
        return 130
    finally:
        shutdown.begin()
        if sandbox is not None:
            sandbox.stop()
            print("sandbox stopped", file=sys.stderr)


def add_demo(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="start the sandbox, run every notebook against it, print the findings")
    demo.add_argument("--scenario", default="db-degradation", help=f"one of: {SCENARIOS}")
    add_outputs_option(demo)
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """Every notebook against the sandbox, db_performance first; what each found at WARNING and above, each
    action's reason said once, then the next steps."""
    from imsnb.runs.demo import demo_exit_code, run_demo

    printer = DemoPrinter(args.scenario)
    print(f"starting the sandbox ({args.scenario}) ...", flush=True)
    results = run_demo(args.scenario, args.outputs, on_start=printer.start, on_result=printer.result)
    printer.end(results)
    return demo_exit_code(results)


class DemoPrinter:
    """What `imsnb demo` prints: a heading per notebook, its findings at WARNING and above (the rest counted, in
    the report), its plans with why they were not applied said the first time only; at the end where to look and
    what to try next."""

    def __init__(self, scenario: str) -> None:
        from imsnb.cli.output import ActionPrinter

        self.scenario = scenario
        self.actions = ActionPrinter()

    def start(self, name: str) -> None:
        print(f"\n== {name}", flush=True)

    def result(self, result: Any) -> None:
        from imsnb.findings import Severity

        print_result(result, self.actions, at_least=Severity.WARNING)

    def end(self, results: list) -> None:
        from imsnb.archive import INDEX

        first = results[0]
        steps = [
            (f"open {Path(first.folder).parent / INDEX}", "every run of this demo, its report, the post-mortem"),
            (f"open {Path(first.folder) / 'report.html'}", f"the {first.summary['notebook']} report"),
            (f"make lab SCENARIO={self.scenario}", "the notebooks in JupyterLab, against the same scenario"),
            (f"imsnb sandbox --scenario {self.scenario}", "as on a real page: paste its exports in another shell,"),
            ("", "then: imsnb triage --incident PRACTICE --run-suggested"),
        ]
        width = max(len(command) for command, _ in steps)
        print("\nnext steps:")
        for command, why in steps:
            print(f"  {command:<{width}}   {why}")


def add_sandbox(sub: argparse._SubParsersAction) -> None:
    box = sub.add_parser(
        "sandbox",
        help="start local stand-ins for production and print their exports",
        description=f"Start local stand-ins for production and print their exports. {SANDBOX_STOPS}.",
    )
    box.add_argument("--scenario", default="healthy", help=f"one of: {SCENARIOS}")
    box.set_defaults(handler=cmd_sandbox)


def cmd_sandbox(args: argparse.Namespace) -> int:
    import time

    from imsnb.sandbox import Sandbox
    from imsnb.shutdown import Shutdown

    sandbox = Sandbox(args.scenario)
    shutdown = Shutdown().install()  # before start: a signal while starting stops what has started
    try:
        sandbox.start()
        print(f"# imsnb sandbox, scenario {args.scenario}: paste these exports, then run notebooks or JupyterLab")
        print(sandbox.exports(), flush=True)
        print(
            "# its past is in the counters and the history store; its present (a live load) runs until stopped",
            file=sys.stderr,
        )
        print(f"# {SANDBOX_STOPS}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        shutdown.begin()
        sandbox.stop()
        print("sandbox stopped", file=sys.stderr)
    return 0
