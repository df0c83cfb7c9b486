"""Small readers for run folders, shared by the tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["OK", "INFO", "WARNING", "ERROR", "CRITICAL"]


def bucket(targets: dict[str, str], name: str):
    """An S3 client on the sandbox's moto server (its targets, not this process's environment), with bucket `name`
    created in it."""
    import boto3  # lazy: the unit tests that import helpers never need it

    s3 = boto3.client(
        "s3",
        endpoint_url=targets["AWS_ENDPOINT_URL"],
        aws_access_key_id=targets["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=targets["AWS_SECRET_ACCESS_KEY"],
        region_name=targets.get("AWS_REGION") or targets.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    s3.create_bucket(Bucket=name)
    return s3


def read_summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def checks_at_or_above(summary: dict, severity: str) -> set[str]:
    return {f["check"] for f in summary["findings"] if ORDER.index(f["severity"]) >= ORDER.index(severity)}


def finding(summary: dict, check: str) -> dict:
    return next(f for f in summary["findings"] if f["check"] == check)


def every_byte(folder: Path) -> bytes:
    """All files of a run folder, concatenated (for secret scans)."""
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def present_began(sandbox) -> datetime:
    """When a sandbox's present began (its past's snapshots stored), as a UTC time: an incident window that starts
    then holds the present only. A window reaching back over the sandbox's start holds its seeded past too, since
    the servers' statistics started inside it (the window rule, imsnb/sampling/start.py)."""
    return datetime.now(UTC) - timedelta(seconds=time.monotonic() - sandbox.past_recorded_at)


UNDER_WAY_S = 8.0  # how long an incident has been going when someone runs a notebook on it, at least


def window_from_present(sandbox) -> dict[str, str]:
    """Notebook parameters for a window from the sandbox's present to now, the present under way for UNDER_WAY_S at
    least (waited for on a sandbox just started): a run that finds the stored past takes no sample of its own, so
    its period is the present so far, and a present of a second holds too few calls to judge."""
    present_under_way(sandbox)
    return {"start": present_began(sandbox).isoformat()}


def present_under_way(sandbox, seconds: float = UNDER_WAY_S) -> None:
    """Wait (only on a sandbox just started) until its present has been going for `seconds`."""
    time.sleep(max(0.0, sandbox.past_recorded_at + seconds - time.monotonic()))


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> object:
    """Poll until predicate() returns something true and return it, instead of sleeping a fixed time: as fast as the
    condition allows, and a clear failure (naming what was awaited) if it never holds within timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"waited {timeout:g} s for {what or getattr(predicate, '__name__', 'a condition')}")
        time.sleep(interval)
