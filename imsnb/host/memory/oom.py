"""OOM kills from the kernel log (`journalctl -k`, else /dev/kmsg) when it is readable; when it is not, that is said,
with the kernel's since-boot count from /proc/vmstat as context. Bounded: a timeout and a record limit."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd

from imsnb.findings import Finding, Severity, judge, threshold
from imsnb.host.memory.meminfo import PROC

__all__ = [
    "KERNEL_LOG_TIMEOUT_S",
    "KMSG_MAX_RECORDS",
    "OOM_COLUMNS",
    "OOM_VICTIM",
    "OomReport",
    "oom_finding",
    "oom_kills",
    "oom_victims",
]

KERNEL_LOG_TIMEOUT_S = 5.0
KMSG_MAX_RECORDS = 100_000
# the victim a kernel log line of an OOM kill names
OOM_VICTIM = re.compile(r"Killed process (?P<pid>\d+) \((?P<name>[^)]*)\)")
OOM_COLUMNS = ["at", "pid", "process", "line"]


@dataclass
class OomReport:
    readable: bool
    source: str  # journalctl, /dev/kmsg, or why neither could be read
    events: pd.DataFrame  # at, pid, process, line
    since_boot: int | None  # /proc/vmstat oom_kill: context, not a verdict


def oom_victims(lines: list[tuple[datetime | None, str]], since: datetime) -> list[dict]:
    """The kills among kernel log lines (time, text) since `since`: when, the victim's pid and name, the line."""
    rows = []
    for at, text in lines:
        if not OOM_VICTIM.search(text) or (at is not None and at < since):
            continue
        victim = OOM_VICTIM.search(text)
        rows.append({"at": at, "pid": int(victim["pid"]), "process": victim["name"], "line": text.strip()[:200]})
    return rows


def _journal(since: datetime, timeout_s: float) -> list[tuple[datetime | None, str]] | str:
    try:
        done = subprocess.run(
            [
                "journalctl",
                "-k",
                "--no-pager",
                "-o",
                "short-iso-precise",
                "--since",
                since.strftime("%Y-%m-%d %H:%M:%S UTC"),
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except FileNotFoundError:
        return "journalctl not installed"
    except subprocess.TimeoutExpired:
        return f"journalctl took over {timeout_s:g} s"
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith("--")]
    if done.returncode != 0 or not lines:
        return f"journalctl -k gave nothing ({' '.join((done.stderr or done.stdout).split())[:100] or 'no entries'})"
    out = []
    for line in lines:
        stamp, _, rest = line.partition(" ")
        try:
            at = datetime.fromisoformat(stamp).astimezone(UTC)
        except ValueError:
            at = None
        out.append((at, rest))
    return out


def _kmsg(path: str, timeout_s: float) -> list[tuple[datetime | None, str]] | str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    boot = datetime.now(UTC) - timedelta(seconds=float((PROC / "uptime").read_text().split()[0]))
    out = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < KMSG_MAX_RECORDS and time.monotonic() < deadline:
            try:
                record = os.read(fd, 8192).decode(errors="replace")
            except BlockingIOError:
                break
            except OSError:  # EPIPE: a record was overwritten while reading; go on with the next
                continue
            header, _, text = record.partition(";")
            parts = header.split(",")
            at = boot + timedelta(microseconds=int(parts[2])) if len(parts) > 2 and parts[2].isdigit() else None
            out.append((at, text.split("\n", 1)[0]))
    finally:
        os.close(fd)
    return out


def oom_kills(
    since: datetime, *, kmsg: str = "/dev/kmsg", timeout_s: float = KERNEL_LOG_TIMEOUT_S, use_journal: bool = True
) -> OomReport:
    """OOM kills the kernel logged since `since`: from `journalctl -k`, else /dev/kmsg; `readable` False (with
    the reasons) when neither can be read, so "none found" is never claimed blind."""
    since_boot = None
    try:
        vmstat = dict(line.split() for line in (PROC / "vmstat").read_text().splitlines())
        since_boot = int(vmstat["oom_kill"]) if "oom_kill" in vmstat else None
    except (OSError, ValueError):
        pass
    reasons = []
    sources = [("journalctl -k", lambda: _journal(since, timeout_s))] if use_journal else []
    sources.append((kmsg, lambda: _kmsg(kmsg, timeout_s)))
    for name, read in sources:
        lines = read()
        if isinstance(lines, str):
            reasons.append(lines)
            continue
        return OomReport(True, name, pd.DataFrame(oom_victims(lines, since), columns=OOM_COLUMNS), since_boot)
    return OomReport(False, "; ".join(reasons), pd.DataFrame(columns=OOM_COLUMNS), since_boot)


def oom_finding(report: OomReport, containers_table: pd.DataFrame | None = None, *, since: datetime) -> Finding:
    """OOM kills in the window, from the kernel log (and containers' memory.events during the sample)."""
    limit = threshold("host.oom_kills")
    new_in_containers = 0
    if containers_table is not None and "new_oom_kills" in containers_table:
        new_in_containers = int(containers_table["new_oom_kills"].sum())
    if not report.readable:
        boot = f"; the kernel counts {report.since_boot} OOM kill(s) since boot (context)" if report.since_boot else ""
        if new_in_containers:
            return judge(
                "host.oom_kills",
                new_in_containers,
                f"{new_in_containers} OOM kill(s) in containers during the sample (memory.events); "
                f"the kernel log is not readable ({report.source}){boot}",
            )
        return Finding.of(
            "host.oom_kills",
            Severity.INFO,
            f"OOM kills unknown: the kernel log is not readable ({report.source}){boot}",
            threshold=limit.warning,
            unit=limit.unit,
        )
    kills = len(report.events) + new_in_containers
    if not kills:
        return Finding.ok(
            "host.oom_kills",
            f"no OOM kill in the kernel log ({report.source}) since {since:%Y-%m-%d %H:%M} UTC",
            value=0,
            threshold=limit.warning,
            unit=limit.unit,
        )
    victims = ", ".join(f"{r.process} (pid {r.pid})" for r in report.events.head(5).itertuples())
    return judge(
        "host.oom_kills",
        kills,
        f"{kills} OOM kill(s) since {since:%Y-%m-%d %H:%M} UTC ({report.source}): {victims or 'in containers'}",
        evidence=report.events,
    )
