"""Processes' resident memory (/proc/<pid>/status, VmRSS) and its growth over the run's own sample: two readings
`sample_s` apart, never a process's lifetime. The judge names the fastest-growing process."""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from imsnb.findings import Finding, judge, threshold
from imsnb.host.memory.cgroups import CGROUP_ROOT, container_growth, containers
from imsnb.host.memory.meminfo import MIB, PROC

__all__ = [
    "GROWTH_COLUMNS",
    "PROCESS_COLUMNS",
    "Sample",
    "growth_finding",
    "process_growth",
    "processes",
    "sample",
    "top_processes",
]

_SECRET_ARG = re.compile(r"(?i)((?:pass(?:word)?|secret|token|api[_-]?key)[=:\s]+)\S+")
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/@\s]+@")
PROCESS_COLUMNS = ["pid", "name", "command", "rss_bytes", "started"]
GROWTH_COLUMNS = ["pid", "name", "command", "rss_before", "rss_after", "growth_bytes", "growth_mib_per_min"]
# imsnb's own run kernels carry the runner's cell timeout in their environment; the suites' warm parent is named
OWN_KERNEL_ENV = b"IMSNB_CELL_TIMEOUT_S="
OWN_KERNEL_COMMAND = "imsnb.runs.kernels"


def _masked(command: str, width: int = 120) -> str:
    text = _URL_PASSWORD.sub(r"\1********@", _SECRET_ARG.sub(r"\1********", command))
    return text if len(text) <= width else text[: width - 1] + "…"


def _process(pid_dir: Path) -> dict | None:
    """One process's name, command line (secret-looking arguments masked), resident bytes and start tick."""
    try:
        status = (pid_dir / "status").read_text()
        stat = (pid_dir / "stat").read_text()
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss = fields.get("VmRSS")
    if rss is None:  # a kernel thread
        return None
    name = fields.get("Name", "").strip()
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return {
        "pid": int(pid_dir.name),
        "name": name,
        "command": _masked(shlex.join(args) if args else f"[{name}]"),
        "rss_bytes": int(rss.split()[0]) * 1024,
        "started": int(stat.rsplit(")", 1)[1].split()[19]),  # starttime: a reused pid has another one
    }


def processes(proc: Path | str = PROC) -> pd.DataFrame:
    """Every user-space process with its resident memory, largest first (the runbook's `ps`/`docker stats`)."""
    rows = [row for d in Path(proc).iterdir() if d.name.isdigit() for row in [_process(d)] if row]
    frame = pd.DataFrame(rows, columns=PROCESS_COLUMNS)
    return frame.sort_values("rss_bytes", ascending=False).reset_index(drop=True)


def top_processes(table: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    shown = table.head(n).copy()
    shown["rss_mib"] = (shown["rss_bytes"] / MIB).round(1)
    return shown[["pid", "name", "rss_mib", "command"]]


def process_growth(before: pd.DataFrame, after: pd.DataFrame, sample_s: float) -> pd.DataFrame:
    """Resident memory growth of each process alive at both readings (same pid and start time), fastest first."""
    merged = before.merge(after, on=["pid", "started"], suffixes=("_before", "_after"))
    frame = pd.DataFrame(
        {
            "pid": merged["pid"],
            "name": merged["name_after"],
            "command": merged["command_after"],
            "rss_before": merged["rss_bytes_before"],
            "rss_after": merged["rss_bytes_after"],
        },
        columns=GROWTH_COLUMNS,
    )
    frame["growth_bytes"] = frame["rss_after"] - frame["rss_before"]
    frame["growth_mib_per_min"] = (frame["growth_bytes"] / MIB / max(sample_s, 1e-3) * 60).round(2)
    return frame.sort_values("growth_bytes", ascending=False).reset_index(drop=True)


def own_processes(pids: list[int], commands: list[str], proc: Path | str = PROC) -> list[bool]:
    """Which of these processes are imsnb's own run kernels (this run's and a suite's other runs', which grow while
    they import pandas: start-up, not a leak) or a suite's warm parent. A process whose environment cannot be read
    (another user's, gone) counts as not imsnb's."""
    own = []
    for pid, command in zip(pids, commands, strict=True):
        try:
            environ = (Path(proc) / str(pid) / "environ").read_bytes()
        except OSError:
            environ = b""
        own.append(
            OWN_KERNEL_COMMAND in command or environ.startswith(OWN_KERNEL_ENV) or b"\0" + OWN_KERNEL_ENV in environ
        )
    return own


@dataclass
class Sample:
    """Two readings of processes and containers `sample_s` apart."""

    sample_s: float
    started_at: datetime
    before: pd.DataFrame
    after: pd.DataFrame
    growth: pd.DataFrame
    containers: pd.DataFrame


def sample(sample_s: float = 10.0, *, proc: Path | str = PROC, cgroup_root: Path | str = CGROUP_ROOT) -> Sample:
    """Read processes (and cgroup v2 containers) twice, `sample_s` apart: the growth over the run's sample."""
    if not 0 <= sample_s <= 600:
        raise ValueError(f"sample_s must be between 0 and 600 seconds, not {sample_s}")
    started_at = datetime.now(UTC)
    t0 = time.monotonic()
    before, cg_before = processes(proc), containers(cgroup_root)
    time.sleep(sample_s)
    after, cg_after = processes(proc), containers(cgroup_root)
    elapsed = time.monotonic() - t0
    growth = process_growth(before, after, elapsed)
    growth["own"] = own_processes(growth["pid"].tolist(), growth["command"].tolist(), proc) if len(growth) else []
    return Sample(
        sample_s=round(elapsed, 2),
        started_at=started_at,
        before=before,
        after=after,
        growth=growth,
        containers=container_growth(cg_before, cg_after, elapsed),
    )


def own_rows(growth: pd.DataFrame) -> pd.Series:
    """Which rows of a growth table are imsnb's own run kernels (all False for a table without the `own` column,
    e.g. one built by `process_growth` alone): the one rule the finding and the mitigation plan leave them out by."""
    return growth["own"].astype(bool) if "own" in growth else pd.Series(False, index=growth.index)


def growth_finding(taken: Sample, *, min_growth_bytes: int = 8 * MIB) -> Finding:
    """The fastest-growing process over the sample (MiB a minute), named; growth under `min_growth_bytes` in the
    sample is noise, not a leak. imsnb's own run kernels (see `own_processes`) are left out and counted."""
    grown = taken.growth[taken.growth["growth_bytes"] >= min_growth_bytes]
    own = own_rows(grown)
    skipped = f"; imsnb's own kernels left out: {int(own.sum())}" if own.any() else ""
    grown = grown[~own]
    if grown.empty:
        limit = threshold("host.process_growth")
        return Finding.ok(
            "host.process_growth",
            f"no process grew by {min_growth_bytes / MIB:.0f} MiB or more over the {taken.sample_s:g} s sample"
            f"{skipped}",
            value=0.0,
            threshold=limit.warning,
            unit=limit.unit,
        )
    top = grown.iloc[0]
    evidence = grown.head(10).assign(
        rss_before_mib=lambda f: (f["rss_before"] / MIB).round(1),
        rss_after_mib=lambda f: (f["rss_after"] / MIB).round(1),
    )[["pid", "name", "rss_before_mib", "rss_after_mib", "growth_mib_per_min", "command"]]
    return judge(
        "host.process_growth",
        float(top["growth_mib_per_min"]),
        f"{top['name']} (pid {top['pid']}) grew {top['rss_before'] / MIB:.0f} → {top['rss_after'] / MIB:.0f} MiB "
        f"in {taken.sample_s:g} s ({top['growth_mib_per_min']:+.0f} MiB/min): {top['command']}{skipped}",
        evidence=evidence,
    )
