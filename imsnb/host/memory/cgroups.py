"""Containers' memory from cgroup v2 (`memory.current`, `memory.max`, `memory.events`): the runbook's `docker stats`,
read from the kernel so it works without a docker socket; empty when the host has no cgroup v2 memory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from imsnb.host.memory.meminfo import MIB

__all__ = [
    "CGROUP_MAX_DIRS",
    "CGROUP_ROOT",
    "CONTAINER_CGROUP",
    "CONTAINER_COLUMNS",
    "container_growth",
    "containers",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_MAX_DIRS = 5_000
CONTAINER_CGROUP = re.compile(r"docker|containerd|libpod|crio|kubepods|lxc", re.IGNORECASE)
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
