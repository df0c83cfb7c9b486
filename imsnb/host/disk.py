"""The local host: disk usage, largest directories, old log files and whether logs are rotated.

Every walk is bounded (entries and a deadline), stays on one filesystem and never follows symlinks: on a full
disk the diagnosis must not become the next problem.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from imsnb.findings import Finding, Severity, judge

__all__ = [
    "cleanup_plan",
    "disk_findings",
    "disk_usage",
    "largest_directories",
    "log_rotation",
    "old_files",
    "old_files_finding",
    "rotation_finding",
]

MAX_ENTRIES = 200_000
DEADLINE_S = 10.0
_ROTATED = re.compile(r"\.(\d+)(\.gz|\.xz|\.bz2|\.zst)?$|-\d{8}(\.gz)?$|\.gz$")


def disk_usage(paths: list[str] | None = None) -> pd.DataFrame:
    """The runbook's `df -h`: size, used and available bytes of each path's filesystem, and the used ratio as df's
    Use% computes it: used / (used + available). Blocks reserved for root (often 5%, or far more on a volume with
    quotas) count in neither, so a full disk reads 100% as it does in df, not 95% of the size."""
    rows = []
    for path in paths or ["/"]:
        usage = shutil.disk_usage(path)  # free: the blocks available to unprivileged users, df's Avail
        usable = usage.used + usage.free
        rows.append(
            {
                "path": path,
                "total_bytes": usage.total,
                "used_bytes": usage.used,
                "free_bytes": usage.free,
                "used_ratio": round(usage.used / usable, 4) if usable else None,
            }
        )
    return pd.DataFrame(rows, columns=["path", "total_bytes", "used_bytes", "free_bytes", "used_ratio"])


def _walk_size(top: Path, device: int, budget: dict) -> tuple[int, int, bool]:
    """Bytes and files under `top` (same device, no symlinks); False when the entry or time budget ran out."""
    total = files = 0
    stack = [top]
    while stack:
        if budget["entries"] <= 0 or time.monotonic() > budget["deadline"]:
            return total, files, False
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    budget["entries"] -= 1
                    if budget["entries"] < 0 or (
                        budget["entries"] % 1024 == 0 and time.monotonic() > budget["deadline"]
                    ):
                        return total, files, False  # within one huge directory too, not only between them
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if entry.is_dir(follow_symlinks=False):
                        if info.st_dev == device:
                            stack.append(Path(entry.path))
                    elif entry.is_file(follow_symlinks=False):
                        total += info.st_blocks * 512 if hasattr(info, "st_blocks") else info.st_size
                        files += 1
        except OSError:
            continue
    return total, files, True


def largest_directories(
    root: str = "/", *, top: int = 10, max_entries: int = MAX_ENTRIES, deadline_s: float = DEADLINE_S
) -> pd.DataFrame:
    """The runbook's `du -sh /* | sort -rh | head`: the biggest children of `root`, bounded; `complete` is False
    where the budget ran out (sizes are then lower bounds)."""
    base = Path(root)
    device = base.stat().st_dev
    budget = {"entries": max_entries, "deadline": time.monotonic() + deadline_s}
    rows = []
    for child in sorted(base.iterdir()):
        try:
            if child.is_symlink() or not child.is_dir() or child.stat().st_dev != device:
                continue
        except OSError:
            continue
        size, files, complete = _walk_size(child, device, budget)
        rows.append({"path": str(child), "bytes": size, "files": files, "complete": complete})
    frame = pd.DataFrame(rows, columns=["path", "bytes", "files", "complete"])
    return frame.sort_values("bytes", ascending=False).head(top).reset_index(drop=True)


def old_files(
    root: str = "/var/log",
    *,
    pattern: str = "*.log",
    older_than_days: float = 30,
    limit: int = 1000,
    max_entries: int = MAX_ENTRIES,
) -> pd.DataFrame:
    """The runbook's `find /var/log -name "*.log" -mtime +30`: matching files older than the age, oldest first."""
    cutoff = time.time() - older_than_days * 86400
    rows = []
    seen = 0
    for current, _dirs, names in os.walk(root, followlinks=False):
        if seen >= max_entries or len(rows) >= limit:
            break  # the whole walk stops, not only this directory
        for name in names:
            seen += 1
            if seen > max_entries or len(rows) >= limit:
                break
            if not fnmatch.fnmatch(name, pattern):
                continue
            path = os.path.join(current, name)
            try:
                info = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            if info.st_mtime < cutoff:
                rows.append(
                    {"path": path, "bytes": info.st_size, "age_days": round((time.time() - info.st_mtime) / 86400, 1)}
                )
    frame = pd.DataFrame(rows, columns=["path", "bytes", "age_days"])
    return frame.sort_values("age_days", ascending=False).reset_index(drop=True)


def log_rotation(root: str = "/var/log", *, max_entries: int = MAX_ENTRIES) -> pd.DataFrame:
    """Each active `*.log` with its size and how many rotated siblings (`.1`, `.gz`, `-YYYYMMDD`) sit beside it:
    none beside a large log means it is not being rotated (the runbook's logrotate, daily at 2 AM)."""
    rows = []
    seen = 0
    for current, _dirs, names in os.walk(root, followlinks=False):
        seen += len(names)
        if seen > max_entries:
            break
        for name in names:
            if not name.endswith(".log"):
                continue
            rotated = sum(1 for other in names if other != name and other.startswith(name) and _ROTATED.search(other))
            try:
                size = os.stat(os.path.join(current, name), follow_symlinks=False).st_size
            except OSError:
                continue
            rows.append({"log": os.path.join(current, name), "bytes": size, "rotated_copies": rotated})
    frame = pd.DataFrame(rows, columns=["log", "bytes", "rotated_copies"])
    return frame.sort_values("bytes", ascending=False).reset_index(drop=True)


def disk_findings(usage: pd.DataFrame) -> list[Finding]:
    """Each filesystem's used ratio against the runbook's "Disk usage > 85%"."""
    return [
        judge(
            "host.disk_used",
            float(row.used_ratio),
            f"{row.path}: {row.used_ratio:.0%} used (df's Use%), {row.used_bytes / 2**30:.1f} GiB used, "
            f"{row.free_bytes / 2**30:.1f} GiB available of {row.total_bytes / 2**30:.1f} GiB",
        )
        for row in usage.itertuples()
    ]


def old_files_finding(old: pd.DataFrame, older_than_days: float = 30) -> Finding:
    """Log files older than `older_than_days`: INFO with how many and their size (cleanup candidates), else OK."""
    if old.empty:
        return Finding.ok(
            "host.old_logs",
            f"no log file older than {older_than_days:g} days",
            value=0,
            threshold=older_than_days,
            unit="days",
        )
    return Finding.of(
        "host.old_logs",
        Severity.INFO,
        f"{len(old)} log file(s) older than {older_than_days:g} days, {old['bytes'].sum() / 2**20:.1f} MiB: "
        "candidates for the runbook's cleanup",
        value=len(old),
        threshold=older_than_days,
        unit="days",
        evidence=old,
    )


def rotation_finding(logs: pd.DataFrame, min_bytes: int = 100 * 2**20) -> Finding:
    """A log of at least `min_bytes` with no rotated copy beside it is a WARNING (logrotate is not running)."""
    unrotated = logs[(logs["bytes"] >= min_bytes) & (logs["rotated_copies"] == 0)] if not logs.empty else logs
    if unrotated.empty:
        return Finding.ok(
            "host.log_rotation",
            f"no log of {min_bytes / 2**20:.0f} MiB or more without rotated copies",
            value=0,
            threshold=min_bytes,
            unit="bytes",
        )
    return Finding.of(
        "host.log_rotation",
        Severity.WARNING,
        f"{len(unrotated)} large log(s) never rotated, e.g. {unrotated.iloc[0]['log']} "
        f"({unrotated.iloc[0]['bytes'] / 2**20:.0f} MiB)",
        value=len(unrotated),
        threshold=min_bytes,
        unit="bytes",
        evidence=unrotated,
    )


def cleanup_plan(old: pd.DataFrame, logs: pd.DataFrame, archive_uri: str = "s3://ims-backups/") -> pd.DataFrame:
    """The runbook's "High Disk Usage" steps for what was found, as commands to review. Nothing is executed."""
    steps = []
    if not old.empty:
        steps.append(
            (
                "delete old logs",
                f"{len(old)} file(s), {old['bytes'].sum() / 2**20:.1f} MiB",
                "find /var/log -type f -name '*.log' -mtime +30 -delete",
            )
        )
    unrotated = logs[logs["rotated_copies"] == 0] if not logs.empty else logs
    if not unrotated.empty:
        steps.append(
            (
                "rotate logs",
                f"{len(unrotated)} log(s) without rotated copies",
                "logrotate -f /etc/logrotate.d/ims-backend",
            )
        )
    steps.append(("archive backups", "before deleting anything else", f"aws s3 sync /backups/ {archive_uri}"))
    return pd.DataFrame(
        [{"step": s, "found": f, "command": c, "status": "planned, not executed"} for s, f, c in steps],
        columns=["step", "found", "command", "status"],
    )
