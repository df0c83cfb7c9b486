"""Run a notebook headlessly and archive it: validate, execute with papermill, scrub, export, summarize.

    outputs/<incident_id>/<UTC yyyymmddTHHMMSSZ>-<notebook>/
        notebook.ipynb   the executed notebook (the artifact)
        report.html      the same, self-contained (charts embedded, nothing fetched from the network)
        summary.json     parameters, status, timing, findings, highest severity, escalation

The folder is assembled under a hidden `.partial-*` name and renamed into place when complete, so a crash never
leaves something that looks like a finished run. papermill's autosaves go to a private temp dir, never under
outputs/, because they are written before secrets are scrubbed.
"""

from __future__ import annotations

import html
import json
import logging
import math
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imsnb import __version__, config
from imsnb.bundles import ACTIONS_MIME, FINDINGS_MIME
from imsnb.errors import BadParameter, NotConfigured
from imsnb.findings import Severity
from imsnb.runs.catalogue import NotebookInfo, find_notebook, load_info
from imsnb.runs.exits import EXIT_BAD_INPUT, EXIT_NOTEBOOK_FAILED, EXIT_OK, EXIT_SEVERITY, run_exit_code  # noqa: F401
from imsnb.runs.kernels import ForkServer, notebook_imports
from imsnb.runs.parameters import check_bounds, check_incident_id, is_positive_seconds, validate

DEFAULT_TIMEOUT_S = 600
REDACTED = "********"
# Identifiers in summary.json, never scrubbed (a password equal to "postgres" must not rename checks).
SUMMARY_KEYS_KEPT = frozenset({"check", "component", "severity", "notebook", "status", "unit", "action"})


@dataclass
class RunResult:
    folder: Path
    summary: dict[str, Any]
    exit_code: int

    @property
    def status(self) -> str:
        return self.summary["status"]


def check_run_settings(fail_on: str | Severity, timeout_s: float) -> Severity:
    """The options every run shares (`imsnb run`, `suite`, `triage`), checked in one place: the --fail-on
    severity, and a cell timeout that is a positive, finite number of seconds (nan and inf bound nothing)."""
    try:
        threshold = Severity.parse(fail_on)
    except ValueError as exc:
        raise BadParameter(str(exc)) from None
    if not is_positive_seconds(timeout_s):
        raise BadParameter(f"timeout must be a positive number of seconds, not {timeout_s!r}")
    return threshold


def prepare(
    notebook: str, raw_parameters: dict[str, Any], incident_id: str | None, outputs: Path | str = "outputs"
) -> tuple[Path, dict, str]:
    """Everything that can be refused, refused before anything is written or a kernel starts."""
    path = find_notebook(notebook)
    info = load_info(path)
    parameters = validate(info, raw_parameters)
    incident = check_incident_id(incident_id or str(parameters.get("incident_id") or "adhoc"))
    if "incident_id" in info.parameters:
        parameters["incident_id"] = incident
    environment = parameters.get("environment")
    if environment and environment != "default":
        try:
            config.environment_settings(environment)
        except NotConfigured as exc:
            raise BadParameter(str(exc)) from None
    check_targets(info, environment)
    if parameters.get("apply_actions") is True and not str(parameters.get("approver") or "").strip():
        raise BadParameter("apply_actions is True but no approver is named: add -p approver NAME (who approved)")
    check_bounds(parameters)
    check_writable(Path(outputs))
    return path, parameters, incident


def check_targets(info: NotebookInfo, environment: str | None = None) -> None:
    """Bad input when none of the targets a notebook declares (metadata `imsnb.targets`) is configured, in the
    process environment or the named environment: a run would only say "not configured" (e.g. `redis_cache` with
    no Redis). A notebook with at least one configured target runs; the others become INFO findings."""
    if not info.targets:
        return
    environ = dict(os.environ)
    if environment and environment != "default":
        environ |= config.environment_settings(environment)
    missing = [t for t in info.targets if not config.target_configured(t, environ)]
    if len(missing) == len(info.targets):
        hints = "; ".join(config.NOT_CONFIGURED[t] for t in missing)
        raise BadParameter(f"notebook {info.name!r} has nothing to check: {hints}")


def check_writable(folder: Path) -> None:
    """The outputs folder can be created and written (checked before the run, so no work is lost after it)."""
    probe = folder.resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BadParameter(f"outputs folder {folder} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadParameter(f"outputs folder {folder} is not writable (no write permission on {probe})")


def run_notebook(
    notebook: str,
    parameters: dict[str, Any] | None = None,
    *,
    incident_id: str | None = None,
    outputs: Path | str = "outputs",
    fail_on: str | Severity = Severity.ERROR,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    allow_actions: bool = False,
    kernels: ForkServer | None = None,
) -> RunResult:
    """Execute one notebook into a new run folder; raises BadParameter (nothing written) for bad input.

    `allow_actions` is the run's key for `imsnb.actions` (the CLI's --allow-actions); without it the notebook's
    actions are planned and shown, never applied. `kernels`: a warm parent to fork the kernel from (a suite shares
    one); without it the run starts its own as soon as the input is valid, unless IMSNB_WARM_KERNELS=0.
    """
    threshold = check_run_settings(fail_on, timeout_s)
    path, params, incident = prepare(notebook, parameters or {}, incident_id, outputs)
    own_kernels = kernels is None and warm_kernels_enabled()
    if own_kernels:
        kernels = ForkServer(notebook_imports([path]))  # its imports overlap ours (papermill) from here on
    started = datetime.now(UTC)
    clock = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="imsnb-run-"))
    try:
        journal = scratch / "actions.jsonl"
        executed, status, error = _execute(
            path, scratch / "notebook.ipynb", params, timeout_s, allow_actions, journal=journal, kernels=kernels
        )
        duration = time.monotonic() - clock
        summary = summarize(executed, notebook=path.stem, incident_id=incident)
        summary["actions"] = merge_journal(summary["actions"], read_journal(journal))
        _note_unfinished_actions(executed, summary["actions"])
        summary.update(started_at=_iso(started), finished_at=_iso(datetime.now(UTC)), duration_s=round(duration, 2))
        if status != "ok":
            summary["status"] = status
        if error:
            summary["error"] = error
        source_text = path.read_text(encoding="utf-8")
        folder, summary = _write_run_folder(
            Path(outputs) / incident, started, path.stem, executed, summary, source_text
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if own_kernels:
            kernels.close()
    _refresh_index(folder.parent)
    return RunResult(folder, summary, run_exit_code(summary["status"], summary["severity"], threshold))


def _refresh_index(incident_dir: Path) -> None:
    """Rewrite the incident's index.html; a failure there never costs the run (the index can be rebuilt)."""
    from imsnb import archive

    try:
        archive.write_index(incident_dir)
    except OSError as exc:
        logging.getLogger(__name__).warning("index.html of %s not rewritten: %s", incident_dir, exc)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The action journal the kernel wrote (one JSON record a line, write-ahead); a torn last line is ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("id"):
            records.append(record)
    return records


def merge_journal(actions: list[dict[str, Any]], journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notebook's action records with the journal's later state of each laid over them (by `id`); records only
    in the journal (the notebook output was lost with the kernel) are added."""
    latest = {record["id"]: record for record in journal}
    merged = [{**a, **latest.pop(a.get("id"), {})} if a.get("id") else a for a in actions]
    return merged + list(latest.values())


def _note_unfinished_actions(nb: dict, actions: list[dict[str, Any]]) -> None:
    """A run that stopped mid-action says so at the top of the notebook (and so of report.html)."""
    unfinished = [a for a in actions if a.get("status") == "applying"]
    if not unfinished:
        return
    listed = "; ".join(f"{a.get('action')} on {a.get('target')} since {a.get('applying_at')}" for a in unfinished)
    listed = "".join(f"\\{c}" if c in "\\`*_[]<>#|" else c for c in html.escape(listed, quote=False))
    nb["cells"].insert(
        0,
        {
            "cell_type": "markdown",
            "id": "imsnb-applying",
            "metadata": {"tags": ["imsnb-applying"]},
            "source": f"**Actions still `applying` when the run stopped (outcome unknown: check):** {listed}",
        },
    )


def warm_kernels_enabled() -> bool:
    """Kernels forked from a warm parent (imsnb.runs.kernels), unless IMSNB_WARM_KERNELS=0 asks for plain ones."""
    return os.environ.get("IMSNB_WARM_KERNELS", "1").strip() != "0"


def _execute(
    path: Path,
    output: Path,
    params: dict[str, Any],
    timeout_s: float,
    allow_actions: bool = False,
    *,
    journal: Path | None = None,
    kernels: ForkServer | None = None,
) -> tuple[dict, str, dict | None]:
    """papermill in this process; returns the executed notebook (as a dict), the status and the error, if any."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    status, error = "ok", None
    try:
        papermill.execute_notebook(
            str(path),
            str(output),
            parameters=params,
            # not papermill's cwd=, which os.chdir()s the whole process (parallel runs would write elsewhere)
            progress_bar=False,
            log_output=False,
            execution_timeout=math.ceil(timeout_s),  # nbclient takes whole seconds only
            start_timeout=60,
            shutdown_kernel="immediate",  # every output is in by then; a graceful stop only costs time
            kernel_manager_class=_kernel_manager_class(
                kernel_environment(allow_actions, journal=journal, timeout_s=timeout_s),
                cwd=path.parent.resolve(),
                ipc=output.parent,
                kernels=kernels,
            ),
        )
    except papermill.PapermillExecutionError as exc:
        status = "failed"
        error = {"ename": exc.ename, "evalue": exc.evalue, "cell_index": exc.cell_index}
    except CellTimeoutError as exc:
        status = "timeout"
        error = {"ename": "CellTimeoutError", "evalue": f"a cell ran longer than {timeout_s:g} s: {exc}"}
    except DeadKernelError as exc:
        status = "failed"
        error = {"ename": "DeadKernelError", "evalue": f"the kernel died: {exc}"}
    except Exception as exc:  # noqa: BLE001 - the run folder must still be written
        status = "failed"
        error = {"ename": type(exc).__name__, "evalue": " ".join(str(exc).split())}
    try:
        executed = json.loads(output.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        executed = json.loads(path.read_text(encoding="utf-8"))
    if error and "cell_index" not in error:  # papermill marks a raising cell itself; not a timeout or death
        _mark_interrupted(executed, error)
    return executed, status, error


def kernel_environment(
    allow_actions: bool = False, *, journal: Path | None = None, timeout_s: float | None = None
) -> dict[str, str | None]:
    """What the kernel's environment differs by from this process's (None: removed).

    IMSNB_CONFIG: the kernel runs in notebooks/, so it is told which imsnb.toml the caller meant.
    IMSNB_ALLOW_ACTIONS: the run key of `imsnb.actions`; a headless run has it only with --allow-actions, never
    inherited from an exported variable. The kernel reads it once, when imsnb is imported (`imsnb._started`).
    IMSNB_ACTIONS_JOURNAL: where the kernel writes each action as `applying` before it acts (write-ahead).
    IMSNB_CELL_TIMEOUT_S: the cell timeout, so that long waits (a restore) stop short of it.
    """
    from imsnb._started import ALLOW_ENV, CELL_TIMEOUT_ENV, JOURNAL_ENV

    changes: dict[str, str | None] = {
        ALLOW_ENV: "1" if allow_actions else None,
        JOURNAL_ENV: str(journal) if journal is not None else None,
        CELL_TIMEOUT_ENV: f"{math.ceil(timeout_s)}" if timeout_s else None,
    }
    found = config.config_file()
    if "IMSNB_CONFIG" not in os.environ and found is not None:
        changes["IMSNB_CONFIG"] = str(found.resolve())
    return changes


def _kernel_manager_class(
    changes: dict[str, str | None], *, cwd: Path, ipc: Path | None = None, kernels: ForkServer | None = None
) -> type:
    """A kernel manager that starts the kernel in `cwd` with `changes` applied to its environment (never to this
    process's environment or working directory: papermill's own `cwd=` is a process-wide os.chdir, so concurrent
    runs in threads would write each other's files in the wrong place or see each other's keys).

    `ipc`: a private folder for the kernel's sockets (IPC, not TCP: no ports, nothing reachable from the network,
    and no "running over TCP without encryption" warning). `kernels`: fork the kernel from this warm parent."""
    from jupyter_client import AsyncKernelManager

    from imsnb.runs.kernels import provisioner_class

    provisioner = None if kernels is None else provisioner_class(kernels)

    class RunKernelManager(AsyncKernelManager):
        if ipc is not None:
            transport = "ipc"
            ip = str(ipc / "kernel")

        async def start_kernel(self, **kw: Any) -> None:
            if provisioner is not None and self.provisioner is None:
                self.kernel_id = self.kernel_id or secrets.token_hex(16)
                self.provisioner = provisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
            env = dict(kw.pop("env", None) or os.environ)
            for name, value in changes.items():
                if value is None:
                    env.pop(name, None)
                else:
                    env[name] = value
            kw["cwd"] = str(cwd)
            return await super().start_kernel(env=env, **kw)

    return RunKernelManager


def _mark_interrupted(nb: dict, error: dict) -> None:
    """A timeout or dead kernel leaves no banner: say at the top where and why the run stopped, and mark the
    cells after that one as not run (papermill leaves them marked completed)."""
    cells = nb["cells"]
    started = [i for i, c in enumerate(cells) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    stopped = started[-1] if started else None
    if stopped is not None:
        cells[stopped].setdefault("outputs", []).append(
            {"output_type": "error", "ename": error["ename"], "evalue": error["evalue"], "traceback": []}
        )
        for cell in cells[stopped + 1 :]:
            cell.setdefault("metadata", {}).setdefault("papermill", {})["status"] = "not run"
    where = f" in cell {stopped + 1}" if stopped is not None else ""  # +1: the banner goes first
    banner = {
        "cell_type": "markdown",
        "id": "imsnb-interrupted",
        "metadata": {"tags": ["imsnb-interrupted"]},
        "source": f"**This run did not finish{where}: {error['ename']}: {error['evalue']}.** Later cells did not run.",
    }
    cells.insert(0, banner)


def summarize(nb: dict, *, notebook: str | None = None, incident_id: str | None = None) -> dict[str, Any]:
    """summary.json's content, derived from an executed notebook alone (works for plain papermill runs too)."""
    meta = nb.get("metadata", {}).get("papermill", {})
    bundle, error, actions = None, None, []
    for index, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error" and error is None:
                error = {"ename": out.get("ename"), "evalue": out.get("evalue"), "cell_index": index}
            data = out.get("data", {})
            if FINDINGS_MIME in data:
                bundle = data[FINDINGS_MIME]
            if ACTIONS_MIME in data:
                actions.extend(data[ACTIONS_MIME].get("actions", []))
    parameters = dict(meta.get("parameters") or {})
    bundle = bundle or {}
    summary = {
        "notebook": notebook or Path(meta.get("input_path") or "notebook").stem,
        "incident_id": incident_id or parameters.get("incident_id"),
        "status": "failed" if error or meta.get("exception") else "ok",
        "started_at": meta.get("start_time"),
        "finished_at": meta.get("end_time"),
        "duration_s": meta.get("duration"),
        "parameters": redact_parameters(parameters),
        "severity": bundle.get("severity"),
        "escalation": bundle.get("escalation"),
        "findings": bundle.get("findings", []),
        "actions": actions,
        "imsnb_version": __version__,
    }
    if error:
        summary["error"] = error
    return summary


def redact_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    from imsnb.runs.parameters import check_not_secret

    clean = {}
    for name, value in parameters.items():
        try:
            check_not_secret(name, value)
            clean[name] = value
        except BadParameter:
            clean[name] = REDACTED
    return clean


def secret_forms(secret: str) -> set[str]:
    """The ways a secret can be spelled inside an artifact: raw, JSON-, HTML- (with and without quotes),
    JSON-of-HTML-, Python-repr- and percent-encoded."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
    }
    forms |= {json.dumps(f)[1:-1] for f in list(forms)}
    return {f for f in forms if f}


def _all_forms(secret_values: list[str]) -> list[str]:
    return sorted({f for s in secret_values for f in secret_forms(s)}, key=len, reverse=True)


def scrub(text: str, secret_values: list[str] | None = None, *, forms: list[str] | None = None) -> str:
    """Replace every known secret, in every spelling, by ********."""
    if forms is None:
        forms = _all_forms(config.secret_values() if secret_values is None else secret_values)
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def scrub_tree(
    value: Any, secret_values: list[str], keep: frozenset[str] = frozenset(), *, forms: list[str] | None = None
) -> Any:
    """`scrub` applied to every string in a JSON-like tree; values under the keys in `keep` are left alone."""
    forms = _all_forms(secret_values) if forms is None else forms
    if isinstance(value, str):
        return scrub(value, forms=forms)
    if isinstance(value, list):
        return [scrub_tree(v, secret_values, keep, forms=forms) for v in value]
    if isinstance(value, dict):
        return {k: v if k in keep else scrub_tree(v, secret_values, keep, forms=forms) for k, v in value.items()}
    return value


def export_html(notebook_json: str) -> str:
    """A self-contained HTML report: the verdict first, charts embedded as PNG, nothing fetched, no script."""
    from imsnb.runs.html import render_report

    return render_report(json.loads(notebook_json))


def _write_run_folder(
    incident_dir: Path, started: datetime, notebook: str, nb: dict, summary: dict, source_text: str = ""
) -> tuple[Path, dict]:
    """Scrub, export and write the three files atomically; returns the folder and the summary as written.

    A secret that also occurs in the notebook's own code (a password that is an ordinary word, like `postgres`)
    is scrubbed from outputs, metadata and the summary's values but not from code, where it would break the
    artifact; the summary then carries a warning saying so.
    """
    known = config.secret_values()
    common = [s for s in known if s in source_text]
    rare = [s for s in known if s not in common]
    if common:
        summary.setdefault("warnings", []).append(
            f"{len(common)} secret value(s) also occur in the notebook's code (an ordinary word as a password): "
            "scrubbed from outputs but not from code; change those passwords"
        )
    clean = scrub_tree({k: v for k, v in nb.items() if k != "cells"}, known)
    clean["cells"] = [
        {
            **scrub_tree({k: v for k, v in cell.items() if k != "source"}, known),
            "source": scrub_tree(cell.get("source", ""), rare),
        }
        for cell in nb.get("cells", [])
    ]
    notebook_text = json.dumps(clean, indent=1, ensure_ascii=False) + "\n"
    try:
        html_text = scrub(export_html(notebook_text), rare)
    except Exception as exc:  # noqa: BLE001 - the run folder is written whatever the exporter does
        html_text = f"<html><body><p>HTML export failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}"
        html_text = scrub(html_text + "</p><p>Open notebook.ipynb instead.</p></body></html>", known)
    summary = scrub_tree(summary, known, keep=SUMMARY_KEYS_KEPT)
    summary_text = json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
    incident_dir.mkdir(parents=True, exist_ok=True)
    partial = incident_dir / f".partial-{started:%Y%m%dT%H%M%SZ}-{notebook}-{os.getpid()}-{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        for name, text in (
            ("notebook.ipynb", notebook_text),
            ("report.html", html_text),
            ("summary.json", summary_text),
        ):
            with open(partial / name, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:  # disk full, interrupted: leave no half-written folder behind, hidden or not
        shutil.rmtree(partial, ignore_errors=True)
        raise
    base = f"{started:%Y%m%dT%H%M%SZ}-{notebook}"
    for attempt in range(1, 1000):
        target = incident_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            os.rename(partial, target)  # atomic; fails if target exists and is not empty
            return target, summary
        except OSError:
            if not target.exists():
                raise
    raise RuntimeError(f"cannot find a free run folder name for {base}")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")
