"""The gate and the write-ahead audit, shared by every target module (postgres, redis, rds, ecs).

Every action starts as a `Plan` built from what a diagnostic found: what, on which target, why, the expected
effect, how to undo it, and the equivalent command. `execute(plans, apply_actions=..., approver=...)` shows the
plans as a table and applies them only when both keys are turned:

- the notebook key: the parameter `apply_actions=True`, with `approver` naming who approved;
- the run key: `imsnb run --allow-actions` (which sets IMSNB_ALLOW_ACTIONS=1 for the kernel; headless runs
  without the flag never see the variable), or `IMSNB_ALLOW_ACTIONS=1` in the environment of an interactive kernel
  when it starts. It is read once, when imsnb is imported (`imsnb.started_with`); a later os.environ change (a named
  environment, a cell) does not turn it.

With one key, nothing happens and a line says which key is missing. With both, each plan re-checks its precondition
right before acting (the backend is still the same session, the instance is `available`, the service exists and the
count is within bounds, the Redis database is the one named); a changed world means skipped, with the reason.
Write-ahead: with both keys, each plan is recorded as `applying` (with `applying_at`) before it acts — in the
notebook's actions output, updated in place, and in the runner's journal file — and again with its outcome, so a
run killed mid-action still shows what was being applied. Every outcome is shown in the notebook and emitted as
`application/vnd.imsnb.actions+json`, which the runner collects into `summary.json` under `actions`.
"""

from __future__ import annotations

import html
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from imsnb import started_with
from imsnb.bundles import ACTIONS_MIME
from imsnb.tables import table_html, table_text

__all__ = [
    "ALLOW_ENV",
    "RECORD_KEYS",
    "WAIT_MARGIN_S",
    "Changed",
    "Keys",
    "Plan",
    "execute",
    "keys",
    "wait_budget_s",
    "wait_deadline",
    "wait_for_status",
]

ALLOW_ENV = started_with.ALLOW_ENV
WAIT_MARGIN_S = 30.0  # long waits stop this long (or a fifth of the timeout, at least 5 s) before the cell timeout
RECORD_KEYS = [
    "id",
    "action",
    "target",
    "reason",
    "expected_effect",
    "undo",
    "command",
    "status",
    "detail",
    "approver",
    "planned_at",
    "applying_at",
    "finished_at",
]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}".rstrip(": ")


class Changed(Exception):
    """Raised by an apply step that finds, at the last moment, that the world is no longer as planned."""


@dataclass
class Plan:
    """One action, planned from a diagnostic's result; `recheck` returns None when the world is still as planned
    (else why not), `apply` acts and returns what it did."""

    action: str
    target: str
    reason: str
    expected_effect: str
    undo: str
    command: str
    recheck: Callable[[], str | None] = field(repr=False, compare=False)
    apply: Callable[[], str] = field(repr=False, compare=False)
    within_cap: bool = True
    cap_note: str = ""
    planned_at: str = field(default_factory=_now)

    def record(self) -> dict[str, Any]:
        return {
            "id": secrets.token_hex(6),
            "action": self.action,
            "target": self.target,
            "reason": self.reason,
            "expected_effect": self.expected_effect,
            "undo": self.undo,
            "command": self.command,
            "status": "planned",
            "detail": "" if self.within_cap else self.cap_note,
            "approver": None,
            "planned_at": self.planned_at,
            "applying_at": None,
            "finished_at": None,
        }


@dataclass(frozen=True)
class Keys:
    notebook: bool
    run: bool
    approver: str

    @property
    def missing(self) -> str | None:
        """Which key is missing, as a line for the notebook; None when both are turned and an approver is named."""
        notebook_hint = "set the parameter apply_actions=True (`-p apply_actions True`) and name the approver"
        run_hint = "run with `imsnb run --allow-actions` (or start the interactive kernel with IMSNB_ALLOW_ACTIONS=1)"
        if not self.notebook and not self.run:
            return f"both keys are missing: {notebook_hint}, and {run_hint}"
        if not self.notebook:
            return f"the notebook key is missing: {notebook_hint}"
        if not self.run:
            return f"the run key is missing: {run_hint}"
        if not self.approver:
            return "no approver is named: set the parameter approver (`-p approver NAME`)"
        return None


def keys(apply_actions: bool = False, approver: str = "") -> Keys:
    """The two keys: the notebook's parameter and the run's key, as the process was started (never os.environ now)."""
    return Keys(
        notebook=apply_actions is True,
        run=started_with.run_key(),
        approver=" ".join(str(approver or "").split()),
    )


def execute(
    plans: list[Plan], *, apply_actions: bool = False, approver: str = "", title: str = "Actions"
) -> pd.DataFrame:
    """Show the plans and, with both keys, re-check and apply each; every outcome is displayed and recorded.

    Write-ahead: each plan is recorded as `applying` (the notebook output, updated in place, and the runner's
    journal) before it acts, and again with its outcome."""
    turned = keys(apply_actions, approver)
    records = [plan.record() for plan in plans]
    if turned.missing is not None:
        for record in records:
            record["detail"] = f"not applied: {turned.missing}"
    display_id = f"imsnb-actions-{secrets.token_hex(6)}"
    _display_outcome(_frame(records), turned, title, display_id=display_id, stage="start")
    if turned.missing is None:
        for plan, record in zip(plans, records, strict=True):
            if plan.within_cap:
                record.update(status="applying", approver=turned.approver, applying_at=_now())
                record["detail"] = "applying: started, outcome not yet known"
                _journal(record)
                _display_outcome(_frame(records), turned, title, display_id=display_id, stage="progress")
            record.update(_outcome(plan), approver=turned.approver, finished_at=_now())
            _journal(record)
            _display_outcome(_frame(records), turned, title, display_id=display_id, stage="progress")
    frame = _frame(records)
    _display_outcome(frame, turned, title, display_id=display_id, stage="final")
    return frame


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(records, columns=RECORD_KEYS)


def _journal(record: dict[str, Any]) -> None:
    """Append the record to the runner's journal, on disk before anything else happens (no journal: nothing)."""
    path = started_with.journal_path()
    if path is None:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def wait_deadline(wait_s: float) -> tuple[float, str]:
    """time.monotonic() until which a long wait may go, and a note when the runner's cell timeout shortens it."""
    asked = time.monotonic() + wait_s
    cell_end = started_with.cell_deadline()
    if cell_end is None:
        return asked, ""
    timeout = started_with.cell_timeout_s() or 0.0
    bound = cell_end - min(WAIT_MARGIN_S, max(5.0, timeout / 5))
    if bound >= asked:
        return asked, ""
    return bound, f"the wait stops short of the run's cell timeout of {timeout:g} s (--timeout)"


def _outcome(plan: Plan) -> dict[str, str]:
    if not plan.within_cap:
        return {"status": "skipped", "detail": plan.cap_note}
    try:
        changed = plan.recheck()
    except Exception as exc:  # noqa: BLE001 - a failed re-check must skip, never act blind
        changed = f"the re-check failed ({one_line(exc)})"
    if changed:
        return {"status": "skipped", "detail": changed}
    try:
        return {"status": "applied", "detail": plan.apply()}
    except Changed as exc:
        return {"status": "skipped", "detail": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the failure is the outcome, recorded with its error
        return {"status": "failed", "detail": one_line(exc)}


def _display_outcome(frame: pd.DataFrame, turned: Keys, title: str, *, display_id: str, stage: str = "final") -> None:
    """One output per `execute`, shown at the start and updated in place as each plan is applied."""

    if turned.missing is None:
        line = f"Both keys turned; approved by {turned.approver}. Each action re-checked its precondition first."
    else:
        line = f"Plan only, nothing was changed: {turned.missing}."
    shown = frame.drop(columns=["id", "planned_at", "applying_at", "finished_at"])
    table = "<p><i>(nothing to do)</i></p>" if frame.empty else table_html(shown)
    data = {
        # mathjax_ignore: JupyterLab would read a query's $1 placeholders in the plan as TeX (see imsnb.report)
        "text/html": (
            f"<div class='mathjax_ignore'><p><b>{html.escape(title)}.</b> {html.escape(line)}</p>{table}</div>"
        ),
        "text/plain": f"{title}. {line}\n" + ("(nothing to do)" if frame.empty else table_text(shown)),
        ACTIONS_MIME: {"title": title, "keys": _keys_dict(turned), "actions": _records(frame)},
    }
    try:
        # lazy: IPython is there only inside a kernel; the CLI and workers never load it
        from IPython.display import display, update_display
    except ImportError:  # plain Python: print the text form once, at the end
        if stage == "final":
            print(data["text/plain"])
        return
    if stage == "start":
        display(data, raw=True, display_id=display_id)
    else:
        update_display(data, raw=True, display_id=display_id)


def _keys_dict(turned: Keys) -> dict[str, Any]:
    return {"notebook": turned.notebook, "run": turned.run, "approver": turned.approver or None}


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


# --- waiting inside a notebook cell ------------------------------------------------------------------------------


def wait_budget_s(wanted_s: float) -> float:
    """How long an action may wait for AWS inside one cell: what was asked, stopped short of the runner's cell
    timeout (`wait_deadline`), so a slow restore ends as a recorded `failed` outcome instead of a killed cell."""
    deadline, _ = wait_deadline(float(wanted_s))
    return max(1.0, deadline - time.monotonic())


def wait_for_status(describe: Callable[[], str], done: str, *, wait_s: float, poll_s: float, what: str) -> float:
    """Poll `describe()` (a status) until it is `done`; seconds waited. Raises TimeoutError past the budget."""
    budget = wait_budget_s(wait_s)
    started = time.monotonic()
    while True:
        status = describe()
        if status == done:
            return time.monotonic() - started
        if status in ("failed", "incompatible-restore", "incompatible-parameters", "deleting", "deleted"):
            raise RuntimeError(f"{what} is {status}")
        if time.monotonic() - started > budget:
            raise TimeoutError(f"{what} still {status!r} after {budget:g} s; keep waiting by hand")
        time.sleep(poll_s)
