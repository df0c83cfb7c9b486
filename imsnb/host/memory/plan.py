"""The runbook's mitigations for a memory leak, as a plan of commands to review: nothing here is executed."""

from __future__ import annotations

import pandas as pd

from imsnb.host.memory.growth import Sample, own_rows
from imsnb.host.memory.meminfo import MIB, HostMemory

__all__ = [
    "SWAP_COMMANDS",
    "mitigation_plan",
]

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
    grown = None if taken is None else taken.growth[~own_rows(taken.growth)]  # as growth_finding does
    if grown is not None and not grown.empty and grown.iloc[0]["growth_bytes"] > 0:
        hog = grown.iloc[0]
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
