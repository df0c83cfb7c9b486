"""The run folder, written atomically:

    outputs/<incident_id>/<UTC yyyymmddTHHMMSSZ>-<notebook>/
        notebook.ipynb   the executed notebook (the artifact)
        report.html      the same, self-contained (charts embedded, nothing fetched from the network)
        summary.json     parameters, status, timing, findings, highest severity, escalation
        ...              files the notebook kept with the run (e.g. metrics-YYYYMMDD.json), scrubbed like the rest

The folder is assembled under a hidden `.partial-*` name and renamed into place when complete, so a crash never
leaves something that looks like a finished run.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import secrets
import shutil
import sys
from datetime import datetime
from pathlib import Path

from imsnb import config
from imsnb.errors import BadParameter
from imsnb.runs.html import render_report
from imsnb.runs.index import write_index
from imsnb.scrub import SUMMARY_KEYS_KEPT, scrub, scrub_tree
from imsnb.state.catalogue import record_run


def check_writable(folder: Path) -> None:
    """The outputs folder can be created and written (checked before the run, so no work is lost after it)."""
    probe = folder.resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BadParameter(f"outputs folder {folder} cannot be created: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BadParameter(f"outputs folder {folder} is not writable (no write permission on {probe})")


def refresh_index(incident_dir: Path) -> None:
    """Rewrite the incident's index.html; a failure there never costs the run (the index can be rebuilt)."""
    try:
        write_index(incident_dir)
    except OSError as exc:
        logging.getLogger(__name__).warning("index.html of %s not rewritten: %s", incident_dir, exc)


def record_in_catalogue(folder: Path, summary: dict) -> None:
    """Record the run in a shared store's catalogue (IMSNB_STATE_URL), so other workers' indexes and listings show
    it; a store that cannot take it is one warning on stderr (the run folder is complete)."""

    problem = record_run(folder, summary)
    if problem:
        print(f"imsnb: warning: {problem} (the run folder is complete)", file=sys.stderr, flush=True)


def export_html(notebook_json: str, summary: dict | None = None) -> str:
    """A self-contained HTML report: what it is about (from the run's summary), the verdict, charts embedded as PNG,
    nothing fetched, no script."""

    return render_report(json.loads(notebook_json), summary=summary)


# A file a notebook keeps with its run: a plain name, UTF-8 text (scrubbed like the rest), at most this big.
KEPT_FILE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,99}$")
MAX_KEPT_FILE_BYTES = 32 * 2**20
RUN_FOLDER_FILES = ("notebook.ipynb", "report.html", "summary.json")


def kept_files(folder: Path | None) -> tuple[list[tuple[str, str]], list[str]]:
    """The files a notebook put in its run's files folder, as (name, text), and why any other was left out: only
    regular files (no symlink), plainly named, UTF-8 text, at most MAX_KEPT_FILE_BYTES, not one of the run's own."""
    kept: list[tuple[str, str]] = []
    left: list[str] = []
    if folder is None or not folder.is_dir():
        return kept, left
    for path in sorted(folder.iterdir()):
        name = path.name
        if not KEPT_FILE_NAME.match(name) or name in RUN_FOLDER_FILES or path.is_symlink() or not path.is_file():
            left.append(f"{name}: not a plainly named regular file")
            continue
        if path.stat().st_size > MAX_KEPT_FILE_BYTES:
            left.append(f"{name}: larger than {MAX_KEPT_FILE_BYTES // 2**20} MiB")
            continue
        try:
            kept.append((name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            left.append(f"{name}: not UTF-8 text ({type(exc).__name__})")
    return kept, left


def write_run_folder(
    incident_dir: Path,
    started: datetime,
    notebook: str,
    nb: dict,
    summary: dict,
    source_text: str = "",
    *,
    extra_files: Path | None = None,
) -> tuple[Path, dict]:
    """Scrub, export and write the three files (and the files the notebook kept in `extra_files`) atomically;
    returns the folder and the summary as written.

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
    clean = _scrubbed_notebook(nb, known, rare)
    notebook_text = json.dumps(clean, indent=1, ensure_ascii=False) + "\n"
    try:
        html_text = scrub(export_html(notebook_text, summary), rare)
    except Exception as exc:  # noqa: BLE001 - the run folder is written whatever the exporter does
        html_text = f"<html><body><p>HTML export failed: {html.escape(type(exc).__name__)}: {html.escape(str(exc))}"
        html_text = scrub(html_text + "</p><p>Open notebook.ipynb instead.</p></body></html>", known)
    extra, left_out = kept_files(extra_files)
    if extra:
        summary["files"] = [name for name, _ in extra]
    if left_out:
        summary.setdefault("warnings", []).append("files not kept with the run: " + "; ".join(left_out))
    summary = scrub_tree(summary, known, keep=SUMMARY_KEYS_KEPT)
    summary_text = json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"
    files = [
        ("notebook.ipynb", notebook_text),
        ("report.html", html_text),
        ("summary.json", summary_text),
        *((name, scrub(text, known)) for name, text in extra),
    ]
    return _publish(incident_dir, f"{started:%Y%m%dT%H%M%SZ}-{notebook}", files), summary


def _scrubbed_notebook(nb: dict, known: list[str], rare: list[str]) -> dict:
    """Every secret out of outputs and metadata; out of code only the `rare` ones (see write_run_folder)."""
    clean = scrub_tree({k: v for k, v in nb.items() if k != "cells"}, known)
    clean["cells"] = [
        {
            **scrub_tree({k: v for k, v in cell.items() if k != "source"}, known),
            "source": scrub_tree(cell.get("source", ""), rare),
        }
        for cell in nb.get("cells", [])
    ]
    return clean


def _publish(incident_dir: Path, base: str, files: list[tuple[str, str]]) -> Path:
    """The files written and fsynced in a hidden folder, then renamed to `base` (or `base-2`, ...): a reader sees a
    whole run folder or none."""
    incident_dir.mkdir(parents=True, exist_ok=True)
    partial = incident_dir / f".partial-{base}-{os.getpid()}-{secrets.token_hex(4)}"
    partial.mkdir()
    try:
        for name, text in files:
            with open(partial / name, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
    except BaseException:  # disk full, interrupted: leave no half-written folder behind, hidden or not
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for attempt in range(1, 1000):
        target = incident_dir / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            os.rename(partial, target)  # atomic; fails if target exists and is not empty
            return target
        except OSError:
            if not target.exists():
                raise
    raise RuntimeError(f"cannot find a free run folder name for {base}")
