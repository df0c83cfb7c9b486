"""What was last notified, per target and check, kept in the outputs folder so a scheduled run notifies on change only.

    outputs/.notify/state.json       (the folder 0700, the file 0600, both the user's own)
        {"version": 1,
         "checks": {"<target>|<check>": {"target", "check", "notebook", "severity", "paged", "since", "updated"}},
         "failed": ["slack"]}          # destinations whose last message failed: retried on the next run

Whoever can write the state can silence pages (a planted "already paged" entry makes the next run skip the page), so
it is trusted only when nobody else could have written it: the outputs folder is the user's (or root's) and not
writable by everyone, `.notify/` is the user's alone, the file is the user's and writable by no one else. Anything
else is refused with one warning and the run notifies as if nothing had been sent (too many messages, never too
few). A malformed file is set aside (`state.json.bad-<time>`) the same way.

`exchange` reads, lets the caller compare, page and update, and writes atomically, all under a lock on `.notify/`
(or, with a shared store, in one transaction holding the store's notification lock: `imsnb.state.notify`), so two
runs finding the same failure at once page once and never lose each other's update. The lock is held across the
page (each PagerDuty call has its own deadline), never across Slack or the mail: those are sent after it, and the
destinations that failed are kept by a second, short `exchange`.

With IMSNB_STATE_URL (or `[state] url`) the state lives in that store, shared by every worker, and the file is not
used.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from imsnb.files import locked_folder, write_atomic
from imsnb.findings import Severity, escalation_for
from imsnb.state import open_store
from imsnb.state.notify import exchange as store_exchange

STATE_DIR = ".notify"
STATE_FILE = "state.json"
LEGACY_FILE = ".notify-state.json"  # where versions before 0.2 kept it: read once (when trusted), then moved
DESTINATIONS = ("slack", "email", "pagerduty")
T = TypeVar("T")


class Untrusted(Exception):
    """The state could have been written by someone else, or cannot be read: why, in one line."""


@dataclass
class Loaded:
    state: dict[str, Any]
    writable: bool  # False when the folder is not safe: the run's changes are not kept either


def state_path(outputs: Path) -> Path:
    return Path(outputs) / STATE_DIR / STATE_FILE


def fresh() -> dict[str, Any]:
    return {"version": 1, "checks": {}, "failed": []}


def load(outputs: Path, warn: Callable[[str], None]) -> Loaded:
    """The state to compare this run against. A folder others can write: one warning, an empty state, nothing
    written back. A file others own or can write, or one that is malformed: set aside, one warning, empty state."""
    outputs = Path(outputs)
    try:
        folder = _safe_folder(outputs)
    except Untrusted as exc:
        warn(f"imsnb: warning: notification state not used: {exc}; notifying as if nothing had been sent")
        return Loaded(fresh(), writable=False)
    path = folder / STATE_FILE
    legacy = outputs / LEGACY_FILE
    if not path.exists() and legacy.is_file() and not legacy.is_symlink():
        path = legacy
    try:
        state = _read_trusted(path)
    except FileNotFoundError:
        return Loaded(fresh(), writable=True)
    except Untrusted as exc:
        aside = _set_aside(path)
        warn(
            f"imsnb: warning: notification state {path} refused: {exc}"
            + (f"; set aside as {aside.name}" if aside else "")
            + "; notifying as if nothing had been sent"
        )
        return Loaded(fresh(), writable=True)
    if path == legacy:
        write(outputs, state)
        legacy.unlink(missing_ok=True)
    return Loaded(state, writable=True)


def exchange(outputs: Path, work: Callable[[dict[str, Any]], T], warn: Callable[[str], None]) -> tuple[T, bool]:
    """Under the notification lock: read the state, `work(state)` (compare, page, update it in place), write it.
    Returns (what `work` returned, whether the state was kept). The shared store's when one is configured, else
    outputs/.notify/state.json; a state that cannot be used is one warning and `work` runs on an empty one."""
    store = shared_store(warn)
    if store is not None:
        return store_exchange(store, work, warn, check=_malformed)
    try:
        folder = _safe_folder(Path(outputs))
    except (OSError, Untrusted) as exc:
        warn(f"imsnb: warning: notification state not used: {exc}; notifying as if nothing had been sent")
        return work(fresh()), False
    with locked_folder(folder):
        loaded = load(outputs, warn)
        result = work(loaded.state)
        if not loaded.writable:
            return result, False
        try:
            write(outputs, loaded.state)
        except OSError as exc:
            warn(f"imsnb: warning: notification state not kept: {exc} (the next run may notify again)")
            return result, False
        return result, True


def shared_store(warn: Callable[[str], None]) -> Any:
    """The shared store (IMSNB_STATE_URL or `[state] url`) the state lives in, or None for the outputs folder's
    file. A store URL that cannot be used is one warning, and None (the file, this run only)."""

    store = open_store()
    if store.url is None:
        warn(f"imsnb: warning: {store.problem}; notification state kept in the outputs folder this time")
        return None
    return store if store.shared else None


def write(outputs: Path, state: dict[str, Any]) -> None:
    write_atomic(state_path(outputs), json.dumps(state, indent=1, sort_keys=True), mode=0o600)


def _safe_folder(outputs: Path) -> Path:
    """outputs/.notify, created 0700 when missing; Untrusted when someone else could replace what is in it."""
    me = os.geteuid()
    outputs.mkdir(parents=True, exist_ok=True)
    info = os.lstat(outputs)
    if stat.S_ISLNK(info.st_mode):
        info = os.stat(outputs)
    if info.st_uid not in (me, 0):
        raise Untrusted(
            f"{outputs} belongs to uid {info.st_uid}, not to this user (use --outputs in a folder of yours)"
        )
    if info.st_mode & stat.S_IWOTH and not info.st_mode & stat.S_ISVTX:
        raise Untrusted(f"{outputs} is writable by everyone (mode {stat.S_IMODE(info.st_mode):o}): chmod o-w it")
    folder = outputs / STATE_DIR
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise Untrusted(f"{folder} is not a folder")
    if info.st_uid != me:
        raise Untrusted(f"{folder} belongs to uid {info.st_uid}, not to this user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(folder, 0o700)  # ours: only the file's own checks decide whether its content is
    return folder


def _read_trusted(path: Path) -> dict[str, Any]:
    """The state in `path`; FileNotFoundError when there is none, Untrusted when another user owns it, others can
    write it, or it is malformed."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Untrusted("not a regular file")
        if info.st_uid != os.geteuid():
            raise Untrusted(f"it belongs to uid {info.st_uid}, not to this user")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise Untrusted(f"others can write it (mode {stat.S_IMODE(info.st_mode):o})")
        raw = handle.read(16 * 1024 * 1024)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Untrusted(f"not JSON ({' '.join(str(exc).split())[:80]})") from None
    problem = _malformed(data)
    if problem:
        raise Untrusted(f"malformed: {problem}")
    return {"version": 1, "checks": data["checks"], "failed": list(data.get("failed") or [])}


def _malformed(data: Any) -> str | None:
    """What is wrong with a state's content, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("version", 1) != 1:
        return f"version {data.get('version')!r}"
    checks = data.get("checks")
    if not isinstance(checks, dict):
        return "checks is not an object"
    for key, entry in checks.items():
        if not isinstance(entry, dict):
            return f"checks[{key!r}] is not an object"
        for name in ("target", "check"):
            if not isinstance(entry.get(name), str):
                return f"checks[{key!r}].{name} is not a string"
        try:
            Severity.parse(entry.get("severity"))
        except (ValueError, TypeError, AttributeError, KeyError):
            return f"checks[{key!r}].severity {entry.get('severity')!r}"
        if not isinstance(entry.get("paged", False), bool):
            return f"checks[{key!r}].paged is not true or false"
    failed = data.get("failed") or []
    if not isinstance(failed, list) or any(d not in DESTINATIONS for d in failed):
        return f"failed {failed!r} is not a list of destinations"
    return None


def _set_aside(path: Path) -> Path | None:
    """Rename a refused state beside itself (state.json.bad-<UTC time>) so the next run starts afresh; None when
    it cannot be moved."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.bad-{stamp}")
    try:
        os.replace(path, aside)
    except OSError:
        return None
    return aside


def key_of(target: str, check: str) -> str:
    return f"{target}|{check}"


def pages(severity: str) -> bool:
    return escalation_for(severity).page


@dataclass
class Diff:
    """What changed between the state and these runs' findings."""

    current: dict[str, dict[str, Any]]  # key -> the worst finding for it in these runs (any severity)
    changes: list[str] = field(default_factory=list)  # new, escalated, de-escalated (human lines)
    changed_keys: set[str] = field(default_factory=set)
    resolved: list[dict[str, Any]] = field(default_factory=list)  # were at min_severity or above, now below
    to_resolve: list[dict[str, Any]] = field(default_factory=list)  # paged before, below paging level now

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.resolved)


def compare(state: dict[str, Any], findings: list[dict[str, Any]], ok_notebooks: set[str], minimum: Severity) -> Diff:
    """`findings` carry `target` and `notebook`; `ok_notebooks` completed, so a check they no longer report is
    taken as cleared (a failed run clears nothing it did not report)."""
    current: dict[str, dict[str, Any]] = {}
    for f in findings:
        key = key_of(f["target"], f["check"])
        if key not in current or Severity.parse(f["severity"]) > Severity.parse(current[key]["severity"]):
            current[key] = f
    diff = Diff(current)
    previous = state["checks"]
    for key, f in current.items():
        now = Severity.parse(f["severity"])
        old = previous.get(key)
        was = Severity.parse(old["severity"]) if old else None
        where = f"{f['check']} on {f['target']}"
        if now >= minimum:
            if was is None or was < minimum:
                diff.changes.append(f"new {now.name}: {where}")
            elif now > was:
                diff.changes.append(f"escalated {was.name} -> {now.name}: {where}")
            elif now < was:
                diff.changes.append(f"de-escalated {was.name} -> {now.name}: {where}")
            if was is None or now != was:
                diff.changed_keys.add(key)
        elif was is not None and was >= minimum:
            diff.resolved.append({"key": key, "target": f["target"], "check": f["check"], "was": was.name})
    for key, old in previous.items():
        if key in current:
            continue
        if old.get("notebook") in ok_notebooks and Severity.parse(old["severity"]) >= minimum:
            diff.resolved.append({"key": key, "target": old["target"], "check": old["check"], "was": old["severity"]})
    for key, old in previous.items():
        if not old.get("paged"):
            continue
        now_f = current.get(key)
        cleared = now_f is None and old.get("notebook") in ok_notebooks
        if cleared or (now_f is not None and not pages(now_f["severity"])):
            diff.to_resolve.append({"key": key, "target": old["target"], "check": old["check"]})
    return diff


def update(
    state: dict[str, Any],
    diff: Diff,
    minimum: Severity,
    *,
    paged: set[str],
    unresolved: set[str],
    at: str,
) -> None:
    """Advance the state: keys at `minimum` or above are kept with their severity, cleared ones are dropped unless
    their PagerDuty resolve failed (`unresolved`: kept, so the next run resolves them again)."""
    checks = state["checks"]
    for key, f in diff.current.items():
        old = checks.get(key) or {}
        now = Severity.parse(f["severity"])
        still_paged = bool(old.get("paged")) and pages(f["severity"]) or key in paged or key in unresolved
        if now >= minimum or key in unresolved:
            same = old.get("severity") == now.name
            checks[key] = {
                "target": f["target"],
                "check": f["check"],
                "notebook": f["notebook"],
                "severity": now.name,
                "paged": still_paged,
                "since": old.get("since") if same and old.get("since") else at,
                "updated": at,
            }
        else:
            checks.pop(key, None)
    for item in diff.resolved:
        if item["key"] in diff.current:
            continue
        if item["key"] in unresolved and item["key"] in checks:  # told as resolved; only the page is left open
            checks[item["key"]].update(severity=Severity.OK.name, updated=at)
        else:
            checks.pop(item["key"], None)
    for item in diff.to_resolve:
        if item["key"] in checks and item["key"] not in unresolved:
            if Severity.parse(checks[item["key"]]["severity"]) >= minimum:
                checks[item["key"]]["paged"] = False
            else:
                checks.pop(item["key"], None)
