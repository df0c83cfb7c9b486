"""How much does running a diagnosis as an archived notebook cost, against the same work in a plain process?

Starts the db-degradation sandbox, then times, alternating, N times each:
  plain         python running the notebook's code cells as a script (same library calls, no kernel, no artifact)
  imsnb         `imsnb run db_performance` (a plain kernel over IPC, scrubbing, report.html, summary.json)
  papermill     the `papermill` CLI on the same notebook (kernel + executed notebook only, no HTML or summary)

Prints medians of wall time and of CPU time (the command and all its children: under load, CPU is the steadier
measure), and the ratios imsnb/plain and imsnb/papermill (the machine is shared: compare ratios, not seconds).
Usage: .venv/bin/python bench/run_overhead.py [N]
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imsnb.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "db_performance.ipynb"
BIN = Path(sys.executable).parent


def notebook_as_script(path: Path) -> str:
    """The code cells in order, with `sample_s = 0` after the parameters cell (as `-p sample_s 0` does)."""
    parts = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            parts.append("".join(cell["source"]))
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                parts.append("sample_s = 0")
    return "\n\n".join(parts)


def timed(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system of the command and every process under it)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main(rounds: int = 5) -> None:
    with Sandbox("db-degradation") as sandbox, tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        env = {**os.environ, **sandbox.env(), "MPLBACKEND": "Agg"}
        script = work_dir / "db_performance.py"
        script.write_text(notebook_as_script(NOTEBOOK))
        # sample_s=0 everywhere: this bench measures the overhead of a run, not the length of a counter sample
        imsnb_run = [str(BIN / "imsnb"), "run", "db_performance", "--incident", "BENCH", "--outputs", str(work_dir)]
        imsnb_run += ["-p", "sample_s", "0"]
        commands = {
            "plain": ([sys.executable, str(script)], env),
            "imsnb": (imsnb_run, env),
            "papermill": (
                [str(BIN / "papermill"), "--log-level", "ERROR", str(NOTEBOOK), str(work_dir / "out.ipynb")]
                + ["-p", "sample_s", "0"],
                env,
            ),
        }
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        for command, command_env in commands.values():  # warm the page cache and the sandbox's statistics once
            timed(command, command_env, ROOT / "notebooks")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, (command, command_env) in commands.items():
                times[name].append(timed(command, command_env, ROOT / "notebooks"))
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    wall = {name: statistics.median(w for w, _ in values) for name, values in times.items()}
    cpu = {name: statistics.median(c for _, c in values) for name, values in times.items()}
    for name in commands:
        walls = [w for w, _ in times[name]]
        spread = f"{min(walls):.2f}–{max(walls):.2f}"
        print(f"{name:<12} wall {wall[name]:6.2f} s (range {spread} s over {rounds})   cpu {cpu[name]:6.2f} s")
    for label, measure in (("wall", wall), ("cpu", cpu)):
        print(
            f"{label}: imsnb / plain {measure['imsnb'] / measure['plain']:.2f}x (aim: within 1.5x)   "
            f"imsnb / papermill {measure['imsnb'] / measure['papermill']:.2f}x (aim: under 1.0x)"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
