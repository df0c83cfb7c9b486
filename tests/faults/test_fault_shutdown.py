"""Guarantee 11: the long-running commands stop cleanly on any stop signal, however it comes and however often.

A real `imsnb sandbox` (its servers' files under a private TMPDIR): started in the background by a script (which
leaves SIGINT ignored) it stops on SIGINT; it stops on SIGTERM; and, as a terminal's Ctrl-C pressed twice 0.5 s
apart reaches the whole process group, two SIGINTs to the group leave no server running and no file behind. The
same double Ctrl-C to a real `imsnb lab --sandbox` whose JupyterLab is a stand-in (the tests do not install
JupyterLab) stops the stand-in and the sandbox."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

HANG_BOUND_S = 120  # a bound on a hang, not a timing assertion


def start(command: list[str], tmp: Path, *, shell_background: bool = False) -> tuple[subprocess.Popen, int]:
    """Start `command` in a new session (its own process group, as a terminal's foreground job) with TMPDIR=tmp;
    returns the process and the pid of the imsnb process itself."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    if shell_background:  # what `imsnb sandbox &` in a script does: a non-interactive shell ignores SIGINT in it
        command = ["sh", "-c", " ".join(command) + " & echo $!; wait"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    pid = int(proc.stdout.readline()) if shell_background else proc.pid
    return proc, pid


def wait_for_line(proc: subprocess.Popen, needle: str) -> list[str]:
    lines = []
    deadline = time.monotonic() + HANG_BOUND_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if needle in line:
            return lines
    pytest.fail(f"never printed {needle!r}: {''.join(lines)} {proc.stderr.read() if proc.poll() is not None else ''}")


def exports(lines: list[str]) -> dict[str, str]:
    return dict(line.removeprefix("export ").strip().split("=", 1) for line in lines if line.startswith("export "))


def assert_nothing_left(tmp: Path, env: dict[str, str]) -> None:
    assert list(tmp.iterdir()) == [], f"left behind: {list(tmp.iterdir())}"
    for port in (env["DB_PORT"], env["REDIS_PORT"]):
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(port))) != 0, f"a server still listens on {port}"
    mine = processes_from(tmp)
    assert mine == [], f"processes still running from {tmp}: {mine}"


def processes_from(folder: Path) -> list[str]:
    """Pids of the processes whose command line names `folder` (the sandbox's servers do)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(folder).encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


@pytest.fixture
def private_tmp():
    """The TMPDIR the command's servers make their folders in; under /tmp and traversable, as the postgres user
    that runs initdb (when the tests run as root) must reach its data folder."""
    folder = Path(tempfile.mkdtemp(prefix="imsnb-test-shutdown-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    for pid in processes_from(folder):  # a failed test must not leave its servers running (a leaked postmaster)
        try:
            os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


SANDBOX = [sys.executable, "-m", "imsnb.cli", "sandbox", "--scenario", "healthy"]


@pytest.mark.parametrize(
    ("how", "signals", "to_group", "shell_background"),
    [
        ("sigint-from-a-script-background", [signal.SIGINT], False, True),
        ("sigterm", [signal.SIGTERM], False, False),
        ("double-ctrl-c", [signal.SIGINT, signal.SIGINT], True, False),
    ],
)
def test_imsnb_sandbox_stops_and_cleans_up(private_tmp, how, signals, to_group, shell_background):
    tmp = private_tmp
    proc, pid = start(SANDBOX, tmp, shell_background=shell_background)
    try:
        env = exports(wait_for_line(proc, "export PROMETHEUS_URL"))
        for i, signum in enumerate(signals):
            if i:
                time.sleep(0.5)
            os.killpg(proc.pid, signum) if to_group else os.kill(pid, signum)
        proc.wait(timeout=HANG_BOUND_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "sandbox stopped" in stderr and "Traceback" not in stderr, stderr
    assert_nothing_left(tmp, env)


STAND_IN = textwrap.dedent(
    """
    # A stand-in for JupyterLab: listens on its port; the first SIGINT asks (as Jupyter does), the second exits;
    # SIGTERM takes a second to shut down, so the second Ctrl-C arrives during imsnb's clean-up.
    import signal, socket, sys, time
    port = int(sys.argv[1])
    server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port)); server.listen(8)
    seen = []
    def on_int(*_):
        seen.append(1)
        if len(seen) > 1:
            sys.exit(0)
        print("Shut down this Jupyter server (y/[n])?", flush=True)
    def on_term(*_):
        time.sleep(1)
        sys.exit(0)
    signal.signal(signal.SIGINT, on_int)
    signal.signal(signal.SIGTERM, on_term)
    while True:
        time.sleep(0.1)
    """
)

LAB = textwrap.dedent(
    """
    # imsnb lab as it is, with the JupyterLab command replaced by the stand-in.
    import sys
    from imsnb import cli, lab
    lab.require_jupyterlab = lambda: None
    lab.lab_command = lambda folder, port: [sys.executable, {stand_in!r}, str(port)]
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_imsnb_lab_survives_a_double_ctrl_c(tmp_path, private_tmp):
    tmp = private_tmp
    stand_in = tmp_path / "stand_in.py"
    stand_in.write_text(STAND_IN)
    wrapper = tmp_path / "lab.py"
    wrapper.write_text(LAB.format(stand_in=str(stand_in)))
    port = free_port()
    command = [sys.executable, str(wrapper), "lab", "--sandbox", "healthy", "--port", str(port)]
    command += ["--outputs", str(tmp_path / "outputs")]
    proc, _ = start(command, tmp)
    try:
        ready = wait_for_line(proc, "sandbox ready")[-1]
        assert f"open http://127.0.0.1:{port}/lab?token=" in ready and str(tmp_path / "outputs" / ".lab") in ready
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=HANG_BOUND_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = proc.stderr.read()
    assert "sandbox stopped" in stderr and "Traceback" not in stderr, stderr
    assert_nothing_left(tmp, {"DB_PORT": "1", "REDIS_PORT": "1"})
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the stand-in JupyterLab still listens"
