"""Guarantee 9: kernels forked from a warm parent (imsnb.runs.kernels) are as isolated as freshly started ones — their
own process and process group, the run's environment and key, a fresh namespace and random state, imsnb's modules
imported afresh (so `imsnb.started_with` reads this run's key) — and a dead parent costs a plain kernel, not a run."""

from __future__ import annotations

import json
import os
import signal
import time

from test_fault_runs import write_notebook

from imsnb.runs.execute import run_notebook
from imsnb.runs.kernels import ForkServer

FACTS = """
import json, sys
import imsnb.config as shared_module
from imsnb import started_with
leaked, shared_module._leak_test = getattr(shared_module, "_leak_test", None), os.getpid()
import numpy, matplotlib
print("FACTS " + json.dumps({
    "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "leak": leaked,
    "key": started_with.run_key(), "mark": os.environ.get("IMSNB_TEST_MARK"),
    "warm": getattr(sys.modules.get("imsnb.runs.kernels"), "FORKED_FROM", None) is not None,
    "rand": numpy.random.rand(), "cwd": os.getcwd(),
    "backend": matplotlib.get_backend().lower(),
}))
"""


def facts(result) -> dict:
    cells = json.loads((result.folder / "notebook.ipynb").read_text())["cells"]
    texts = ["".join(out.get("text", "")) for cell in cells for out in cell.get("outputs", [])]
    line = next(line for text in texts for line in text.splitlines() if line.startswith("FACTS "))
    return json.loads(line[len("FACTS ") :])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone(pid: int, within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_forked_kernels_share_nothing_between_runs(tmp_path, monkeypatch):
    notebook = write_notebook(tmp_path, "facts", FACTS)
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("IMSNB_ALLOW_ACTIONS", "1")  # exported where the parent starts: it must arm no run
    with ForkServer() as server:
        first = run_notebook(
            str(notebook), {}, incident_id="INC-W", outputs=outputs, kernels=server, allow_actions=True
        )
        monkeypatch.setenv("IMSNB_TEST_MARK", "second")
        second = run_notebook(str(notebook), {}, incident_id="INC-W", outputs=outputs, kernels=server)
        server_pid = server.pid
    a, b = facts(first), facts(second)
    assert first.status == second.status == "ok"
    assert a["warm"] and b["warm"], "the kernels did not come from the warm parent"
    assert a["pid"] != b["pid"] and a["ppid"] == b["ppid"] == server_pid
    assert a["pgid"] == a["pid"] and b["pgid"] == b["pid"], "each kernel leads its own process group"
    assert a["leak"] is None and b["leak"] is None, "a module global set by one run was seen by the next"
    assert a["key"] is True and b["key"] is False, "the run key belongs to the run that was given it"
    assert a["mark"] is None and b["mark"] == "second", "each kernel has its own run's environment"
    assert a["rand"] != b["rand"], "numpy's random state was copied from the parent"
    assert a["cwd"] == b["cwd"] == str(tmp_path)
    assert a["backend"] == b["backend"] == "agg"
    assert gone(a["pid"]) and gone(b["pid"]) and gone(server_pid), "a kernel or the parent outlived the runs"


def test_a_dead_warm_parent_costs_a_plain_kernel_not_the_run(tmp_path):
    notebook = write_notebook(tmp_path, "facts", FACTS)
    with ForkServer() as server:
        os.kill(server.pid, signal.SIGKILL)
        server.process.wait()
        result = run_notebook(str(notebook), {}, incident_id="INC-W2", outputs=tmp_path / "out", kernels=server)
    assert result.status == "ok"
    fact = facts(result)
    assert not fact["warm"] and fact["ppid"] != server.pid


def test_plain_kernels_when_asked(tmp_path, monkeypatch):
    monkeypatch.setenv("IMSNB_WARM_KERNELS", "0")
    notebook = write_notebook(tmp_path, "facts", FACTS)
    result = run_notebook(str(notebook), {}, incident_id="INC-W3", outputs=tmp_path / "out")
    assert result.status == "ok" and not facts(result)["warm"]


PLANTED_PANDAS = """
import os
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "planted-ran"), "a").write(str(os.getpid()) + "\\n")
raise ImportError("a planted pandas.py")
"""


def test_the_warm_parent_never_imports_from_the_callers_folder(tmp_path, monkeypatch):
    """`imsnb suite` started from a folder holding a pandas.py: the warm parent imports the real pandas, and
    nothing from that folder runs, in the parent or in any kernel forked from it."""
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "pandas.py").write_text(PLANTED_PANDAS)
    notebook = write_notebook(tmp_path, "which_pandas", 'import pandas\nprint("PANDAS " + pandas.__file__)')
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("PYTHONPATH", os.environ.get("PYTHONPATH", "") + os.pathsep)  # an empty entry: "the cwd"
    with ForkServer(["pandas"]) as server:
        result = run_notebook(str(notebook), {}, incident_id="INC-W4", outputs=tmp_path / "out", kernels=server)
    assert not (hostile / "planted-ran").exists(), "the planted pandas.py ran"
    assert result.status == "ok"
    cells = json.loads((result.folder / "notebook.ipynb").read_text())["cells"]
    printed = "".join("".join(out.get("text", "")) for cell in cells for out in cell.get("outputs", []))
    assert "PANDAS " in printed and "site-packages" in printed and str(hostile) not in printed, printed
