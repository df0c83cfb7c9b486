"""Guarantee 12: a lab session leaves the repository as it was. `imsnb lab` serves fresh copies of the catalogue's
notebooks in OUTPUTS/.lab/<UTC time>/ (never the tracked notebooks/), with JupyterLab's news question off; the
catalogue lists only runbook notebooks (title cell and parameters cell), so an Untitled.ipynb is never an entry."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
from helpers import ROOT

from imsnb import lab
from imsnb.runs.catalogue import notebooks_dir, runbook_paths

NEWS = "@jupyterlab/apputils-extension/notification.jupyterlab-settings"


def imsnb(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "imsnb.cli", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **env}
    )


def test_lab_dry_run_serves_a_session_folder_and_writes_nothing(tmp_path):
    result = imsnb("lab", "--dry-run", "--port", "8901", "--outputs", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    command, *env_lines = result.stdout.splitlines()
    root = next(a.split("=", 1)[1] for a in command.split() if a.startswith("--ServerApp.root_dir="))
    assert Path(root).parent == tmp_path / "out" / ".lab" and not Path(root).is_relative_to(ROOT / "notebooks")
    env = dict(line.split("=", 1) for line in env_lines)
    assert env["JUPYTERLAB_SETTINGS_DIR"] == str(Path(root) / ".jupyterlab-settings")
    assert env["JUPYTER_TOKEN"] == "********"
    assert "--ServerApp.ip=127.0.0.1" in command.split()
    assert not (tmp_path / "out").exists(), "a dry run wrote files"


def test_a_session_gets_fresh_copies_and_a_quiet_lab(tmp_path):
    user = tmp_path / "user-settings"
    (user / "@jupyterlab/apputils-extension").mkdir(parents=True)
    (user / "@jupyterlab/apputils-extension/themes.jupyterlab-settings").write_text('{"theme": "JupyterLab Dark"}')
    folder = lab.session_folder(tmp_path / "out")
    copied = lab.prepare_session(folder, user)
    assert [p.name for p in copied] == [p.name for p in runbook_paths()] and len(copied) >= 10
    for copy in copied:
        assert copy.read_bytes() == (notebooks_dir() / copy.name).read_bytes()
    settings = folder / ".jupyterlab-settings"
    assert json.loads((settings / NEWS).read_text()) == {"checkForUpdates": False, "fetchNews": "false"}
    assert "Dark" in (settings / "@jupyterlab/apputils-extension/themes.jupyterlab-settings").read_text()


def test_a_users_own_news_choice_is_kept(tmp_path):
    user = tmp_path / "user-settings"
    (user / NEWS).parent.mkdir(parents=True)
    (user / NEWS).write_text('{"fetchNews": "true", "checkForUpdates": true}')
    folder = lab.session_folder(tmp_path / "out")
    lab.prepare_session(folder, user)
    assert json.loads((folder / ".jupyterlab-settings" / NEWS).read_text()) == {
        "fetchNews": "true",
        "checkForUpdates": True,
    }


def test_the_catalogue_lists_only_runbook_notebooks(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for name in ("health_check", "redis_cache"):
        shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", folder)
    untitled = nbformat.v4.new_notebook()  # what File > New > Notebook saves
    untitled.cells = [nbformat.v4.new_code_cell("")]
    (folder / "Untitled.ipynb").write_text(nbformat.writes(untitled))
    scratch = nbformat.v4.new_notebook()
    scratch.cells = [nbformat.v4.new_markdown_cell("# My scratch"), nbformat.v4.new_code_cell("1 + 1")]
    (folder / "scratch.ipynb").write_text(nbformat.writes(scratch))
    (folder / "broken.ipynb").write_text("[]")

    listed = imsnb("list", cwd=tmp_path, IMSNB_NOTEBOOKS=str(folder))
    assert listed.returncode == 0, listed.stderr
    names = [line.split(":")[0] for line in listed.stdout.splitlines() if line and not line.startswith(" ")]
    assert names == ["health_check", "redis_cache"]

    run = imsnb("run", "Untitled", "--outputs", str(tmp_path / "out"), cwd=tmp_path, IMSNB_NOTEBOOKS=str(folder))
    assert run.returncode == 2 and "choose one of health_check, redis_cache" in run.stderr
    assert not (tmp_path / "out").exists()


LAB_TARGET = Path(sys.prefix) / "jupyterlab"  # installed by `make .venv/.test-installed`, outside the test venv
LAB_NOISE = ("is not trusted", "without encryption", "websocket_ping_timeout")


def test_a_lab_session_log_says_nothing_imsnb_can_quiet(tmp_path):
    """A real `imsnb lab` (JupyterLab from .venv/jupyterlab): a notebook opened, a kernel started and run over the
    websocket as the browser does, the notebook saved and opened again. Its log has none of what JupyterLab said
    at each of these before: "Notebook ... is not trusted" (the copies are signed in the session's own trust
    store), the kernel's "running over TCP without encryption" (kernels use IPC), the websocket ping warning."""
    import os
    import re
    import signal
    import urllib.request

    import pytest

    if not (LAB_TARGET / "jupyterlab").is_dir():
        pytest.fail(f"JupyterLab for this test is not in {LAB_TARGET}: run `make .venv/.test-installed`")
    from test_fault_hostile_text import free_port

    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{LAB_TARGET}",
        "JUPYTERLAB_DIR": str(LAB_TARGET / "share" / "jupyter" / "lab"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings"),
    }
    port = free_port()
    command = [sys.executable, "-m", "imsnb.cli", "lab", "--port", str(port), "--outputs", str(tmp_path / "out")]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        ready = proc.stdout.readline()
        assert "lab ready" in ready, ready + (proc.stderr.read() if proc.poll() is not None else "")
        token = re.search(r"token=(\S+)", ready)[1]
        base = f"http://127.0.0.1:{port}"

        def api(method: str, path: str, body: dict | None = None) -> dict:
            request = urllib.request.Request(
                f"{base}/api/{path}",
                method=method,
                data=None if body is None else json.dumps(body).encode(),
                headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as answer:
                return json.loads(answer.read() or b"{}")

        model = api("GET", "contents/health_check.ipynb")
        assert model["content"]["cells"], model
        session = api(
            "POST", "sessions", {"path": "health_check.ipynb", "type": "notebook", "kernel": {"name": "python3"}}
        )
        code = "from ipykernel.kernelapp import IPKernelApp\nprint(IPKernelApp.instance().transport, 6 * 7)"
        assert run_in_kernel(base, token, session["kernel"]["id"], session["id"], code) == "ipc 42\n"
        api("PUT", "contents/health_check.ipynb", {"type": "notebook", "format": "json", "content": model["content"]})
        api("GET", "contents/health_check.ipynb")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, log = proc.communicate(timeout=60)
    noise = [line for line in log.splitlines() if any(n in line for n in LAB_NOISE)]
    assert noise == [], log


def run_in_kernel(base: str, token: str, kernel: str, session: str, code: str) -> str:
    """What `code` prints, run in a lab kernel through the server's websocket, as JupyterLab itself sends it."""
    import asyncio
    import uuid

    from tornado.websocket import websocket_connect

    async def run() -> str:
        url = f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel}/channels?session_id={session}&token={token}"
        ws = await websocket_connect(url)
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": "imsnb-test", "session": session, "msg_type": "execute_request"}
        content = {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False}
        message = {"header": {**header, "version": "5.3", "date": ""}, "parent_header": {}, "metadata": {}}
        await ws.write_message(json.dumps({**message, "channel": "shell", "content": content}))
        printed = ""
        while True:
            reply = json.loads(await asyncio.wait_for(ws.read_message(), 60))
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if reply["msg_type"] == "stream":
                printed += reply["content"]["text"]
            if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
                ws.close()
                return printed

    return asyncio.run(run())
