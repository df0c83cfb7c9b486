"""How fast is a whole suite, against running the same notebooks one by one with the papermill CLI?

Starts the db-degradation sandbox, then, in this order:
  papermill       the `papermill` CLI on each notebook in turn (`-p window 30m -p sample_s 0`): the baseline
  plain-2         `run_suite` with jobs=2 and plain kernels (IMSNB_WARM_KERNELS=0, as before the warm parent)
  warm-1          `run_suite` with jobs=1, every kernel forked from one warm parent
  warm-2          `run_suite` with jobs=2, the same (the default)
  warm-N          `run_suite` with jobs=N (N = 3 unless given)

Prints each one's wall time and CPU time (this process and every process under it) and its wall time against the
papermill baseline measured in the same run (aim for warm-2: 0.3x or less). The machine is shared: compare ratios,
not seconds; the load average before and after says how shared it was. The suite's runs also write report.html and
summary.json, which the papermill baseline does not.
Every run has `sample_s=0`: the counter samples would add the same waits to every line (bench/counters.py measures
those). Usage: .venv/bin/python bench/suite.py [N]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imsnb.runs.catalogue import find_notebook
from imsnb.runs.execute import run_notebook
from imsnb.runs.suite import all_notebook_names, run_suite
from imsnb.sandbox import Sandbox

BIN = Path(sys.executable).parent


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def papermill_each(names: list[str], work: Path) -> tuple[float, float]:
    cpu, started = cpu_seconds(), time.perf_counter()
    for name in names:
        path = find_notebook(name)
        command = [str(BIN / "papermill"), "--log-level", "ERROR", str(path), str(work / f"{name}.ipynb")]
        result = subprocess.run(
            [*command, "-p", "window", "30m", "-p", "sample_s", "0"], cwd=path.parent, capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"papermill {name} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - started, cpu_seconds() - cpu


def suite(names: list[str], work: Path, label: str, jobs: int, warm: bool) -> tuple[float, float]:
    os.environ["IMSNB_WARM_KERNELS"] = "1" if warm else "0"
    cpu, started = cpu_seconds(), time.perf_counter()
    results = run_suite(
        names,
        {"window": "30m", "sample_s": 0},
        incident_id=f"BENCH-{label}",
        outputs=work,
        jobs=jobs,
        fail_on="CRITICAL",
    )
    wall = time.perf_counter() - started
    failed = [r.summary["notebook"] for r in results if r.status != "ok"]
    if failed:
        raise SystemExit(f"{label}: notebooks failed: {', '.join(failed)}")
    return wall, cpu_seconds() - cpu


def main(many: int = 3) -> None:
    names = all_notebook_names()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with Sandbox("db-degradation") as sandbox, tempfile.TemporaryDirectory() as work:
        os.environ.update(sandbox.env())
        os.environ.setdefault("MPLBACKEND", "Agg")
        run_notebook("health_check", {}, incident_id="WARM", outputs=work)  # warm the page cache once
        measured = {"papermill": papermill_each(names, Path(work))}
        for label, jobs, warm in (("plain-2", 2, False), ("warm-1", 1, True), ("warm-2", 2, True)):
            measured[label] = suite(names, Path(work), label, jobs, warm)
        measured[f"warm-{many}"] = suite(names, Path(work), f"warm-{many}", many, True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{len(names)} notebooks, {os.cpu_count()} CPUs")
    base = measured["papermill"][0]
    for label, (wall, cpu) in measured.items():
        print(f"{label:<10} wall {wall:6.1f} s   cpu {cpu:6.1f} s   wall / papermill one by one {wall / base:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
