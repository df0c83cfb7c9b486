"""Guarantees 4 and 5: a dying kernel or a cell timeout still leaves a run folder that says so (exit 3); runs in
the same second never overwrite each other; a crash while writing never leaves a summary.json that looks complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path

import nbformat
import pytest
from helpers import read_summary

from imsnb.cli import main
from imsnb.runs.execute import run_notebook
from imsnb.runs.folder import write_run_folder

EXIT_NOTEBOOK_FAILED = 3
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def write_notebook(folder: Path, name: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata = json.loads((NOTEBOOKS / "health_check.ipynb").read_text())["metadata"]  # the same kernel
    params = nbformat.v4.new_code_cell('incident_id = "adhoc"  # ticket\nwindow = "1h"  # window')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {name}\n\n**When to use:** never; a fault-injection fixture."),
        nbformat.v4.new_code_cell("import os\nimport time"),
        params,
        nbformat.v4.new_code_cell('print("before the fault")'),
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell('print("after the fault")'),
    ]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def only_run_folder(outputs: Path, incident: str) -> Path:
    folders = [p for p in (outputs / incident).iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1, folders
    assert not [p for p in (outputs / incident).iterdir() if p.name.startswith(".partial")]
    return folders[0]


def test_a_dying_kernel_leaves_a_failed_run_and_exit_3(tmp_path, capsys):
    notebook = write_notebook(tmp_path, "dies", "os._exit(1)")
    outputs = tmp_path / "outputs"
    code = main(["run", str(notebook), "--incident", "INC-DEAD", "--outputs", str(outputs)])
    assert code == EXIT_NOTEBOOK_FAILED
    folder = only_run_folder(outputs, "INC-DEAD")
    summary = read_summary(folder)
    assert summary["status"] == "failed"
    assert "died" in summary["error"]["evalue"] or "Dead" in summary["error"]["ename"], summary["error"]
    executed = json.loads((folder / "notebook.ipynb").read_text())
    text = json.dumps(executed)
    assert "before the fault" in text and "after the fault\\n" not in text.split('"outputs"', 1)[-1]
    assert (folder / "report.html").stat().st_size > 0
    assert "dies: failed after " in capsys.readouterr().out


def test_a_cell_timeout_leaves_a_timeout_run_and_exit_3(tmp_path, capsys):
    notebook = write_notebook(tmp_path, "sleeps", "time.sleep(60)")
    outputs = tmp_path / "outputs"
    code = main(["run", str(notebook), "--incident", "INC-SLOW", "--outputs", str(outputs), "--timeout", "3"])
    assert code == EXIT_NOTEBOOK_FAILED
    folder = only_run_folder(outputs, "INC-SLOW")
    summary = read_summary(folder)
    assert summary["status"] == "timeout"
    assert "3 s" in summary["error"]["evalue"]
    banner = json.loads((folder / "notebook.ipynb").read_text())["cells"][0]
    assert "did not finish" in "".join(banner["source"])
    assert "sleeps: timed out after " in capsys.readouterr().out


def test_two_runs_at_the_same_second_get_two_complete_folders(tmp_path):
    """Two real runs of one notebook for one incident, started together in two processes."""
    notebook = write_notebook(tmp_path, "quick", 'print("quick")')
    outputs = tmp_path / "outputs"
    command = [sys.executable, "-m", "imsnb.cli", "run", str(notebook), "--incident", "INC-TWICE"]
    procs = [subprocess.Popen([*command, "--outputs", str(outputs)], stdout=subprocess.PIPE) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    folders = sorted(p for p in (outputs / "INC-TWICE").iterdir() if p.is_dir())  # and index.html
    assert len(folders) == 2 and not [p for p in folders if p.name.startswith(".")], folders
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["notebook.ipynb", "report.html", "summary.json"]
        assert read_summary(folder)["status"] == "ok"


def test_writers_racing_for_the_same_second_never_overwrite(tmp_path):
    """Eight writers with the identical start time, released together: eight folders, each its own summary."""
    started = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    gate = threading.Barrier(8)
    written: list[Path] = []

    def write(index: int) -> None:
        gate.wait()
        folder, _ = write_run_folder(tmp_path, started, "quick", nb, {"status": "ok", "writer": index})
        written.append(folder)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = sorted(p.name for p in written)
    assert names == sorted(["20261127T090000Z-quick"] + [f"20261127T090000Z-quick-{i}" for i in range(2, 9)])
    assert sorted(read_summary(p)["writer"] for p in written) == list(range(8))


CRASHING_WRITER = textwrap.dedent(
    """
    import builtins, os, signal, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from imsnb.runs.folder import write_run_folder

    real_open = builtins.open

    class Dying:
        def __init__(self, handle):
            self.handle = handle
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)
        def write(self, text):
            self.handle.write(text[: len(text) // 2])  # half of summary.json reaches the disk ...
            self.handle.flush()
            os.fsync(self.handle.fileno())
            os.kill(os.getpid(), signal.SIGKILL)  # ... and the process dies, as in a power cut or OOM kill
        def __getattr__(self, name):
            return getattr(self.handle, name)

    def dying_open(path, *args, **kwargs):
        handle = real_open(path, *args, **kwargs)
        return Dying(handle) if str(path).endswith("summary.json") else handle

    builtins.open = dying_open
    nb = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    write_run_folder(Path(sys.argv[1]), datetime.now(UTC), "quick", nb, {"status": "ok", "findings": []})
    """
)


def test_a_writer_killed_mid_summary_leaves_no_complete_looking_run(tmp_path):
    incident = tmp_path / "INC-CRASH"
    proc = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(incident)], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    entries = list(incident.iterdir())
    assert entries, "the writer died before it wrote anything: the test did not test anything"
    visible = [p for p in entries if not p.name.startswith(".")]
    assert visible == [], "a killed writer left a folder that looks like a finished run"
    half = [p / "summary.json" for p in entries if (p / "summary.json").exists()]
    assert half and all(p.parent.name.startswith(".partial-") for p in half)
    with pytest.raises(ValueError):
        json.loads(half[0].read_text())  # truly half-written, and only under the hidden .partial- name


def test_a_failing_write_leaves_nothing_behind(tmp_path, monkeypatch):
    """A write step that raises (disk full) leaves neither a run folder nor a stray .partial- folder."""
    real_fsync = os.fsync
    calls = []

    def full_disk(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:  # the third file, summary.json
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    notebook = write_notebook(tmp_path, "quick", 'print("quick")')
    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run_notebook(str(notebook), {}, incident_id="INC-FULL", outputs=tmp_path / "outputs")
    assert list((tmp_path / "outputs" / "INC-FULL").iterdir()) == []
