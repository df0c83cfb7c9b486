"""CloudWatch Logs: bounded Logs Insights queries, an error summary that works without Insights, retention.

`error_summary` answers the runbook's `filter @message like /ERROR/ | stats count() by @message` through
FilterLogEvents with a filter pattern and an event cap, so it is exact wherever Insights is missing or partial.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pandas as pd

from imsnb.aws import Aws, aws_or_default, items_table
from imsnb.findings import Finding, Severity, threshold, unjudged
from imsnb.findings.confidence import judge_ratio
from imsnb.window import Window

MAX_EVENTS = 10_000
INSIGHTS_LIMIT = 1000
INSIGHTS_DEADLINE_S = 30.0
RUNBOOK_RETENTION_DAYS = 30
_VARIABLE = re.compile(r"\b[0-9a-f]{8,}\b|\b\d+(\.\d+)?\b|'[^']*'|\"[^\"]*\"", re.IGNORECASE)


def _ms(at) -> int:
    return int(at.timestamp() * 1000)


def insights_query(
    log_group: str,
    query: str,
    window: Window,
    *,
    aws: Aws | None = None,
    limit: int = INSIGHTS_LIMIT,
    deadline_s: float = INSIGHTS_DEADLINE_S,
) -> pd.DataFrame:
    """A Logs Insights query over `window`, at most `limit` rows; stopped (StopQuery) if not done by the deadline."""
    aws = aws_or_default(aws)
    started = aws.call(
        "logs",
        "start_query",
        logGroupName=log_group,
        startTime=int(window.start.timestamp()),
        endTime=int(window.end.timestamp()),
        queryString=query,
        limit=limit,
    )
    query_id = started["queryId"]
    deadline = time.monotonic() + deadline_s
    while True:
        reply = aws.call("logs", "get_query_results", queryId=query_id)
        if reply.get("status") in ("Complete", "Failed", "Cancelled", "Timeout"):
            break
        if time.monotonic() >= deadline:
            aws.call("logs", "stop_query", queryId=query_id)
            raise TimeoutError(f"Logs Insights query on {log_group} still running after {deadline_s:g} s: stopped")
        time.sleep(0.5)
    rows = [{f["field"]: f["value"] for f in result} for result in reply.get("results", [])]
    return pd.DataFrame(rows)


@dataclass
class ErrorSummary:
    log_group: str
    pattern: str
    errors: int  # matching events seen (capped at max_events)
    events: int  # all events in the window (capped), for the error rate
    truncated: bool
    over_time: pd.DataFrame  # minute, errors, first (the minute's first matching event)
    by_message: pd.DataFrame  # message (variables masked), count, example
    events_over_time: pd.DataFrame | None = None  # minute, events: every line, for the error rate per minute

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.events if self.events else None


def _events(aws: Aws, log_group: str, window: Window, pattern: str, cap: int) -> list[dict]:
    kwargs = {"logGroupName": log_group, "startTime": _ms(window.start), "endTime": _ms(window.end)}
    if pattern:
        kwargs["filterPattern"] = pattern
    return aws.paginate("logs", "filter_log_events", "events", limit=cap, **kwargs)


def error_summary(
    log_group: str, window: Window, *, pattern: str = "ERROR", aws: Aws | None = None, max_events: int = MAX_EVENTS
) -> ErrorSummary:
    """Matching events over time (per minute) and by message (numbers and ids masked so alike lines group)."""
    aws = aws_or_default(aws)
    errors = _events(aws, log_group, window, pattern, max_events)
    everything = _events(aws, log_group, window, "", max_events)
    frame = pd.DataFrame(
        [{"at": pd.Timestamp(e["timestamp"], unit="ms", tz="UTC"), "message": e.get("message", "")} for e in errors],
        columns=["at", "message"],
    )
    if frame.empty:
        over_time = pd.DataFrame(columns=["minute", "errors", "first"])
        by_message = pd.DataFrame(columns=["message", "count", "example"])
    else:
        frame["minute"] = frame["at"].dt.floor("min")
        over_time = frame.groupby("minute").agg(errors=("at", "size"), first=("at", "min")).reset_index()
        frame["shape"] = frame["message"].map(lambda m: _VARIABLE.sub("<n>", " ".join(m.split()))[:200])
        by_message = (
            frame.groupby("shape")
            .agg(count=("message", "size"), example=("message", "first"))
            .reset_index()
            .rename(columns={"shape": "message"})
            .sort_values("count", ascending=False)
            .reset_index(drop=True)
        )
    truncated = len(errors) >= max_events or len(everything) >= max_events
    minutes = pd.Series([pd.Timestamp(e["timestamp"], unit="ms", tz="UTC").floor("min") for e in everything])
    events_over_time = minutes.value_counts().sort_index().rename_axis("minute").rename("events").reset_index()
    return ErrorSummary(
        log_group, pattern, len(errors), len(everything), truncated, over_time, by_message, events_over_time
    )


def error_rate_finding(summary: ErrorSummary, seconds: float | None = None) -> Finding:
    """Matching lines as a share of all lines in the window, against the runbook's "Error rate: < 0.1%"
    (`api.error_rate`'s level, overrides included), escalated only when the lower bound of its 95% interval is over
    it. `seconds`: the window's length, for the message."""
    limit = threshold("api.error_rate")
    if summary.error_rate is None:
        return unjudged(
            "aws.logs.error_rate",
            Severity.INFO,
            f"no log events in {summary.log_group} in the window",
            limit=limit,
        )
    top = summary.by_message["message"].iloc[0] if not summary.by_message.empty else ""
    return judge_ratio(  # escalated on the lower bound of its 95% interval (imsnb/findings/confidence.py)
        "aws.logs.error_rate",
        min(summary.errors, summary.events),
        summary.events,
        f"{summary.errors:,} of {summary.events:,} events in {summary.log_group} match {summary.pattern!r} "
        f"({summary.error_rate:.2%})"
        + (f"; most common: {top[:120]}" if top else "")
        + (" (capped: more events exist)" if summary.truncated else ""),
        nouns=("log events", f"matching {summary.pattern!r}"),
        seconds=seconds,
        limit=limit,
    )


# What an error line says when the database failed the request (a timeout, a lock, the pool), whatever the driver.
DATABASE_ERRORS = re.compile(
    r"database|postgres|\bsql|statement timeout|lock timeout|deadlock|connection pool|too many connections", re.I
)


def errors_naming(summary: ErrorSummary, words: re.Pattern[str] = DATABASE_ERRORS) -> tuple[int, str]:
    """How many of the summary's error lines match `words` (the database, by default), and the commonest of them
    ("" when none): the evidence that says where the errors come from."""
    if summary.by_message.empty:
        return 0, ""
    named = summary.by_message[summary.by_message["example"].map(lambda m: bool(words.search(str(m))))]
    return int(named["count"].sum()), (str(named["example"].iloc[0]) if not named.empty else "")


def retention(prefix: str = "/ims", *, aws: Aws | None = None) -> pd.DataFrame:
    """Each log group under `prefix` with its retention (days; None = never expire) and stored bytes."""
    groups = aws_or_default(aws).paginate(
        "logs", "describe_log_groups", "logGroups", logGroupNamePrefix=prefix, limit=1000
    )
    return items_table(
        groups,
        {
            "log_group": "logGroupName",
            "retention_days": "retentionInDays",
            "stored_bytes": lambda g: g.get("storedBytes", 0),
        },
    )


def retention_findings(groups: pd.DataFrame, expected_days: int = RUNBOOK_RETENTION_DAYS) -> list[Finding]:
    """A group with no retention (kept forever) or another value than the runbook's 30 days is a WARNING."""
    findings = []
    for row in groups.itertuples():
        days = None if pd.isna(row.retention_days) else int(row.retention_days)
        shown = "forever (no retention policy)" if days is None else f"{days} days"
        findings.append(
            Finding.of(
                "aws.logs.retention",
                Severity.OK if days == expected_days else Severity.WARNING,
                f"{row.log_group}: kept {shown}" + ("" if days == expected_days else f", runbook says {expected_days}"),
                value=days,
                threshold=expected_days,
                unit="days",
            )
        )
    return findings
