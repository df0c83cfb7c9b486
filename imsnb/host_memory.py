"""The local host's memory: the runbook's `free -h`, `docker stats` and the OOM killer.

Memory and swap come from /proc/meminfo; processes from /proc/<pid>/status (resident set, VmRSS); containers from
cgroup v2 (`memory.current`, `memory.max`, `memory.events`) when the host has them. Growth is judged over the
run's own sample (two readings `sample_s` apart), never over a process's lifetime. OOM kills come from the
kernel log (`journalctl -k`, else /dev/kmsg) when it is readable; when it is not, that is said, with the kernel's
since-boot count from /proc/vmstat as context. Everything here is read-only and bounded.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from imsnb.findings import Finding, Severity, judge, threshold

MIB = 2**20
PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_MAX_DIRS = 5_000
KERNEL_LOG_TIMEOUT_S = 5.0
KMSG_MAX_RECORDS = 100_000
# a kernel log line that records an OOM kill, and the victim it names
OOM_LINE = re.compile(r"Out of memory|oom-kill|Killed process|Memory cgroup out of memory", re.IGNORECASE)
OOM_VICTIM = re.compile(r"Killed process (?P<pid>\d+) \((?P<name>[^)]*)\)")
CONTAINER_CGROUP = re.compile(r"docker|containerd|libpod|crio|kubepods|lxc", re.IGNORECASE)
_SECRET_ARG = re.compile(r"(?i)((?:pass(?:word)?|secret|token|api[_-]?key)[=:\s]+)\S+")
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/@\s]+@")
PROCESS_COLUMNS = ["pid", "name", "command", "rss_bytes", "started"]
GROWTH_COLUMNS = ["pid", "name", "command", "rss_before", "rss_after", "growth_bytes", "growth_mib_per_min"]


@dataclass
class HostMemory:
    total_bytes: int
    available_bytes: int
    used_bytes: int
    used_ratio: float
    swap_total_bytes: int
    swap_used_bytes: int
    swap_used_ratio: float | None  # None when no swap is configured


def _meminfo_fields(path: Path) -> dict[str, int]:
    fields = {}
    for line in path.read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return fields


def memory(path: Path | str = PROC / "meminfo") -> HostMemory:
    """The runbook's `free -h`: used is total less MemAvailable (what the kernel can hand out without swapping)."""
    f = _meminfo_fields(Path(path))
    total = f["MemTotal"]
    available = f.get("MemAvailable", f.get("MemFree", 0) + f.get("Buffers", 0) + f.get("Cached", 0))
    swap_total = f.get("SwapTotal", 0)
    swap_used = swap_total - f.get("SwapFree", 0)
    return HostMemory(
        total_bytes=total,
        available_bytes=available,
        used_bytes=total - available,
        used_ratio=round((total - available) / total, 4) if total else 0.0,
        swap_total_bytes=swap_total,
        swap_used_bytes=swap_used,
        swap_used_ratio=round(swap_used / swap_total, 4) if swap_total else None,
    )


def memory_table(mem: HostMemory) -> pd.DataFrame:
    """`free -h` as a table (MiB)."""
    return pd.DataFrame(
        [
            {
                "": "Mem",
                "total_mib": mem.total_bytes // MIB,
                "used_mib": mem.used_bytes // MIB,
                "available_mib": mem.available_bytes // MIB,
                "used": f"{mem.used_ratio:.0%}",
            },
            {
                "": "Swap",
                "total_mib": mem.swap_total_bytes // MIB,
                "used_mib": mem.swap_used_bytes // MIB,
                "available_mib": (mem.swap_total_bytes - mem.swap_used_bytes) // MIB,
                "used": "-" if mem.swap_used_ratio is None else f"{mem.swap_used_ratio:.0%}",
            },
        ]
    )


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
    return Sample(
        sample_s=round(elapsed, 2),
        started_at=started_at,
        before=before,
        after=after,
        growth=process_growth(before, after, elapsed),
        containers=container_growth(cg_before, cg_after, elapsed),
    )


# --- containers: cgroup v2 ----------------------------------------------------------------------------------------

CONTAINER_COLUMNS = ["cgroup", "container", "memory_bytes", "max_bytes", "used_ratio", "oom_kills"]


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return None if text in ("max", "") else int(text)


def _oom_kills(path: Path) -> int:
    try:
        events = dict(line.split() for line in path.read_text().splitlines() if line.strip())
    except (OSError, ValueError):
        return 0
    return int(events.get("oom_kill", 0))


def containers(root: Path | str = CGROUP_ROOT, *, max_dirs: int = CGROUP_MAX_DIRS) -> pd.DataFrame:
    """cgroup v2 groups that look like containers (docker, containerd, podman, kubepods) with `memory.current`,
    `memory.max` and the `oom_kill` count of `memory.events`; empty when the host has no cgroup v2 memory."""
    root = Path(root)
    rows = []
    seen = 0
    for current, dirs, names in os.walk(root, followlinks=False):
        seen += 1
        if seen > max_dirs:
            break
        if "memory.current" not in names:
            continue
        group = Path(current)
        relative = "/" + str(group.relative_to(root)) if group != root else "/"
        if not CONTAINER_CGROUP.search(relative):
            continue
        used = _read_int(group / "memory.current")
        limit = _read_int(group / "memory.max")
        name = group.name.removesuffix(".scope").split("-", 1)[-1]
        rows.append(
            {
                "cgroup": relative,
                "container": name[:12] if re.fullmatch(r"[0-9a-f]{64}", name) else name,
                "memory_bytes": used,
                "max_bytes": limit,
                "used_ratio": round(used / limit, 4) if used is not None and limit else None,
                "oom_kills": _oom_kills(group / "memory.events"),
            }
        )
        dirs[:] = []  # a container's own sub-groups are counted in its memory.current
    frame = pd.DataFrame(rows, columns=CONTAINER_COLUMNS)
    return frame.sort_values("memory_bytes", ascending=False).reset_index(drop=True)


def container_growth(before: pd.DataFrame, after: pd.DataFrame, sample_s: float) -> pd.DataFrame:
    """Containers at the second reading, with their growth over the sample (new OOM kills too)."""
    if after.empty:
        return after.assign(growth_mib_per_min=pd.Series(dtype=float), new_oom_kills=pd.Series(dtype=int))
    merged = after.merge(before[["cgroup", "memory_bytes", "oom_kills"]], on="cgroup", how="left", suffixes=("", "_0"))
    merged["growth_mib_per_min"] = (
        (merged["memory_bytes"] - merged["memory_bytes_0"]) / MIB / max(sample_s, 1e-3) * 60
    ).round(2)
    merged["new_oom_kills"] = (merged["oom_kills"] - merged["oom_kills_0"].fillna(merged["oom_kills"])).astype(int)
    return merged.drop(columns=["memory_bytes_0", "oom_kills_0"])


# --- OOM kills: the kernel log ------------------------------------------------------------------------------------


@dataclass
class OomReport:
    readable: bool
    source: str  # journalctl, /dev/kmsg, or why neither could be read
    events: pd.DataFrame  # at, pid, process, line
    since_boot: int | None  # /proc/vmstat oom_kill: context, not a verdict


OOM_COLUMNS = ["at", "pid", "process", "line"]


def _oom_rows(lines: list[tuple[datetime | None, str]], since: datetime) -> list[dict]:
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
        return OomReport(True, name, pd.DataFrame(_oom_rows(lines, since), columns=OOM_COLUMNS), since_boot)
    return OomReport(False, "; ".join(reasons), pd.DataFrame(columns=OOM_COLUMNS), since_boot)


# --- findings -----------------------------------------------------------------------------------------------------


def memory_finding(mem: HostMemory) -> Finding:
    """Used memory (total less available) against the runbook's "Memory: < 90% used"."""
    return judge(
        "host.memory_used",
        "host",
        mem.used_ratio,
        f"{mem.used_bytes / 2**30:.1f} of {mem.total_bytes / 2**30:.1f} GiB used ({mem.used_ratio:.0%}), "
        f"{mem.available_bytes / 2**30:.1f} GiB available",
    )


def swap_finding(mem: HostMemory) -> Finding:
    if mem.swap_used_ratio is None:
        return Finding(
            "host.swap_used",
            "host",
            Severity.OK,
            None,
            threshold("host.swap_used").warning,
            "ratio",
            "no swap configured (the runbook's temporary mitigation adds a 4 GiB swap file; see the plan)",
        )
    return judge(
        "host.swap_used",
        "host",
        mem.swap_used_ratio,
        f"swap {mem.swap_used_bytes / MIB:.0f} of {mem.swap_total_bytes / MIB:.0f} MiB used "
        f"({mem.swap_used_ratio:.0%})",
    )


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
                "host",
                new_in_containers,
                f"{new_in_containers} OOM kill(s) in containers during the sample (memory.events); "
                f"the kernel log is not readable ({report.source}){boot}",
            )
        return Finding(
            "host.oom_kills",
            "host",
            Severity.INFO,
            None,
            limit.warning,
            "kills",
            f"OOM kills unknown: the kernel log is not readable ({report.source}){boot}",
        )
    kills = len(report.events) + new_in_containers
    if not kills:
        return Finding(
            "host.oom_kills",
            "host",
            Severity.OK,
            0,
            limit.warning,
            "kills",
            f"no OOM kill in the kernel log ({report.source}) since {since:%Y-%m-%d %H:%M} UTC",
        )
    victims = ", ".join(f"{r.process} (pid {r.pid})" for r in report.events.head(5).itertuples())
    return judge(
        "host.oom_kills",
        "host",
        kills,
        f"{kills} OOM kill(s) since {since:%Y-%m-%d %H:%M} UTC ({report.source}): {victims or 'in containers'}",
        evidence=report.events,
    )


def growth_finding(taken: Sample, *, min_growth_bytes: int = 8 * MIB) -> Finding:
    """The fastest-growing process over the sample (MiB a minute), named; growth under `min_growth_bytes` in the
    sample is noise, not a leak."""
    limit = threshold("host.process_growth")
    grown = taken.growth[taken.growth["growth_bytes"] >= min_growth_bytes]
    if grown.empty:
        return Finding(
            "host.process_growth",
            "host",
            Severity.OK,
            0.0,
            limit.warning,
            "MiB/min",
            f"no process grew by {min_growth_bytes / MIB:.0f} MiB or more over the {taken.sample_s:g} s sample",
        )
    top = grown.iloc[0]
    evidence = grown.head(10).assign(
        rss_before_mib=lambda f: (f["rss_before"] / MIB).round(1),
        rss_after_mib=lambda f: (f["rss_after"] / MIB).round(1),
    )[["pid", "name", "rss_before_mib", "rss_after_mib", "growth_mib_per_min", "command"]]
    return judge(
        "host.process_growth",
        "host",
        float(top["growth_mib_per_min"]),
        f"{top['name']} (pid {top['pid']}) grew {top['rss_before'] / MIB:.0f} → {top['rss_after'] / MIB:.0f} MiB "
        f"in {taken.sample_s:g} s ({top['growth_mib_per_min']:+.0f} MiB/min): {top['command']}",
        evidence=evidence,
    )


# --- the runbook's mitigations, as a plan -------------------------------------------------------------------------

SWAP_COMMANDS = [
    "sudo fallocate -l {size} /swapfile",
    "sudo chmod 600 /swapfile",
    "sudo mkswap /swapfile",
    "sudo swapon /swapfile",
]


def mitigation_plan(mem: HostMemory, taken: Sample | None = None, *, swap_size: str = "4G") -> pd.DataFrame:
    """The runbook's immediate action, memory hog and temporary mitigation for what was found, as commands to
    review. Nothing here is executed: the service restart is a two-key action of its own (ECS force-new-deployment),
    and swap is for a person to add."""
    steps = []
    hog = None
    if taken is not None and not taken.growth.empty and taken.growth.iloc[0]["growth_bytes"] > 0:
        hog = taken.growth.iloc[0]
    if hog is not None:
        steps.append(
            (
                "identify the memory hog",
                f"{hog['name']} (pid {hog['pid']}) grew {hog['growth_mib_per_min']:+.0f} MiB/min",
                f"py-spy dump --pid {hog['pid']}  # or: python -m memory_profiler app.py in the service",
            )
        )
    steps.append(
        (
            "restart the service",
            f"memory {mem.used_ratio:.0%} used",
            "two-key action below (aws ecs update-service --force-new-deployment); on a compose host: "
            "docker-compose restart backend",
        )
    )
    swap_note = (
        "no swap configured"
        if mem.swap_used_ratio is None
        else f"swap {mem.swap_used_ratio:.0%} used of {mem.swap_total_bytes / MIB:.0f} MiB"
    )
    steps.append(("add swap (temporary)", swap_note, " && ".join(c.format(size=swap_size) for c in SWAP_COMMANDS)))
    steps.append(("long-term fix", "", "find the leak in code; cap caches; profile production heap dumps"))
    return pd.DataFrame(
        [{"step": s, "found": f, "command": c, "status": "shown, never run by imsnb"} for s, f, c in steps],
        columns=["step", "found", "command", "status"],
    )
