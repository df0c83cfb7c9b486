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

import dataclasses
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from imsnb.errors import BadParameter, ImsnbError, NotConfigured
from imsnb.findings import Severity
from imsnb.findings.oncall import load_roster
from imsnb.notify import jira, mail, pagerduty, slack, state
from imsnb.notify.http import DeliveryFailed, check_secure
from imsnb.notify.message import Notice, build_notice, target_of
from imsnb.notify.records import failed_record, now, scrub, write_json
from imsnb.notify.routes import Routes, load_routes, secret
from imsnb.notify.ticket import ticket_step

MODES = ("always", "changes", "never")

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
        records += ticket_step(ticket, notice, files, folders[0].parent)
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
        return [failed_record("notify", str(exc), mode)]
    ok_notebooks = {str(s.get("notebook")) for s in summaries if s.get("status") == "ok"}
    everything = [
        {**f, "notebook": s.get("notebook"), "target": _target(f, s)}
        for s in summaries
        for f in s.get("findings") or []
    ]
    at = now()

    def decide_and_page(st: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        diff = state.compare(st, everything, ok_notebooks, routes.min_severity)
        # masked like the rest of the notice: every channel renders this one masked notice
        notice.changes, notice.resolved = scrub(
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
            detail = slack.send(scrub(slack.payload(notice)), url)
        else:
            msg = mail.build(notice, settings, files)
            detail = mail.send(msg, settings, secret("email"))
    except (DeliveryFailed, ImsnbError, OSError) as exc:
        return failed_record(destination, str(exc), mode)
    return {"channel": destination, "status": "sent", "error": None, "detail": detail, "mode": mode, "at": now()}


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
        return [failed_record("pagerduty", problem, mode)], set(), {r["key"] for r in diff.to_resolve}
    events = [(k, scrub(pagerduty.trigger_event(scrub(dict(f)), notice, "", at=now()))) for k, f in triggers]
    events += [(r["key"], scrub(pagerduty.resolve_event(r["target"], r["check"], ""))) for r in diff.to_resolve]
    stopped = None  # PagerDuty as a whole did not answer (network, deadline, 429, 5xx): the rest waits for next run
    for k, event in events:
        event["routing_key"] = key
        if stopped is None:
            record, stopped = _event_record(event, url, mode)
        else:
            record = {**failed_record("pagerduty", f"not sent: {stopped}", mode), "detail": _event_detail(event)}
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
        return {**failed_record("pagerduty", str(exc), mode), "detail": _event_detail(event)}, (
            str(exc) if exc.retryable else None
        )
    sent = {"channel": "pagerduty", "status": "sent", "error": None, "detail": detail, "mode": mode, "at": now()}
    return sent, None


# ---------------------------------------------------------------- ticket


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
    records = scrub(records)
    for folder in folders:
        path = folder / "summary.json"
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            summary["notifications"] = list(summary.get("notifications") or []) + records
            write_json(path, summary)
        except (OSError, ValueError) as exc:
            _stderr(f"imsnb: warning: notifications not recorded in {path}: {exc}")


def _target(finding: dict[str, Any], summary: dict[str, Any]) -> str:
    return target_of(finding, summary)


def _scrubbed(notice: Notice) -> Notice:
    return Notice(**{f.name: scrub(getattr(notice, f.name)) for f in dataclasses.fields(notice)})


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
