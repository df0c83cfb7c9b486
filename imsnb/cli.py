"""The `imsnb` command: thin commands over the library; library errors become one-line messages.

Exit status: 0 below --fail-on, 1 at or above it, 2 bad input, 3 the notebook failed or timed out; a command that
runs several notebooks (suite, triage --run-suggested) exits with the worst of them (3 over 1 over 0). A failed
archive upload prints one line on stderr and leaves the exit status as it was (the local run folders are complete).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from imsnb import __version__
from imsnb.errors import ImsnbError
from imsnb.findings import Severity
from imsnb.runs.exits import EXIT_BAD_INPUT, worst_exit_code
from imsnb.sandbox import SCENARIO_NAMES as SCENARIOS
from imsnb.terminal import SafeStream

SANDBOX_STOPS = (
    "Ctrl-C (SIGINT), SIGTERM or SIGHUP stops the sandbox within seconds and removes its files, also when it was "
    "started in the background (&) from a script; a second signal during the clean-up is ignored"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage dump → one line, exit 2
        self.exit(EXIT_BAD_INPUT, f"imsnb: error: {message} (see `{self.prog} --help`)\n")


def _add_run_options(command: argparse.ArgumentParser, parameter_help: str, incident_help: str) -> None:
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
    command.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")
    command.add_argument("--timeout", type=float, default=600, help="seconds a single cell may run (default 600, > 0)")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="imsnb", description="Executable incident-response notebooks for the IMS 2.0 runbook.")
    parser.add_argument("--version", action="version", version=f"imsnb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("list", help="every notebook with its purpose and parameters")

    run = sub.add_parser("run", help="run a notebook headlessly into outputs/<incident>/<time>-<notebook>/")
    run.add_argument("notebook", help="notebook name (see `imsnb list`) or path to an .ipynb")
    _add_run_options(run, "set a notebook parameter (repeatable)", "the run is filed under (default: adhoc)")
    run.add_argument(
        "--allow-actions",
        action="store_true",
        help="the run's key for remediation: actions apply only with this AND -p apply_actions True -p approver NAME",
    )
    _add_archive_option(run)
    _add_delivery_options(run)

    tri = sub.add_parser("triage", help="key metrics vs thresholds, then (--run-suggested) the notebooks they point to")
    _add_run_options(
        tri,
        "set a triage parameter (repeatable); window/start/end/environment also go to suggested notebooks",
        "every run is filed under (default: adhoc)",
    )
    tri.add_argument("--run-suggested", action="store_true", help="then run each suggested notebook, same incident")
    _add_archive_option(tri)
    _add_delivery_options(tri)

    suite = sub.add_parser("suite", help="run several notebooks under one incident id, in parallel kernels")
    suite.add_argument("notebooks", nargs="*", metavar="NAME", help="notebook names (see `imsnb list`)")
    suite.add_argument("--all", action="store_true", help="every notebook")
    suite.add_argument("--jobs", "-j", type=int, default=None, help="notebooks run at once (default: CPU count)")
    _add_run_options(
        suite,
        "a parameter for every notebook that declares it (repeatable)",
        "every run is filed under (default: adhoc-<UTC time>)",
    )
    _add_archive_option(suite)
    _add_delivery_options(suite)

    arch = sub.add_parser("archive", help="the incident archive: list incidents, show one")
    arch_sub = arch.add_subparsers(dest="archive_command", required=True, parser_class=_Parser)
    arch_list = arch_sub.add_parser("list", help="incidents, newest first, with worst severity and run count")
    arch_list.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")
    arch_show = arch_sub.add_parser("show", help="an incident's runs, findings and actions")
    arch_show.add_argument("incident", help="incident id (see `imsnb archive list`)")
    arch_show.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")

    summ = sub.add_parser("summarize", help="rebuild summary.json from an executed notebook (plain papermill too)")
    summ.add_argument("notebook", help="path to an executed .ipynb")
    summ.add_argument("--output", "-o", help="write here (default: print to stdout)")

    lab = sub.add_parser(
        "lab",
        help="start JupyterLab on fresh copies of the notebooks (OUTPUTS/.lab/<time>/) with the targets exported",
        description="Start JupyterLab on fresh copies of the catalogue's notebooks in OUTPUTS/.lab/<UTC time>/ "
        "(the repository's notebooks/ stay untouched), with the targets exported, and print the one URL to open. "
        "Ctrl-C stops JupyterLab and the sandbox; a second Ctrl-C during the clean-up is ignored.",
    )
    lab.add_argument("--sandbox", metavar="SCENARIO", help="start a sandbox and export it: " + ", ".join(SCENARIOS))
    lab.add_argument("--port", type=int, default=8888, help="port for JupyterLab (default 8888)")
    lab.add_argument("--dry-run", action="store_true", help="print the command and the variables it adds, then exit")
    lab.add_argument("--outputs", default="outputs", help="the session's folder goes under OUTPUTS/.lab/ (./outputs)")

    demo = sub.add_parser("demo", help="start the sandbox, run every notebook against it, print the findings")
    demo.add_argument("--scenario", default="db-degradation", help="one of: " + ", ".join(SCENARIOS))
    demo.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")

    iam = sub.add_parser("iam-policy", help="print the least-privilege read-only IAM policy for the AWS diagnostics")
    iam.add_argument("--actions", action="store_true", help="add the statement the two-key remediation actions need")
    iam.add_argument("--archive", metavar="S3_URL", help="add s3:PutObject under s3://bucket/prefix for --archive")

    box = sub.add_parser(
        "sandbox",
        help="start local stand-ins for production and print their exports",
        description=f"Start local stand-ins for production and print their exports. {SANDBOX_STOPS}.",
    )
    box.add_argument("--scenario", default="healthy", help="one of: " + ", ".join(SCENARIOS))

    _add_schedule_commands(sub)
    _add_record_command(sub)

    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name the command whose --help lists the options, not the top level's
        command = " ".join(part for part in (args.command, getattr(args, f"{args.command}_command", None)) if part)
        extra = " ".join(unknown)
        parser.exit(EXIT_BAD_INPUT, f"imsnb: error: unrecognized arguments: {extra} (see `imsnb {command} --help`)\n")
    saved_streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)  # messages carry text from targets
    try:
        commands = {
            "record": cmd_record,
            "list": cmd_list,
            "run": cmd_run,
            "suite": cmd_suite,
            "archive": cmd_archive,
            "summarize": cmd_summarize,
            "lab": cmd_lab,
            "triage": cmd_triage,
            "demo": cmd_demo,
            "sandbox": cmd_sandbox,
            "iam-policy": cmd_iam,
            "schedule": cmd_schedule,
        }
        return commands[args.command](args)
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


def cmd_list(args: argparse.Namespace) -> int:
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


def cmd_iam(args: argparse.Namespace) -> int:
    from imsnb.archive import parse_archive_url
    from imsnb.aws import iam_policy_json

    archive = parse_archive_url(args.archive) if args.archive else None
    print(iam_policy_json(remediation=args.actions, archive=archive))
    return 0


def _add_archive_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--archive",
        default=os.environ.get("IMSNB_ARCHIVE") or None,
        metavar="s3://BUCKET/PREFIX",
        help="also upload the run folders and index.html there (default: $IMSNB_ARCHIVE)",
    )


def _add_delivery_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--notify",
        choices=("always", "changes", "never"),
        default="never",
        help="send the findings to the [notify] routes of imsnb.toml: always, on changes only, or never (default)",
    )
    parser.add_argument(
        "--ticket",
        default=os.environ.get("IMSNB_TICKET") or None,
        metavar="KEY",
        help="attach report.html and summary.json to this Jira issue and comment the findings (default: $IMSNB_TICKET)",
    )


def _check_delivery(args: argparse.Namespace) -> None:
    from imsnb import notify

    notify.check_ready(args.notify, args.ticket)


def _deliver(args: argparse.Namespace, results: list) -> None:
    """After the runs (and the upload): notifications and the ticket; a failed channel is a stderr line only."""
    from imsnb import notify

    records = notify.deliver(results, mode=args.notify, ticket=args.ticket, archive=args.archive)
    for r in records:
        if r["status"] != "failed":
            print(f"notify {r['channel']}: {r['status']}" + (f" ({r['detail']})" if r.get("detail") else ""))


def _parameters(args: argparse.Namespace) -> dict[str, str]:
    params = dict(args.parameter)
    if len(params) != len(args.parameter):
        raise ImsnbError("a parameter is given twice: pass each -p NAME once")
    return params


def _upload(url: str | None, folders: list[Path]) -> None:
    """Upload after the local runs are complete; a failure is one line on stderr, the runs stay as they are."""
    from imsnb import archive

    if not url or not folders:
        return
    try:
        keys = archive.upload(url, folders, folders[0].parent)
    except archive.UploadFailed as exc:
        print(f"imsnb: warning: {exc} (the local run folders are complete)", file=sys.stderr)
        return
    print(f"archived {len(keys)} file(s) to {url.rstrip('/')}/{folders[0].parent.name}/")


def cmd_run(args: argparse.Namespace) -> int:
    from imsnb.archive import parse_archive_url
    from imsnb.runs.execute import run_notebook

    params = _parameters(args)
    if args.archive:
        parse_archive_url(args.archive)
    _check_delivery(args)
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
    _upload(args.archive, [result.folder])
    _deliver(args, [result])
    return result.exit_code


def cmd_suite(args: argparse.Namespace) -> int:
    import time

    from imsnb.archive import INDEX, parse_archive_url
    from imsnb.runs.suite import (
        all_notebook_names,
        check_jobs,
        default_jobs,
        plan_suite,
        run_suite,
        suite_exit_code,
        suite_incident_id,
        without_targets,
        worst_severity,
    )

    if args.all == bool(args.notebooks):
        raise ImsnbError("name the notebooks to run, or pass --all (not both)")
    names = all_notebook_names() if args.all else args.notebooks
    left_out = without_targets(names, dict(args.parameter).get("environment")) if args.all else []
    names = [n for n in names if n not in left_out]
    if args.archive:
        parse_archive_url(args.archive)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    check_jobs(jobs)
    _check_delivery(args)
    params = _parameters(args)  # all bad input refused (exit 2) before the progress display starts
    plan_suite(
        names,
        params,
        incident_id=suite_incident_id(args.incident, params),
        outputs=args.outputs,
        fail_on=args.fail_on,
        timeout_s=args.timeout,
    )
    progress = _progress_printer(names)
    width = max(len(n) for n in names)
    started = time.monotonic()
    if left_out:
        print(f"left out, no target configured: {', '.join(left_out)}", flush=True)
    print(f"running {len(names)} notebook(s), {jobs} at a time ...", flush=True)
    results = run_suite(
        names,
        _parameters(args),
        incident_id=args.incident,
        outputs=args.outputs,
        jobs=jobs,
        fail_on=args.fail_on,
        timeout_s=args.timeout,
        on_result=progress,
    )
    elapsed = time.monotonic() - started
    incident_dir = results[0].folder.parent
    failed = [r.summary["notebook"] for r in results if r.status != "ok"]
    total = sum(r.summary["duration_s"] or 0 for r in results)
    print(
        f"\nincident {incident_dir.name}: {len(results)} run(s) in {elapsed:.1f} s "
        f"(sum of run times {total:.1f} s), worst {worst_severity(results) or 'none'}"
        + (f", failed: {', '.join(failed)}" if failed else "")
    )
    for r in sorted(results, key=lambda r: -Severity.parse(r.summary["severity"] or "OK")):
        for f in r.summary["findings"]:
            if Severity.parse(f["severity"]) >= Severity.WARNING:
                print(f"  {f['severity']:<8} {r.summary['notebook']:<{width}}  {f['check']}: {f['message']}")
    print(f"index: {incident_dir / INDEX}")
    _upload(args.archive, [r.folder for r in results])
    _deliver(args, results)
    return suite_exit_code(results)


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


def cmd_summarize(args: argparse.Namespace) -> int:
    import json

    from imsnb import config
    from imsnb.runs.scrub import SUMMARY_KEYS_KEPT, scrub_tree
    from imsnb.runs.summary import summarize

    path = Path(args.notebook)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no cells")
    except (OSError, ValueError) as exc:
        raise ImsnbError(f"{path} is not a readable notebook ({' '.join(str(exc).split())}): give an .ipynb") from None
    summary = scrub_tree(summarize(nb), config.secret_values(), keep=SUMMARY_KEYS_KEPT)
    text = json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
    if not args.output:
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if not out.parent.is_dir():
        raise ImsnbError(f"cannot write {out}: folder {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}: {summary['notebook']}, status {summary['status']}, worst {summary['severity'] or 'none'}")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    import secrets
    import subprocess
    import time

    from imsnb import lab
    from imsnb.shutdown import Shutdown

    if args.sandbox and args.sandbox not in SCENARIOS:
        raise ImsnbError(f"unknown scenario {args.sandbox!r}: choose one of {', '.join(SCENARIOS)}")
    if not 0 < args.port < 65536:
        raise ImsnbError(f"port {args.port} is out of range: use 1-65535")
    folder = lab.session_folder(args.outputs)
    command = lab_command(folder, args.port)
    if not args.dry_run:
        require_jupyterlab()
    if not args.dry_run and lab.listening(args.port):
        raise ImsnbError(f"port {args.port} is already in use (another JupyterLab?): pass --port with a free one")
    token = secrets.token_urlsafe(24)  # ours, so the URL is known without reading Jupyter's log
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
        added = lab_env(sandbox.env() if sandbox else {})
        added |= {"JUPYTER_TOKEN": token, "JUPYTERLAB_SETTINGS_DIR": str(lab.settings_folder(folder))}
        if args.dry_run:
            from imsnb.config import SECRET_ENV_NAME

            print(" ".join(command))
            for key, value in sorted(added.items()):
                print(f"{key}={'********' if SECRET_ENV_NAME.search(key) else value}")
            return 0
        copied = lab.prepare_session(folder, lab.user_settings_dir())
        proc = subprocess.Popen(command, env={**os.environ, **added}, stdin=subprocess.DEVNULL)
        targets = f"sandbox ready ({args.sandbox}): its targets" if sandbox else "lab ready: this shell's targets"
        try:
            ready = False
            while proc.poll() is None:
                if not ready and lab.listening(args.port):
                    ready = True
                    print(
                        f"{targets} exported; {len(copied)} notebooks copied to {folder}; "
                        f"open {lab.lab_url(args.port, token)}  (Ctrl-C stops everything)",
                        flush=True,
                    )
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            shutdown.begin()
            _stop_process(proc)
        return 0 if shutdown.signal else (proc.returncode or 0)  # stopped by us, or JupyterLab's own exit status
    except KeyboardInterrupt:
        return 130
    finally:
        shutdown.begin()
        if sandbox is not None:
            sandbox.stop()
            print("sandbox stopped", file=sys.stderr)


def _stop_process(proc) -> None:
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def require_jupyterlab() -> None:
    import importlib.util

    if importlib.util.find_spec("jupyterlab") is None:
        raise ImsnbError("JupyterLab is not installed: pip install -e '.[lab]'")


def lab_command(notebooks: Path, port: int) -> list[str]:
    """JupyterLab on 127.0.0.1:PORT serving `notebooks` (the session's working folder), its own log quiet: the
    token comes from JUPYTER_TOKEN and `imsnb lab` prints the one line to open."""
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.root_dir={notebooks}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.log_level=WARN",
        "--LabApp.log_level=WARN",
    ]
    if os.geteuid() == 0:  # JupyterLab refuses root without it (containers, CI)
        command.append("--allow-root")
    return command


def lab_env(targets: dict[str, str]) -> dict[str, str]:
    """What the lab process gets on top of this environment: the targets (a sandbox's) and the caller's
    imsnb.toml (the kernels run in notebooks/)."""
    from imsnb import config

    added = dict(targets)
    found = config.config_file()
    if found is not None and "IMSNB_CONFIG" not in os.environ:
        added["IMSNB_CONFIG"] = str(found.resolve())
    return added


# Triage parameters that mean the same in every notebook, so the follow-ups look at the same time and place.
SHARED_PARAMETERS = ("window", "start", "end", "environment")
TRIAGE_ROWS_SHOWN = 6


def cmd_triage(args: argparse.Namespace) -> int:
    from imsnb.archive import parse_archive_url
    from imsnb.findings import Finding
    from imsnb.runs.execute import run_notebook
    from imsnb.triage import key_metrics, suggested_notebooks

    params = dict(args.parameter)
    if len(params) != len(args.parameter):
        raise ImsnbError("a parameter is given twice: pass each -p NAME once")
    if args.archive:
        parse_archive_url(args.archive)
    _check_delivery(args)
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
        who = esc.get("on_call_name") or esc["on_call"]
        print(f"  escalation: {esc['escalation']}; notify {esc['notification']}; on call: {who}")
    suggested = suggested_notebooks(findings)
    print(f"suggested notebooks: {', '.join(suggested) or 'none'}")
    print(f"run folder: {result.folder}")
    results = [result]
    if args.run_suggested and suggested:
        shared = {k: v for k, v in params.items() if k in SHARED_PARAMETERS}
        incident = result.summary["incident_id"]
        results += run_suggested(suggested, shared, incident_id=incident, outputs=args.outputs, args=args)
    _upload(args.archive, [r.folder for r in results])
    _deliver(args, results)
    return worst_exit_code([r.exit_code for r in results])


def run_suggested(names: list[str], parameters: dict, *, incident_id: str, outputs: str, args: argparse.Namespace):
    """The suggested notebooks under the triage's incident id, as a suite in parallel kernels; each gets only the
    shared parameters it declares. Actions are never applied here: they are planned in each run's report."""
    from imsnb.runs.suite import default_jobs, run_suite

    jobs = default_jobs()
    print(f"\nrunning the {len(names)} suggested notebook(s), {jobs} at a time ...", flush=True)
    results = run_suite(
        names,
        parameters,
        incident_id=incident_id,
        outputs=outputs,
        jobs=jobs,
        fail_on=args.fail_on,
        timeout_s=args.timeout,
        on_result=_progress_printer(names),
    )
    for result in results:
        print(f"run folder: {result.folder}")
    return results


def _progress_printer(names: list[str]):
    """A suite's progress display: one line per notebook as it finishes (severity, duration, status)."""
    done: list = []
    width = max((len(n) for n in names), default=8)

    def progress(result) -> None:
        done.append(result)
        s = result.summary
        print(
            f"[{len(done):>{len(str(len(names)))}}/{len(names)}] {s['notebook']:<{width}}  "
            f"{s['severity'] or 'none':<8} {s['duration_s']:>7.1f} s  {s['status']}",
            flush=True,
        )

    return progress


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
        who = esc.get("on_call_name") or esc["on_call"]
        print(f"  escalation: {esc['escalation']}; notify {esc['notification']}; on call: {who}")
    print(f"run folder: {result.folder}")


def cmd_demo(args: argparse.Namespace) -> int:
    """Every notebook against the sandbox, db_performance first; the findings of each, then where they are."""
    from imsnb.runs.catalogue import list_notebooks
    from imsnb.runs.execute import run_notebook
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


# ---------------------------------------------------------------- imsnb schedule (list, run, crontab)


def _add_schedule_commands(sub) -> None:
    sched = sub.add_parser("schedule", help="the runbook's routine: [schedules.NAME] of imsnb.toml (times in UTC)")
    sched_sub = sched.add_subparsers(dest="schedule_command", required=True, parser_class=_Parser)
    sched_list = sched_sub.add_parser("list", help="each schedule, its next three runs (UTC) and its last run")
    sched_list.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")
    sched_run = sched_sub.add_parser("run", help="one run of a schedule, exactly as cron or Airflow makes it")
    sched_run.add_argument("name", help="schedule name (see `imsnb schedule list`)")
    sched_run.add_argument("--outputs", default="outputs", help="archive folder (default: ./outputs)")
    cron = sched_sub.add_parser("crontab", help="crontab lines for one host (CRON_TZ=UTC, flock, a log per schedule)")
    cron.add_argument("--outputs", default="outputs", help="archive folder the runs write to (default: ./outputs)")
    cron.add_argument("--log-dir", help="where NAME.log and NAME.lock go (default /var/log/imsnb as root)")
    cron.add_argument("--env-file", help="a file of VAR=value lines each run sources first (targets, secrets)")


def cmd_schedule(args: argparse.Namespace) -> int:
    from imsnb import config
    from imsnb.runs.schedule import crontab_lines, default_log_dir, describe_schedules, get_schedule, load_schedules

    if args.schedule_command == "list":
        for line in describe_schedules(load_schedules(), args.outputs):
            print(line)
        return 0
    if args.schedule_command == "run":
        from imsnb.runs.schedule import run_schedule

        scheduled = run_schedule(get_schedule(args.name), outputs=args.outputs)
        _print_result(scheduled.result)
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


def _add_record_command(sub) -> None:
    rec = sub.add_parser("record", help="store counter snapshots of every configured target in the history")
    rec.add_argument("--every", metavar="DURATION", help="one round every DURATION (e.g. 60s); without --for: forever")
    rec.add_argument("--for", dest="duration", metavar="DURATION", help="stop after DURATION (e.g. 2h)")
    rec.add_argument("--history", metavar="PATH", help="the SQLite store (default: IMSNB_HISTORY)")


def cmd_record(args: argparse.Namespace) -> int:
    """One round of snapshots (cron), or rounds --every for --for (a scheduler, a terminal)."""
    import signal
    import threading
    from datetime import UTC, datetime

    from imsnb.history import History, retention
    from imsnb.record import record
    from imsnb.window import parse_duration

    every = parse_duration(args.every).total_seconds() if args.every else None
    duration = parse_duration(args.duration).total_seconds() if args.duration else None
    retention()  # a bad IMSNB_HISTORY_DAYS is bad input, said before any round
    history = History(args.history) if args.history else History()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def printed(lines: list[str]) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for line in lines:
            print(f"{stamp} {line}", flush=True)

    try:
        rounds = record(every, duration, history=history, stop=stop, on_round=printed)
    except KeyboardInterrupt:
        return 0
    print(f"{rounds} round(s) recorded into {history.path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
