"""What changed before the errors: the runbook's "check recent deployments" and "review recent code changes" as one
timeline — ECS deployments and task definition revisions, RDS events, ElastiCache events and imsnb's own actions
from the incident's archive — beside the error rate per minute, and the change the errors followed
(`aws.change_correlation`), named only when it came within a lead time before they rose.

    timeline = changes.collect(span, cluster=..., service=..., rds_instance=..., cache_cluster=..., aws=aws)
    curve = changes.error_curve(errors)                  # errors and lines per minute, from logs.error_summary
    found = changes.correlate(curve, timeline.table)     # the rise, and the change just before it (or none)
    changes.correlation_finding(found)

A source that cannot be read (no permission, an API the endpoint lacks) is a row of `timeline.sources` saying why;
the others still make the timeline. An unreachable AWS is raised, as everywhere (the section's finding).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from imsnb import started_with
from imsnb.aws import Aws, aws_or_default, ecs, if_exists, rds
from imsnb.errors import NotConfigured, Unreachable
from imsnb.findings import Finding, Severity, threshold
from imsnb.period import Period
from imsnb.window import Window

LEAD_TIME_S = 15 * 60  # a change more than this before the errors rose is not named as their cause
REVISIONS_READ = 5  # task definition revisions whose registration time is read (one DescribeTaskDefinition each)
BEFORE_MINUTES = 10  # the error rate "before" is the mean over at most this many minutes before the rise
CHANGE_COLUMNS = ["at", "source", "kind", "target", "what", "task_definition", "candidate"]
SOURCE_COLUMNS = ["source", "status", "changes", "note"]
APPLIED = ("applied", "applying", "failed")  # an action in these states may have changed its target


@dataclass
class Timeline:
    """The changes in a window, oldest first (CHANGE_COLUMNS; `candidate`: a change to a running system, which
    may be named as the cause; a registered task definition alone changes nothing), and what each source gave."""

    window: Window
    table: pd.DataFrame
    sources: pd.DataFrame


def _utc(value: Any) -> pd.Timestamp | None:
    if value is None or value == "":
        return None
    at = pd.Timestamp(value)
    return at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")


def _in(window: Window, at: pd.Timestamp | None) -> bool:
    return at is not None and pd.Timestamp(window.start) <= at <= pd.Timestamp(window.end)


def _row(at: pd.Timestamp, source: str, kind: str, target: str, what: str, **extra: Any) -> dict[str, Any]:
    return {
        "at": at,
        "source": source,
        "kind": kind,
        "target": target,
        "what": what,
        "task_definition": extra.get("task_definition"),
        "candidate": extra.get("candidate", True),
    }


def ecs_changes(cluster: str, service: str, window: Window, *, aws: Aws | None = None) -> list[dict[str, Any]]:
    """The service's deployments created in the window (a new deployment is PRIMARY from its creation: ECS starts
    moving traffic to it then), and the revisions of its family registered in the window (context only)."""
    aws = aws_or_default(aws)
    described = ecs.describe_service(cluster, service, aws=aws)
    target = f"{cluster}/{service}"
    rows = []
    for deployment in described.get("deployments", []):
        at = _utc(deployment.get("createdAt"))
        if not _in(window, at):
            continue
        name = deployment.get("taskDefinition", "").rsplit("/", 1)[-1]
        state = f"rollout {deployment['rolloutState']}" if deployment.get("rolloutState") else deployment.get("status")
        what = f"deployment {name} reached PRIMARY ({state})"
        rows.append(_row(at, "ecs", "deployment", target, what, task_definition=name))
    family = described.get("taskDefinition", "").rsplit("/", 1)[-1].rsplit(":", 1)[0]
    if family:
        for name in ecs.task_definition_revisions(family, aws=aws, limit=REVISIONS_READ)["task_definition"]:
            reply = aws.call("ecs", "describe_task_definition", taskDefinition=name)
            at = _utc(reply.get("taskDefinition", {}).get("registeredAt"))
            if _in(window, at):
                what = f"{name} registered"
                rows.append(_row(at, "ecs", "task definition", family, what, task_definition=name, candidate=False))
    return rows


def rds_changes(instance: str, window: Window, *, aws: Aws | None = None) -> list[dict[str, Any]]:
    """RDS events of the instance, and of its cluster when it is in one (an Aurora failover is the cluster's), in the
    window: reboots, failovers, parameter and class changes, maintenance; routine backups are left out."""
    aws = aws_or_default(aws)
    events = rds.events(instance, window, aws=aws)
    rows = [
        _row(_utc(e.at), "rds", e.categories or "event", instance, f"RDS {instance}: {e.message}")
        for e in events.itertuples()
        if e.categories != "backup"
    ]
    described = if_exists(lambda: rds.instances(instance, aws=aws))
    cluster = described["cluster"].iloc[0] if described is not None and not described.empty else None
    if isinstance(cluster, str) and cluster:
        found = aws.paginate(
            "rds",
            "describe_events",
            "Events",
            limit=500,
            SourceIdentifier=cluster,
            SourceType="db-cluster",
            StartTime=window.start,
            EndTime=window.end,
        )
        for event in found:
            at, categories = _utc(event.get("Date")), ", ".join(event.get("EventCategories", []))
            if _in(window, at) and categories != "backup":
                rows.append(_row(at, "rds", categories or "event", cluster, f"RDS {cluster}: {event.get('Message')}"))
    return rows


def elasticache_changes(cluster_id: str, window: Window, *, aws: Aws | None = None) -> list[dict[str, Any]]:
    """ElastiCache events of the cluster in the window (node replacements, reboots, failovers, modifications)."""
    found = aws_or_default(aws).paginate(
        "elasticache",
        "describe_events",
        "Events",
        limit=500,
        SourceIdentifier=cluster_id,
        SourceType="cache-cluster",
        StartTime=window.start,
        EndTime=window.end,
    )
    rows = []
    for event in found:
        at = _utc(event.get("Date"))
        if _in(window, at):  # filtered here too, in case the API ignores the range
            what = f"ElastiCache {cluster_id}: {event.get('Message')}"
            rows.append(_row(at, "elasticache", "event", cluster_id, what))
    return rows


def _action_row(action: dict[str, Any]) -> dict[str, Any] | None:
    at = _utc(action.get("applying_at") or action.get("finished_at"))
    if action.get("status") not in APPLIED or at is None:
        return None
    approver = f", approved by {action['approver']}" if action.get("approver") else ""
    return _row(
        at,
        "imsnb",
        str(action.get("action")),
        str(action.get("target")),
        f"imsnb action {action.get('action')} on {action.get('target')} ({action.get('status')}{approver})",
    )


def action_changes(incident_dir: Path | None, window: Window) -> list[dict[str, Any]]:
    """The actions imsnb applied (or began to apply) in the window: from the summary.json of every run archived
    under `incident_dir`, and from this run's own write-ahead journal."""
    records: dict[str, dict[str, Any]] = {}
    if incident_dir is not None and incident_dir.is_dir():
        for summary_path in sorted(incident_dir.glob("*/summary.json")):
            try:
                summary = json.loads(summary_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            for action in summary.get("actions") or [] if isinstance(summary, dict) else []:
                if isinstance(action, dict):
                    records[str(action.get("id") or len(records))] = action
    journal = started_with.journal_path()
    if journal is not None and journal.is_file():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                action = json.loads(line)
            except ValueError:
                continue
            if isinstance(action, dict):
                records[str(action.get("id") or len(records))] = action  # the later state of the same action wins
    rows = [_action_row(a) for a in records.values()]
    return [r for r in rows if r is not None and _in(window, r["at"])]


def incident_folder(archive_dir: str = "") -> Path | None:
    """Where the incident's earlier runs are: `archive_dir` when given, else the folder the runner is writing
    this run into (its parent is the incident's folder); None for a notebook not run by `imsnb run`."""
    if archive_dir:
        return Path(archive_dir)
    folder = started_with.run_folder()
    return folder.parent if folder is not None else None


def collect(
    window: Window,
    *,
    cluster: str,
    service: str,
    rds_instance: str,
    cache_cluster: str,
    incident_dir: Path | None = None,
    aws: Aws | None = None,
) -> Timeline:
    """Every change in the window, oldest first, and one row per source saying what it gave or why it gave
    nothing. Unreachable AWS (or none configured) is raised; any other failure of one source is its row."""
    aws = aws_or_default(aws)
    readers = (
        (f"ECS {cluster}/{service}", lambda: ecs_changes(cluster, service, window, aws=aws)),
        (f"RDS {rds_instance} events", lambda: rds_changes(rds_instance, window, aws=aws)),
        (f"ElastiCache {cache_cluster} events", lambda: elasticache_changes(cache_cluster, window, aws=aws)),
    )
    rows: list[dict[str, Any]] = []
    sources = []
    for name, read in readers:
        try:
            found = read()
        except (Unreachable, NotConfigured):
            raise
        except Exception as exc:  # noqa: BLE001 - one source that cannot be read leaves the others
            sources.append((name, "not read", 0, _one_line(exc)))
            continue
        rows += found
        sources.append((name, "read", len(found), ""))
    if incident_dir is None:
        sources.append(("imsnb actions", "not read", 0, "not run by `imsnb run`: pass archive_dir"))
    else:
        found = action_changes(incident_dir, window)
        rows += found
        sources.append(("imsnb actions", "read", len(found), f"runs archived in {incident_dir}"))
    table = pd.DataFrame(rows, columns=CHANGE_COLUMNS)
    if not table.empty:
        table["at"] = pd.to_datetime(table["at"], utc=True)
        table = table.sort_values("at", kind="stable").reset_index(drop=True)
    return Timeline(window, table, pd.DataFrame(sources, columns=SOURCE_COLUMNS))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if "500 Internal Server Error" in text:  # botocore could not parse an HTML error page (moto: not implemented)
        text = "the endpoint answered HTTP 500 (does it implement this API?)"
    return f"{type(exc).__name__}: {text[:160]}" if text else type(exc).__name__


# --- the errors and the change they followed ---------------------------------------------------------------------


def error_curve(summary: Any) -> pd.DataFrame:
    """Per minute: matching lines (`errors`), all lines (`events`), their ratio (`rate`, None in a minute without
    lines) and the minute's first error (`first`), from `imsnb.aws.logs.error_summary`."""
    errors = summary.over_time.set_index("minute") if not summary.over_time.empty else None
    events = summary.events_over_time
    minutes = set()
    if errors is not None:
        minutes |= set(errors.index)
    if events is not None and not events.empty:
        minutes |= set(events["minute"])
        events = events.set_index("minute")["events"]
    frame = pd.DataFrame(index=pd.DatetimeIndex(sorted(minutes), name="minute"))
    frame["errors"] = errors["errors"].reindex(frame.index).fillna(0).astype(int) if errors is not None else 0
    frame["events"] = events.reindex(frame.index).fillna(0).astype(int) if events is not None and len(events) else 0
    frame["rate"] = (frame["errors"] / frame["events"].where(frame["events"] > 0)).astype(float)
    frame["first"] = errors["first"].reindex(frame.index) if errors is not None else pd.NaT
    return frame.reset_index()


@dataclass
class Correlation:
    """The rise in errors and the change it followed: `onset` (the first error of the elevated minutes around the
    peak), the rate before and at the peak, the changes within the lead time before the onset (`candidates`,
    latest last) and the one named (the latest: the change the errors followed), with the delay."""

    lead_time_s: float
    level: float  # the rate above which a minute counts as elevated (the runbook's 0.1%)
    window: Window | None = None
    onset: pd.Timestamp | None = None
    before: float | None = None
    peak: float | None = None
    peak_at: pd.Timestamp | None = None
    changes_in_window: int = 0
    candidates: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CHANGE_COLUMNS))
    change: dict[str, Any] | None = None
    lag_s: float | None = None
    timeline: Timeline | None = None

    @property
    def rose_in_window(self) -> bool:
        """The rate was below the level before the onset (else the rise may predate the window)."""
        return self.onset is not None and self.before is not None


def correlate(
    curve: pd.DataFrame, timeline: Timeline, *, lead_time_s: float = LEAD_TIME_S, level: float | None = None
) -> Correlation:
    """Find when the error rate rose above `level` (default the runbook's 0.1%, `api.error_rate`'s threshold with
    its override) around its peak, and the latest change at or before that moment, within `lead_time_s`."""
    level = threshold("api.error_rate").warning if level is None else level
    table = timeline.table
    found = Correlation(lead_time_s, level, window=timeline.window, changes_in_window=len(table), timeline=timeline)
    rates = curve.dropna(subset=["rate"]).reset_index(drop=True)
    elevated = rates["rate"] > level
    if not elevated.any():
        return found
    peak = int(rates["rate"].idxmax())
    start = peak
    while start > 0 and elevated.iloc[start - 1]:
        start -= 1
    first = rates["first"].iloc[start]
    found.onset = _utc(first) if pd.notna(first) else _utc(rates["minute"].iloc[start])
    found.peak, found.peak_at = float(rates["rate"].iloc[peak]), _utc(rates["minute"].iloc[peak])
    before = rates.iloc[max(0, start - BEFORE_MINUTES) : start]
    found.before = float(before["errors"].sum() / before["events"].sum()) if before["events"].sum() else None
    if table.empty:
        return found
    earliest = found.onset - pd.Timedelta(seconds=lead_time_s)
    near = table[table["candidate"].astype(bool) & (table["at"] <= found.onset) & (table["at"] >= earliest)]
    found.candidates = near.reset_index(drop=True)
    if not near.empty:
        found.change = near.iloc[-1].to_dict()
        found.lag_s = (found.onset - found.change["at"]).total_seconds()
    return found


def _hm(at: pd.Timestamp) -> str:
    return f"{at:%H:%M:%S} UTC"


def _pct(rate: float) -> str:
    return f"{rate:.2%}" if rate < 0.01 else f"{rate:.1%}"


def _lag(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def correlation_finding(found: Correlation) -> Finding:
    """`aws.change_correlation`: WARNING naming the change the errors followed ("5xx rose from 0.1% to 4.2% 90 s
    after deployment orders-task:7 reached PRIMARY"); INFO when they rose with no change within the lead time, or
    were already up when the window starts; OK when no minute went above the level."""
    period = Period(found.window.start, found.window.end, "window", "log lines per minute") if found.window else None
    lead = f"{found.lead_time_s / 60:g} min"
    common = {"threshold": found.lead_time_s, "unit": "s", "period": period}
    if found.onset is None:
        return Finding.ok(
            "aws.change_correlation",
            f"errors stayed at or under {_pct(found.level)} of log lines in every minute: no rise to explain "
            f"({found.changes_in_window} change(s) in the window)",
            **common,
        )
    peak = f"{_pct(found.peak)} at {_hm(found.peak_at)}"
    if not found.rose_in_window:
        return Finding.of(
            "aws.change_correlation",
            Severity.INFO,
            f"errors were already above {_pct(found.level)} in the first minute with log lines ({_hm(found.onset)}; "
            f"peak {peak}): the rise is older than what was read, widen the window to see what changed before",
            **common,
        )
    rise = f"errors rose from {_pct(found.before)} to {_pct(found.peak)} of log lines"
    if found.change is None:
        return Finding.of(
            "aws.change_correlation",
            Severity.INFO,
            f"{rise} at {_hm(found.onset)} (peak {peak}); no change in the {lead} before "
            f"({found.changes_in_window} in the window): look beyond what imsnb reads (code, configuration, "
            "third parties)",
            **common,
        )
    change = found.change
    others = len(found.candidates) - 1
    return Finding.of(
        "aws.change_correlation",
        Severity.WARNING,
        f"{rise} {_lag(found.lag_s)} after {change['what']} ({_hm(change['at'])})"
        + (f"; {others} earlier change(s) within {lead} too" if others else ""),
        value=round(found.lag_s, 1),
        evidence=found.candidates.drop(columns=["candidate"]),
        **common,
    )


# --- the rollback the named change calls for ---------------------------------------------------------------------


def named_deployment(found: Correlation | None, cluster: str, service: str) -> dict[str, Any] | None:
    """The change named, when it is a deployment of this service (what a rollback can undo); else None."""
    change = None if found is None else found.change
    if change is None or change.get("source") != "ecs" or change.get("kind") != "deployment":
        return None
    return change if change.get("target") == f"{cluster}/{service}" else None


def predecessor(
    change: dict[str, Any], deployments: pd.DataFrame, revisions: pd.DataFrame, timeline: pd.DataFrame | None = None
) -> tuple[str, str] | None:
    """The task definition the named deployment replaced, and how that is known: the deployment still listed beside
    it (ECS keeps the old one ACTIVE while it drains), else the service's previous deployment in the timeline, else
    the family's revision just before it. None when there is nothing before it."""
    culprit = str(change["task_definition"])
    at = change["at"]
    if deployments is not None and not deployments.empty:
        listed = deployments.assign(created=pd.to_datetime(deployments["created"], utc=True))
        older = listed[(listed["created"] < at) & (listed["task_definition"] != culprit)]
        if not older.empty:
            name = older.sort_values("created").iloc[-1]["task_definition"]
            return str(name), "the deployment it replaced (still listed, draining)"
    if timeline is not None and not timeline.empty:
        earlier = timeline[
            (timeline["source"] == "ecs")
            & (timeline["kind"] == "deployment")
            & (timeline["target"] == change["target"])
            & (timeline["at"] < at)
            & (timeline["task_definition"] != culprit)
        ]
        if not earlier.empty:
            return str(earlier.iloc[-1]["task_definition"]), "the service's previous deployment in the window"
    if ":" not in culprit or revisions is None or revisions.empty:
        return None
    family, revision = culprit.rsplit(":", 1)
    same = revisions[revisions["task_definition"].astype(str).str.rsplit(":", n=1).str[0] == family]
    older = same[same["revision"] < int(revision)]
    if older.empty:
        return None
    return str(older.sort_values("revision").iloc[-1]["task_definition"]), "the family's revision before it"
