"""The runbook's `free -h`: memory and swap from /proc/meminfo, and their judges."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from imsnb.findings import Finding, judge, threshold

__all__ = [
    "MIB",
    "PROC",
    "HostMemory",
    "memory",
    "memory_finding",
    "memory_table",
    "swap_finding",
]

MIB = 2**20
PROC = Path("/proc")


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


def memory_finding(mem: HostMemory) -> Finding:
    """Used memory (total less available) against the runbook's "Memory: < 90% used"."""
    return judge(
        "host.memory_used",
        mem.used_ratio,
        f"{mem.used_bytes / 2**30:.1f} of {mem.total_bytes / 2**30:.1f} GiB used ({mem.used_ratio:.0%}), "
        f"{mem.available_bytes / 2**30:.1f} GiB available",
    )


def swap_finding(mem: HostMemory) -> Finding:
    """Used swap against `host.swap_used`; no swap at all is OK (said, with the runbook's temporary swap file)."""
    if mem.swap_used_ratio is None:
        limit = threshold("host.swap_used")
        return Finding.ok(
            "host.swap_used",
            "no swap configured (the runbook's temporary mitigation adds a 4 GiB swap file; see the plan)",
            threshold=limit.warning,
            unit=limit.unit,
        )
    return judge(
        "host.swap_used",
        mem.swap_used_ratio,
        f"swap {mem.swap_used_bytes / MIB:.0f} of {mem.swap_total_bytes / MIB:.0f} MiB used "
        f"({mem.swap_used_ratio:.0%})",
    )
