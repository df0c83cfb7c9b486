"""summary.json's content, derived from an executed notebook alone (works for plain papermill runs too), and the
action journal the kernel writes ahead of each action, merged into it; `imsnb summarize` (a notebook file in,
summary.json out).

The run's `window` ({"start", "end"}, UTC ISO 8601) is the one the notebook used, as its set-up cell
(`incident.begin`) showed it in a `WINDOW_MIME` bundle; for a notebook without one, it is resolved from the executed
notebook's parameters (its parameters cell, and what papermill injected) at the time papermill started it. Either
way a run folder describes itself: the archive reads the window from summary.json alone."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from imsnb import __version__, config
from imsnb.bundles import ACTIONS_MIME, FINDINGS_MIME, WINDOW_MIME
from imsnb.errors import ImsnbError
from imsnb.files import write_atomic
from imsnb.runs.catalogue import parse_parameters
from imsnb.scrub import SUMMARY_KEYS_KEPT, redact_parameters, scrub_tree
from imsnb.window import parse_instant, resolve_window

# summary.json's `status` ("ok": the notebook ran to its end) as people read it: next to "worst finding ERROR",
# "ok" reads as a contradiction.
STATUS_WORDS = {"ok": "completed", "failed": "failed", "timeout": "timed out"}


def status_word(status: str | None) -> str:
    """ "completed", "failed" or "timed out" for a summary's status."""
    return STATUS_WORDS.get(str(status), str(status or "?"))


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


def note_unfinished_actions(nb: dict, actions: list[dict[str, Any]]) -> None:
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


def summarize(nb: dict, *, notebook: str | None = None, incident_id: str | None = None) -> dict[str, Any]:
    """summary.json's content, derived from an executed notebook alone (works for plain papermill runs too)."""
    meta = nb.get("metadata", {}).get("papermill", {})
    bundle, error, actions, window, shown_id = None, None, [], None, None
    for index, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error" and error is None:
                error = {"ename": out.get("ename"), "evalue": out.get("evalue"), "cell_index": index}
            data = out.get("data", {})
            if FINDINGS_MIME in data:
                bundle = data[FINDINGS_MIME]
            if ACTIONS_MIME in data:
                actions.extend(data[ACTIONS_MIME].get("actions", []))
            if window is None and _is_window(data.get(WINDOW_MIME)):
                window = {"start": data[WINDOW_MIME]["start"], "end": data[WINDOW_MIME]["end"]}
                shown_id = data[WINDOW_MIME].get("incident_id")  # the notebook's default when none was passed
    parameters = dict(meta.get("parameters") or {})
    bundle = bundle or {}
    summary = {
        "notebook": notebook or Path(meta.get("input_path") or "notebook").stem,
        "incident_id": incident_id or parameters.get("incident_id") or shown_id,
        "status": "failed" if error or meta.get("exception") else "ok",
        "started_at": meta.get("start_time"),
        "finished_at": meta.get("end_time"),
        "duration_s": meta.get("duration"),
        "parameters": redact_parameters(parameters),
        "severity": bundle.get("severity"),
        "escalation": bundle.get("escalation"),
        "findings": bundle.get("findings", []),
        "window": window or parameters_window(nb),
        "actions": actions,
        "imsnb_version": __version__,
    }
    if error:
        summary["error"] = error
    return summary


def summary_of_file(path: Path | str) -> dict[str, Any]:
    """summary.json's content for an executed notebook file (imsnb's or plain papermill's), scrubbed of every
    configured secret; a file that is no readable notebook is bad input."""
    path = Path(path)
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise ValueError("no cells")
    except (OSError, ValueError) as exc:
        raise ImsnbError(f"{path} is not a readable notebook ({' '.join(str(exc).split())}): give an .ipynb") from None
    return scrub_tree(summarize(nb), config.secret_values(), keep=SUMMARY_KEYS_KEPT)


def summary_text(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"


def write_summary(summary: dict[str, Any], out: Path | str) -> Path:
    """Write `summary` as JSON to `out` atomically; a folder that does not exist is bad input."""
    out = Path(out)
    if not out.parent.is_dir():
        raise ImsnbError(f"cannot write {out}: folder {out.parent} does not exist")
    return write_atomic(out, summary_text(summary))


def _is_window(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("start"), str) and isinstance(value.get("end"), str)


def parameters_window(nb: dict) -> dict[str, str] | None:
    """The window an executed notebook's parameters describe (its parameters cell's defaults, overridden by what
    papermill injected), ending when papermill started it; None when it declares no window or it cannot be read."""

    meta = nb.get("metadata", {}).get("papermill", {})
    declared: dict[str, Any] = {}
    for cell in nb.get("cells", []):
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = cell.get("source", "")
            try:
                found = parse_parameters("".join(source) if isinstance(source, list) else source)
            except (SyntaxError, ValueError):
                return None
            declared = {name: p.default for name, p in found.items()}
            break
    values = {**declared, **(meta.get("parameters") or {})}
    if not {"window", "start"} & set(values):
        return None
    try:
        now = parse_instant(meta["start_time"], "start_time") if meta.get("start_time") else None
        span = resolve_window(
            values.get("window") or "1h", values.get("start") or None, values.get("end") or None, now=now
        )
    except (ImsnbError, TypeError, ValueError):
        return None
    return {"start": _utc(span.start), "end": _utc(span.end)}


def _utc(at: Any) -> str:
    return at.isoformat(timespec="seconds").replace("+00:00", "Z")
