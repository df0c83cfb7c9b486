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
bounded. The disk (`df`, `du`, old logs, rotation) is `imsnb.host.disk`.
"""

# The face re-exports each topic module's __all__: a new name goes in its module's __all__, not here.
from imsnb.host.memory import cgroups as _cgroups
from imsnb.host.memory import growth as _growth
from imsnb.host.memory import meminfo as _meminfo
from imsnb.host.memory import oom as _oom
from imsnb.host.memory import plan as _plan
from imsnb.host.memory.cgroups import *
from imsnb.host.memory.growth import *
from imsnb.host.memory.meminfo import *
from imsnb.host.memory.oom import *
from imsnb.host.memory.plan import *

__all__: list[str] = []
__all__ += _cgroups.__all__
__all__ += _growth.__all__
__all__ += _meminfo.__all__
__all__ += _oom.__all__
__all__ += _plan.__all__
