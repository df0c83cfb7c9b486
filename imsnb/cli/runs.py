"""`imsnb run`, `imsnb triage` and `imsnb suite`: the commands that run notebooks, and what they print."""

# Lazy imports: each command imports the library when it runs (imsnb/cli/__init__.py), so `imsnb --help` and a
# mistyped flag answer without loading pandas, papermill, psycopg or boto3 (tests/test_startup.py).

from __future__ import annotations

import argparse

from imsnb.cli.common import (
    add_delivery_options,
    add_run_options,
    check_delivery,
    deliver,
    parameters,
    run_settings,
)
from imsnb.cli.output import (
    outcome_text,
    print_outcome,
    print_result,
    print_runs_summary,
    print_skipped,
    progress_printer,
)
from imsnb.findings import Severity
from imsnb.runs.exits import worst_exit_code

TRIAGE_ROWS_SHOWN = 8  # key metrics at WARNING and above in triage's closing table (all were said as judged)


def add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a notebook headlessly into outputs/<incident>/<time>-<notebook>/")
    run.add_argument("notebook", help="notebook name (see `imsnb list`) or path to an .ipynb")
    add_run_options(run, "set a notebook parameter (repeatable)", "the run is filed under (default: adhoc)")
    run.add_argument(
        "--allow-actions",
        action="store_true",
        help="the run's key for remediation: actions apply only with this AND -p apply_actions True -p approver NAME",
    )
    add_delivery_options(run)
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from imsnb.runs.execute import run_notebook

    params = parameters(args)
    check_delivery(args)
    result = run_notebook(
        args.notebook, params, incident_id=args.incident, allow_actions=args.allow_actions, **run_settings(args)
    )
    print_result(result)
    deliver(args, [result])
    return result.exit_code


def add_triage(sub: argparse._SubParsersAction) -> None:
    tri = sub.add_parser("triage", help="key metrics vs thresholds, then (--run-suggested) the notebooks they point to")
    add_run_options(
        tri,
        "set a triage parameter (repeatable); window/start/end/environment also go to suggested notebooks",
        "every run is filed under (default: adhoc)",
    )
    tri.add_argument("--run-suggested", action="store_true", help="then run each suggested notebook, same incident")
    add_delivery_options(tri)
    tri.set_defaults(handler=cmd_triage)


def cmd_triage(args: argparse.Namespace) -> int:
    from imsnb.runs.followups import run_suggested, run_triage, triage_plan
    from imsnb.runs.suite import default_jobs

    params = parameters(args)
    check_delivery(args)
    print(f"triage: {triage_plan(params, incident_id=args.incident, **run_settings(args))}", flush=True)
    triage = run_triage(params, incident_id=args.incident, on_progress=_indented, **run_settings(args))
    result, summary = triage.result, triage.result.summary
    print(f"triage: {outcome_text(summary)}")
    print_skipped(summary["findings"])
    worth = triage.table[triage.table["severity"].map(Severity.parse) >= Severity.WARNING]
    for row in worth.head(TRIAGE_ROWS_SHOWN).itertuples():
        print(f"  {row.severity:<8} {row.area + ' ' + row.metric:<28} {row.message}")
    print_outcome(summary)
    print(f"suggested notebooks: {', '.join(triage.suggested) or 'none'}")
    print(f"run folder: {result.folder}")
    results = [result]
    if args.run_suggested and triage.suggested:
        import time

        jobs = default_jobs()
        print(f"\nrunning the {len(triage.suggested)} suggested notebook(s), {jobs} at a time ...", flush=True)
        started = time.monotonic()
        followed = run_suggested(
            triage, params, jobs=jobs, on_result=progress_printer(triage.suggested), **run_settings(args)
        )
        print_runs_summary(followed, time.monotonic() - started, title="follow-ups")
        results += followed
    deliver(args, results)
    return worst_exit_code([r.exit_code for r in results])


def _indented(line: str) -> None:
    print(f"  {line}", flush=True)


def add_suite(sub: argparse._SubParsersAction) -> None:
    suite = sub.add_parser("suite", help="run several notebooks under one incident id, in parallel kernels")
    suite.add_argument("notebooks", nargs="*", metavar="NAME", help="notebook names (see `imsnb list`)")
    suite.add_argument("--all", action="store_true", help="every notebook")
    suite.add_argument("--jobs", "-j", type=int, default=None, help="notebooks run at once (default: CPU count)")
    add_run_options(
        suite,
        "a parameter for every notebook that declares it (repeatable)",
        "every run is filed under (default: adhoc-<UTC time>)",
    )
    add_delivery_options(suite)
    suite.set_defaults(handler=cmd_suite)


def cmd_suite(args: argparse.Namespace) -> int:
    import time

    from imsnb.runs.suite import (
        check_jobs,
        default_jobs,
        plan_suite,
        run_suite,
        suite_exit_code,
        suite_incident_id,
        suite_notebooks,
    )

    environment = dict(args.parameter).get("environment")
    names, left_out = suite_notebooks(args.notebooks, every=args.all, environment=environment)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    check_jobs(jobs)
    check_delivery(args)
    params = parameters(args)  # all bad input refused (exit 2) before the progress display starts
    incident = suite_incident_id(args.incident, params)
    plan_suite(names, params, incident_id=incident, **run_settings(args))
    started = time.monotonic()
    if left_out:
        print(f"left out, no target configured: {', '.join(left_out)}", flush=True)
    print(f"running {len(names)} notebook(s), {jobs} at a time ...", flush=True)
    results = run_suite(
        names, params, incident_id=args.incident, jobs=jobs, on_result=progress_printer(names), **run_settings(args)
    )
    print_runs_summary(results, time.monotonic() - started)
    deliver(args, results)
    return suite_exit_code(results)
