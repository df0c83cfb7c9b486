"""Findings that reach people: the escalation matrix delivered to Slack, Email and PagerDuty, the artifacts to Jira.

    from imsnb import notify
    notify.check_ready(mode, ticket)                 # before running: bad config is bad input (exit 2)
    records = notify.deliver(results, mode="changes", ticket="OPS-123", archive="s3://bucket/prefix")

One message per run (or per suite / triage), sent to the destinations `[notify]` routes the worst severity's
channels to. `mode`: `always` sends every time; `changes` only when a check is new, escalated, de-escalated or
cleared since the last notification (state in outputs/.notify/state.json, or in the store IMSNB_STATE_URL names,
shared by every worker: `imsnb.notify.state`); `never` sends nothing. PagerDuty gets
one `trigger` per target and check at a paging level (dedup key imsnb/<target>/<check>), and `resolve` when that
check is found OK again. The page goes first, then Slack, then the mail, each within its whole-call deadline. A
channel that fails is one line on stderr and a record in each run's summary.json (`notifications`: channel, status,
error); the other channels still go out and the run's exit status is unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imsnb import archive, config
from imsnb.errors import BadParameter, ImsnbError, NotConfigured, StoreError
from imsnb.files import write_atomic
from imsnb.findings import Severity
from imsnb.findings.oncall import load_roster
from imsnb.notify import jira, mail, pagerduty, slack, state
from imsnb.notify.http import DeliveryFailed, check_secure
from imsnb.notify.message import Notice, build_notice, target_of
from imsnb.notify.routes import Routes, load_routes, secret
from imsnb.scrub import SUMMARY_KEYS_KEPT, scrub_tree
from imsnb.state.catalogue import shared_store
from imsnb.state.tickets import incident_issue

MODES = ("always", "changes", "never")
TICKET_FILE = "ticket.json"

__all__ = ["MODES", "check_ready", "deliver"]


def check_ready(mode: str, ticket: str | None = None) -> None:
    """Refuse, before anything runs, what would make delivery impossible: an unknown mode, a missing or wrong
    `[notify]` / `[oncall]` table, a malformed ticket key or missing Jira variables."""

    if mode not in MODES:
        raise BadParameter(f"notify mode {mode!r}: use one of {', '.join(MODES)}")
    try:
        if mode != "never":  # a broken roster only matters to a message: a plain run never fails over it
            routes = load_routes()
            load_roster()
            problem = next((p for p in _secret_problems(routes) if p), None)
            if problem:
                raise BadParameter(problem)
    except NotConfigured as exc:
        raise BadParameter(str(exc)) from None
    if ticket:
        jira.check_ticket(ticket)


def _secret_problems(routes: Routes) -> Iterator[str | None]:
    """Why a configured destination's secret cannot go where it is configured to (plain HTTP off this machine, an
    SMTP login outside TLS, a routing key of the wrong length), checked before a run as at each send."""
    if "slack" in routes.settings and secret("slack"):
        yield check_secure(secret("slack") or "", "IMSNB_SLACK_WEBHOOK_URL")
    if "pagerduty" in routes.settings:
        yield check_secure(pagerduty.events_url(routes.settings["pagerduty"]), "the PagerDuty events URL")
        yield pagerduty.check_routing_key(secret("pagerduty") or "") if secret("pagerduty") else None
    if "email" in routes.settings:
        yield mail.tls_problem(routes.settings["email"], secret("email"))


def deliver(
    results: Iterable[Any],
    *,
    mode: str = "changes",
    ticket: str | None = None,
    archive: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Notify about these runs (RunResults of one run, suite or triage) and attach them to `ticket`; the records
    written to each run's summary.json under `notifications`. Never raises for a channel that fails."""
    warn = warn or _stderr
    if mode not in MODES:
        raise BadParameter(f"notify mode {mode!r}: use one of {', '.join(MODES)}")
    results = list(results)
    if not results or (mode == "never" and not ticket):
        return []
    folders = [Path(r.folder) for r in results]
    summaries = [r.summary for r in results]
    notice = _scrubbed(build_notice(summaries, folders, archive=archive))
    files = _attachments(folders)
    records: list[dict[str, Any]] = []
    if mode != "never":
        records += _notify(notice, summaries, folders[0].parent.parent, mode, files, warn)
    if ticket:
        records += _ticket(ticket, notice, files, folders[0].parent)
    failed: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record["status"] == "failed":
            failed.setdefault(record["channel"], []).append(record)
    for channel, bad in failed.items():  # one line per channel, however many events it refused
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        warn(f"imsnb: warning: {channel} notification failed: {bad[0]['error']}{more} (the run is complete)")
    _record(folders, records)
    return records


# ---------------------------------------------------------------- notification


def _notify(
    notice: Notice, summaries: list[dict], outputs: Path, mode: str, files: list, warn: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Under the notification lock (`state.exchange`): compare with the state, page (the most urgent first: it is
    what wakes someone), keep what was paged. Then, with the lock released, Slack and the mail, and a second, short
    exchange keeps the destinations that failed (retried by the next run). Two runs or workers finding the same
    failure at once page once: the second compares with what the first kept."""
    try:
        routes = load_routes()
    except NotConfigured as exc:
        return [_failed("notify", str(exc), mode)]
    ok_notebooks = {str(s.get("notebook")) for s in summaries if s.get("status") == "ok"}
    everything = [
        {**f, "notebook": s.get("notebook"), "target": _target(f, s)}
        for s in summaries
        for f in s.get("findings") or []
    ]
    at = _now()

    def decide_and_page(st: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        diff = state.compare(st, everything, ok_notebooks, routes.min_severity)
        # masked like the rest of the notice: every channel renders this one masked notice
        notice.changes, notice.resolved = _scrub(
            [diff.changes, [{k: r[k] for k in ("target", "check", "was")} for r in diff.resolved]]
        )
        worst = Severity.parse(notice.severity)
        level = max([worst] + [Severity.parse(r["was"]) for r in diff.resolved])
        wanted = worst >= routes.min_severity or bool(diff.resolved)
        if mode == "changes":
            message_to = routes.destinations(level) if diff.changed else []
            if not diff.changed and worst >= routes.min_severity:  # last time's failures, tried again
                message_to = [d for d in routes.destinations(level) if d in st["failed"] and d != "pagerduty"]
        else:
            message_to = routes.destinations(level) if wanted else []
        records: list[dict[str, Any]] = []
        paged: set[str] = set()
        unresolved: set[str] = set()
        if "pagerduty" in routes.settings:
            records, paged, unresolved = _page(notice, diff, st, routes, mode)
        state.update(st, diff, routes.min_severity, paged=paged, unresolved=unresolved, at=at)
        return records, message_to

    (records, message_to), kept = state.exchange(outputs, decide_and_page, warn)
    failed: list[str] = []
    for destination in (d for d in ("slack", "email") if d in message_to):
        record = _send_message(destination, notice, routes, files, mode)
        records.append(record)
        if record["status"] == "failed":
            failed.append(destination)
    if message_to and kept:
        state.exchange(outputs, lambda st: st.update(failed=failed), warn)
    if not records:
        reason = "no change since the last notification" if mode == "changes" else "nothing at or above min_severity"
        records.append(
            {"channel": "notify", "status": "skipped", "error": None, "detail": reason, "mode": mode, "at": at}
        )
    return records


def _send_message(destination: str, notice: Notice, routes: Routes, files: list, mode: str) -> dict[str, Any]:
    settings = routes.settings[destination]
    try:
        if destination == "slack":
            url = secret("slack")
            if not url:
                raise DeliveryFailed("IMSNB_SLACK_WEBHOOK_URL is not set")
            problem = check_secure(url, "IMSNB_SLACK_WEBHOOK_URL")
            if problem:
                raise DeliveryFailed(f"not sent: {problem}")
            detail = slack.send(_scrub(slack.payload(notice)), url)
        else:
            msg = mail.build(notice, settings, files)
            detail = mail.send(msg, settings, secret("email"))
    except (DeliveryFailed, ImsnbError, OSError) as exc:
        return _failed(destination, str(exc), mode)
    return {"channel": destination, "status": "sent", "error": None, "detail": detail, "mode": mode, "at": _now()}


def _page(notice: Notice, diff: state.Diff, st: dict, routes: Routes, mode: str):
    """PagerDuty: trigger each check at a paging level (new or changed, or every time in `always`, or not paged
    yet because last time failed), resolve each paged check now below it. Returns (records, paged, unresolved)."""
    records, paged, unresolved = [], set(), set()
    key = secret("pagerduty")
    url = pagerduty.events_url(routes.settings["pagerduty"])
    triggers = []
    for k, f in diff.current.items():
        if not state.pages(f["severity"]) or "pagerduty" not in routes.destinations(f["severity"]):
            continue
        old = st["checks"].get(k) or {}
        if mode == "always" or k in diff.changed_keys or not old.get("paged"):
            triggers.append((k, f))
    problem = "IMSNB_PAGERDUTY_ROUTING_KEY is not set" if not key else pagerduty.check_routing_key(key)
    insecure = check_secure(url, "the PagerDuty events URL")
    problem = problem or (f"not sent: {insecure}" if insecure else None)
    if (triggers or diff.to_resolve) and problem:
        return [_failed("pagerduty", problem, mode)], set(), {r["key"] for r in diff.to_resolve}
    events = [(k, _scrub(pagerduty.trigger_event(_scrub(dict(f)), notice, "", at=_now()))) for k, f in triggers]
    events += [(r["key"], _scrub(pagerduty.resolve_event(r["target"], r["check"], ""))) for r in diff.to_resolve]
    stopped = None  # PagerDuty as a whole did not answer (network, deadline, 429, 5xx): the rest waits for next run
    for k, event in events:
        event["routing_key"] = key
        if stopped is None:
            record, stopped = _event_record(event, url, mode)
        else:
            record = {**_failed("pagerduty", f"not sent: {stopped}", mode), "detail": _event_detail(event)}
        records.append(record)
        if event["event_action"] == "trigger" and record["status"] == "sent":
            paged.add(k)
        elif event["event_action"] == "resolve" and record["status"] != "sent":
            unresolved.add(k)
    return records, paged, unresolved


def _event_detail(event: dict[str, Any]) -> str:
    return f"{event['event_action']} {event['dedup_key']}"


def _event_record(event: dict[str, Any], url: str, mode: str) -> tuple[dict[str, Any], str | None]:
    """The record of one event, and the error that stops the batch (None when the next event may still go: it was
    sent, or only this event was refused, e.g. 400 invalid)."""
    try:
        detail = pagerduty.send(event, url)
    except DeliveryFailed as exc:
        return {**_failed("pagerduty", str(exc), mode), "detail": _event_detail(event)}, (
            str(exc) if exc.retryable else None
        )
    sent = {"channel": "pagerduty", "status": "sent", "error": None, "detail": detail, "mode": mode, "at": _now()}
    return sent, None


# ---------------------------------------------------------------- ticket


def _ticket(key: str, notice: Notice, files: list, incident_dir: Path) -> list[dict[str, Any]]:
    try:
        jira.check_ticket(key)
    except BadParameter as exc:
        return [_failed("jira", str(exc), "ticket")]
    records = []
    where: jira.Site | None = None
    unknown: DeliveryFailed | None = None
    try:
        where = jira.site()  # Cloud or Server/Data Center: asked once, before either call
    except DeliveryFailed as exc:
        unknown = exc
    opened = None
    if key == jira.NEW:  # the incident's issue: the one its archive names, else a new one, opened once
        found, opened, said = _incident_key(notice, where, unknown, incident_dir)
        records += said
        if found is None:
            return records
        key = found
    calls = [("attach", lambda site: jira.attach(site, key, files))]
    if not opened:  # an issue opened just now has the findings as its description: the same comment adds nothing
        calls.append(("comment", lambda site: jira.comment(site, key, _scrub(jira.comment_body(site, notice)))))
    for what, call in calls:
        try:
            if where is None:
                raise unknown or DeliveryFailed("jira: the site could not be asked")
            detail = call(where)
        except (DeliveryFailed, OSError) as exc:
            records.append({**_failed("jira", str(exc), "ticket"), "detail": f"{what} {key}"})
            continue
        records.append(
            {
                "channel": "jira",
                "status": "sent",
                "error": None,
                "detail": f"{key}: {detail}",
                "mode": "ticket",
                "at": _now(),
            }
        )
    _write_json(incident_dir / TICKET_FILE, _ticket_record(incident_dir, key, opened))
    try:
        archive.write_index(incident_dir)
    except OSError as exc:
        records.append(_failed("index", f"index.html not rewritten with the ticket link: {exc}", "ticket"))
    return records


def _incident_key(
    notice: Notice, where: jira.Site | None, unknown: DeliveryFailed | None, incident_dir: Path
) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """`--ticket new`: the incident's issue key (the one its archive names, else one opened now), when imsnb opened
    it (None: it was there), and the records to keep; the key is None when no issue could be opened (the failure is
    in the records). `unknown`: why the Jira site could not be asked (`where` None)."""
    created: dict[str, Any] = {}

    def open_issue() -> str:
        created["asked"] = True
        if where is None:
            raise unknown or DeliveryFailed("jira: the site could not be asked")
        created["fields"] = _scrub(jira.issue_fields(where, notice, jira.new_issue_settings()))
        created["key"], created["priority"] = jira.create_issue(where, created["fields"])
        return created["key"]

    records: list[dict[str, Any]] = []
    opened = None
    # under the incident folder's lock (two runs on this worker) and the shared store's (two workers with their own
    # folders): two runs of one incident at once open one issue, the second reuses it
    with _incident_locked(incident_dir):
        key = archive.ticket_key(incident_dir) or ""
        if not key:
            try:
                key, said = _incident_issue(incident_dir.name, open_issue, created)
            except (DeliveryFailed, BadParameter, OSError) as exc:
                return None, None, [{**_failed("jira", str(exc), "ticket"), "detail": "open the incident's issue"}]
            records += said
            opened = _now() if "key" in created else None
            # kept at once: a run that stops before the end must not leave the next one to open a second issue
            _write_json(incident_dir / TICKET_FILE, _ticket_record(incident_dir, key, opened))
    if opened:
        priority = created["priority"]
        set_as = f"priority {priority}" if priority else "no priority (not on the project's create screen)"
        detail = f"{key}: opened in {created['fields']['project']['key']}, {set_as}"
        records.append(
            {"channel": "jira", "status": "sent", "error": None, "detail": detail, "mode": "ticket", "at": opened}
        )
    return key, opened, records


def _incident_issue(
    incident: str, open_issue: Callable[[], str], created: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """The incident's issue key from the shared store (opened there once, under its lock), else opened by this
    worker alone; with a record saying so when the store could not be used (`created` holds what open_issue made:
    an issue opened before the store failed is kept, never opened twice)."""
    store = shared_store()
    if store is None:
        return open_issue(), []
    try:
        key, _ = incident_issue(store, incident, open_issue)
        return key, []
    except Exception as exc:  # noqa: BLE001 - sqlite3/psycopg errors too: the store never costs the ticket
        if created.get("asked") and "key" not in created:
            raise  # Jira's answer, not the store's
        reason = str(exc) if isinstance(exc, StoreError) else " ".join(str(exc).split())
    said = _failed("store", f"{reason}; the incident's issue is this worker's own", "ticket")
    if "key" in created:  # opened, then the store failed: keep it (never open a second one now)
        return created["key"], [said]
    return open_issue(), [said]


@contextlib.contextmanager
def _incident_locked(incident_dir: Path) -> Iterator[None]:
    """flock on the incident's folder (as index.html's writer takes it; released before that runs)."""
    fd = os.open(incident_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _ticket_record(incident_dir: Path, key: str, opened: str | None) -> dict[str, Any]:
    """ticket.json: the key and link the index shows and `--ticket new` reuses, and when imsnb opened the issue
    (kept across later runs that attach to it)."""
    record: dict[str, Any] = {"key": key, "url": jira.issue_url(key), "updated": _now()}
    try:
        before = json.loads((incident_dir / TICKET_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    if isinstance(before, dict) and before.get("key") == key and before.get("opened"):
        opened = opened or str(before["opened"])
    if opened:
        record["opened"] = opened
    return record


# ---------------------------------------------------------------- helpers


def _attachments(folders: list[Path]) -> list[tuple[str, Path]]:
    """report.html and summary.json of each run (prefixed with the run folder's name when there are several)."""
    files = []
    for folder in folders:
        prefix = f"{folder.name}-" if len(folders) > 1 else ""
        files += [
            (f"{prefix}{name}", folder / name) for name in ("report.html", "summary.json") if (folder / name).is_file()
        ]
    return files


def _record(folders: list[Path], records: list[dict[str, Any]]) -> None:
    """Append the records to each run's summary.json (atomically; a failure here is a warning, never an error)."""
    if not records:
        return
    records = _scrub(records)
    for folder in folders:
        path = folder / "summary.json"
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            summary["notifications"] = list(summary.get("notifications") or []) + records
            _write_json(path, summary)
        except (OSError, ValueError) as exc:
            _stderr(f"imsnb: warning: notifications not recorded in {path}: {exc}")


def _write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _target(finding: dict[str, Any], summary: dict[str, Any]) -> str:
    return target_of(finding, summary)


# The user info of a URL (scheme://user:pw@host): a target's name never carries it, nor does any message text.
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def _scrub(value: Any) -> Any:
    """The one masking every channel's payload and every record goes through: known secrets in every spelling
    (`imsnb.scrub`), then the user info of any URL."""

    return _without_userinfo(scrub_tree(value, config.secret_values(), keep=SUMMARY_KEYS_KEPT))


def _without_userinfo(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub(r"\1", value)
    if isinstance(value, dict):
        return {k: _without_userinfo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_userinfo(v) for v in value]
    return value


def _scrubbed(notice: Notice) -> Notice:
    return Notice(**{f.name: _scrub(getattr(notice, f.name)) for f in dataclasses.fields(notice)})


def _failed(channel: str, error: str, mode: str) -> dict[str, Any]:
    return {"channel": channel, "status": "failed", "error": _scrub(error), "detail": None, "mode": mode, "at": _now()}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
