"""How much does running a diagnosis as an archived notebook cost, against the same work in a plain process?

Starts the db-degradation sandbox, then times, alternating, N times each:
  plain     python running the notebook's code cells as a script (same library calls, no kernel, no artifact)
  imsnb     `imsnb run db_performance` (kernel, papermill, scrubbing, HTML export, summary.json)
  papermill the `papermill` CLI on the same notebook (kernel + executed notebook only, no HTML or summary)

Prints medians and the ratios imsnb/plain and imsnb/papermill (the machine is shared: compare ratios, not seconds).
Usage: .venv/bin/python bench/run_overhead.py [N]
"""

from __future__ import annotations

import json
import os
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
    cells = json.loads(path.read_text())["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def timed(command: list[str], env: dict, cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"{command[0]} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def main(rounds: int = 5) -> None:
    with Sandbox("db-degradation") as sandbox, tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        env = {**os.environ, **sandbox.env(), "MPLBACKEND": "Agg"}
        script = work_dir / "db_performance.py"
        script.write_text(notebook_as_script(NOTEBOOK))
        commands = {
            "plain": [sys.executable, str(script)],
            "imsnb": [str(BIN / "imsnb"), "run", "db_performance", "--incident", "BENCH", "--outputs", str(work_dir)],
            "papermill": [str(BIN / "papermill"), "--log-level", "ERROR", str(NOTEBOOK), str(work_dir / "out.ipynb")],
        }
        for command in commands.values():  # warm the page cache and the sandbox's statistics once
            timed(command, env, ROOT / "notebooks")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(rounds):
            for name, command in commands.items():
                times[name].append(timed(command, env, ROOT / "notebooks"))
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, value in median.items():
        spread = f"{min(times[name]):.2f}–{max(times[name]):.2f}"
        print(f"{name:<10} median {value:6.2f} s  (range {spread} s over {rounds} runs)")
    print(f"imsnb / plain      {median['imsnb'] / median['plain']:.2f}x   (aim: within 1.5x)")
    print(f"imsnb / papermill  {median['imsnb'] / median['papermill']:.2f}x   (aim: under 1.0x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
