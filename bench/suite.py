"""How much does running the whole suite in parallel kernels save, against running it one notebook at a time?

Starts the db-degradation sandbox, runs one notebook to warm imports and caches, then runs every notebook with
`imsnb.suite.run_suite` in the same process, in this order:
  sequential    jobs=1
  threads-2     jobs=2, thread workers (the default)
  processes-2   jobs=2, process workers (spawned)
  threads-N     jobs=N, thread workers (N = 3 unless given)

Prints each configuration's wall time, the sum of its notebooks' own durations, the CPU time it used (this
process and its kernels), and wall / sequential wall (the machine is shared: compare ratios measured in the same
run, not seconds; the load average before and after says how shared it was).
Usage: .venv/bin/python bench/suite.py [N]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from imsnb.runner import run_notebook
from imsnb.sandbox import Sandbox
from imsnb.suite import all_notebook_names, run_suite


def timed_suite(names: list[str], outputs: Path, incident: str, jobs: int, workers: str) -> tuple[float, float, float]:
    cpu_before = os.times()
    started = time.perf_counter()
    results = run_suite(
        names, {"window": "30m"}, incident_id=incident, outputs=outputs, jobs=jobs, workers=workers, fail_on="CRITICAL"
    )
    wall = time.perf_counter() - started
    cpu_after = os.times()
    fields = ("user", "system", "children_user", "children_system")
    cpu = sum(getattr(cpu_after, k) - getattr(cpu_before, k) for k in fields)
    failed = [r.summary["notebook"] for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(f"{incident}: notebooks failed: {', '.join(failed)}")
    return wall, sum(r.summary["duration_s"] for r in results), cpu


def main(many: int = 3) -> None:
    names = all_notebook_names()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    configs = [("sequential", 1, "thread"), ("threads-2", 2, "thread"), ("processes-2", 2, "process")]
    configs.append((f"threads-{many}", many, "thread"))
    with Sandbox("db-degradation") as sandbox, tempfile.TemporaryDirectory() as work:
        os.environ.update(sandbox.env())
        os.environ.setdefault("MPLBACKEND", "Agg")
        run_notebook("health_check", {}, incident_id="WARM", outputs=work)
        measured = {}
        for label, jobs, workers in configs:
            measured[label] = timed_suite(names, Path(work), f"BENCH-{label}", jobs, workers)
            wall, total, cpu = measured[label]
            print(f"{label:<12} wall {wall:6.1f} s   sum of runs {total:6.1f} s   cpu {cpu:6.1f} s", flush=True)
    base = measured["sequential"][0]
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{len(names)} notebooks, {os.cpu_count()} CPUs")
    for label, (wall, _, _) in measured.items():
        if label != "sequential":
            print(f"{label:<12} / sequential  {wall / base:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
