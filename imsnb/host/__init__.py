"""This host, the machine imsnb runs on: its disks and logs (`disk`: df, du, old logs, rotation — the runbook's "High
Disk Usage" and "Log Rotation") and its memory (`memory`: /proc, cgroups, the OOM killer — "Memory Leak / OOM
Killer"). Notebooks call `host.disk_usage(...)` and `host.memory.sample(...)`."""

from imsnb.host import disk as _disk
from imsnb.host import memory
from imsnb.host.disk import *

__all__ = [*_disk.__all__, "memory"]
