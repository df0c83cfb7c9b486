"""The local host's memory, the runbook's "Memory Leak / OOM Killer": `free -h`, `docker stats` and the OOM killer,
one module per topic, each holding its reader and its judge together.

    meminfo.py  memory and swap from /proc/meminfo (HostMemory, memory, memory_table), against host.memory_used
                and host.swap_used
    growth.py   processes' resident memory (/proc/<pid>/status) read twice `sample_s` apart (Sample, sample), the
                growth of each, and host.process_growth naming the fastest-growing one
    cgroups.py  containers' memory and OOM kills from cgroup v2 (memory.current, memory.max, memory.events)
    oom.py      OOM kills in the kernel log (journalctl -k, else /dev/kmsg), host.oom_kills; an unreadable log is
                said, never taken for "none"
    plan.py     the runbook's mitigations as commands to review (never run)

Growth is judged over the run's own sample, never over a process's lifetime. Everything here is read-only and
bounded. The disk (`df`, `du`, old logs, rotation) is `imsnb.host`.
"""

from imsnb.host_memory.cgroups import (
    CGROUP_MAX_DIRS,
    CGROUP_ROOT,
    CONTAINER_CGROUP,
    CONTAINER_COLUMNS,
    container_growth,
    containers,
)
from imsnb.host_memory.growth import (
    GROWTH_COLUMNS,
    PROCESS_COLUMNS,
    Sample,
    growth_finding,
    process_growth,
    processes,
    sample,
    top_processes,
)
from imsnb.host_memory.meminfo import MIB, PROC, HostMemory, memory, memory_finding, memory_table, swap_finding
from imsnb.host_memory.oom import (
    KERNEL_LOG_TIMEOUT_S,
    KMSG_MAX_RECORDS,
    OOM_COLUMNS,
    OOM_VICTIM,
    OomReport,
    oom_finding,
    oom_kills,
    oom_victims,
)
from imsnb.host_memory.plan import SWAP_COMMANDS, mitigation_plan

__all__ = [
    "CGROUP_MAX_DIRS",
    "CGROUP_ROOT",
    "CONTAINER_CGROUP",
    "CONTAINER_COLUMNS",
    "GROWTH_COLUMNS",
    "KERNEL_LOG_TIMEOUT_S",
    "KMSG_MAX_RECORDS",
    "MIB",
    "OOM_COLUMNS",
    "OOM_VICTIM",
    "PROC",
    "PROCESS_COLUMNS",
    "SWAP_COMMANDS",
    "HostMemory",
    "OomReport",
    "Sample",
    "container_growth",
    "containers",
    "growth_finding",
    "memory",
    "memory_finding",
    "memory_table",
    "mitigation_plan",
    "oom_finding",
    "oom_kills",
    "oom_victims",
    "process_growth",
    "processes",
    "sample",
    "swap_finding",
    "top_processes",
]
