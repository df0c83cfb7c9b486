"""The JupyterLab session `imsnb lab` starts: a working folder of fresh notebook copies, quiet settings, the
JupyterLab process (its command, environment and lifetime), the URL.

The lab never serves the repository's tracked `notebooks/`: autosave would write outputs into them and File > New
would add `Untitled.ipynb` to the catalogue. Each session gets `<outputs>/.lab/<UTC yyyymmddTHHMMSSZ>/` (under the
git-ignored archive folder; hidden, so `imsnb archive list` never shows it as an incident) with a copy of every
runbook notebook; the work stays there after the session.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from imsnb import config
from imsnb.errors import ImsnbError
from imsnb.runs.catalogue import notebooks_dir, runbook_paths
from imsnb.sandbox import SCENARIO_NAMES
from imsnb.shutdown import Shutdown, stop_process

# JupyterLab 4 asks on first start whether to fetch Jupyter news, and may check for updates: neither is wanted on
# an incident bridge (nor is the network call). A user's own choice in these settings is kept.
QUIET_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}}
QUIET_SETTINGS_DEFAULTS = {"checkForUpdates": False}
# The session's own notebook trust store (Jupyter's NotebookNotary: its signatures and the key it signs with). The
# copies are signed when made, so JupyterLab opens them without "Notebook ... is not trusted" in its log; the user's
# own store (~/.local/share/jupyter/nbsignatures.db) is left alone.
TRUST_FOLDER = ".jupyter-trust"


def session_folder(outputs: Path | str, at: datetime | None = None) -> Path:
    """Where this session's notebooks go (not created here: a dry run writes nothing)."""
    at = at or datetime.now(UTC)
    return Path(outputs).resolve() / ".lab" / f"{at:%Y%m%dT%H%M%SZ}"


def settings_folder(folder: Path) -> Path:
    return folder / ".jupyterlab-settings"


def prepare_session(folder: Path, user_settings: Path | None = None) -> list[Path]:
    """Create the working folder with fresh copies of the catalogue's notebooks and the session's JupyterLab
    settings (the user's own, copied, with the news pop-up off); returns the notebooks copied."""
    folder.mkdir(parents=True, exist_ok=False)
    copied = []
    for source in runbook_paths(notebooks_dir()):
        copied.append(Path(shutil.copy2(source, folder / source.name)))
    sign_notebooks(copied, folder / TRUST_FOLDER)
    settings = settings_folder(folder)
    if user_settings is not None and user_settings.is_dir():
        shutil.copytree(user_settings, settings)
    for relative, wanted in QUIET_SETTINGS.items():
        path = settings / relative
        try:
            current = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except ValueError:  # JupyterLab allows comments (json5): leave the user's file alone
            continue
        merged = {**QUIET_SETTINGS_DEFAULTS, **current}
        if current.get("fetchNews") in (None, "none"):  # never asked: do not ask now
            merged.update(wanted)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    return copied


def sign_notebooks(paths: list[Path], trust: Path) -> None:
    """Mark `paths` trusted in the session's trust store (`TRUST_FOLDER`, which the lab's notary is pointed at):
    they are fresh copies of the catalogue, with no outputs, so there is nothing in them to distrust."""
    # lazy: nbformat (~1 s) only when the lab starts
    import nbformat
    from nbformat.sign import NotebookNotary

    trust.mkdir(parents=True, exist_ok=True)
    notary = NotebookNotary(data_dir=str(trust))
    try:
        for path in paths:
            notary.sign(nbformat.read(path, as_version=4))
    finally:
        notary.store.close()


def user_settings_dir() -> Path | None:
    """The user's JupyterLab settings folder, if JupyterLab has one here."""
    if os.environ.get("JUPYTERLAB_SETTINGS_DIR"):
        return Path(os.environ["JUPYTERLAB_SETTINGS_DIR"])
    try:
        # lazy: only when the lab starts
        from jupyter_core.paths import jupyter_config_dir
    except ImportError:
        return None
    return Path(jupyter_config_dir()) / "lab" / "user-settings"


def lab_url(port: int, token: str) -> str:
    return f"http://127.0.0.1:{port}/lab?token={token}"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def check_session(scenario: str | None, port: int, *, dry_run: bool = False) -> None:
    """Refuse what would make the session fail to start (bad input, exit 2): an unknown sandbox scenario, a port out
    of range; unless it is a dry run, JupyterLab missing or the port already taken."""
    if scenario and scenario not in SCENARIO_NAMES:
        raise ImsnbError(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIO_NAMES)}")
    if not 0 < port < 65536:
        raise ImsnbError(f"port {port} is out of range: use 1-65535")
    if dry_run:
        return
    require_jupyterlab()
    if listening(port):
        raise ImsnbError(f"port {port} is already in use (another JupyterLab?): pass --port with a free one")


def require_jupyterlab() -> None:
    if importlib.util.find_spec("jupyterlab") is None:
        raise ImsnbError("JupyterLab is not installed: pip install -e '.[lab]'")


def lab_command(notebooks: Path, port: int) -> list[str]:
    """JupyterLab on 127.0.0.1:PORT serving `notebooks` (the session's working folder), its own log quiet: the
    token comes from JUPYTER_TOKEN and `imsnb lab` prints the one line to open; the notebooks' trust is the
    session's (`sign_notebooks`), and kernels talk to it over IPC sockets (no TCP port, so no "Kernel is running
    over TCP without encryption" at every kernel start). A `tornado_settings` of the user's own Jupyter config is
    replaced by this one setting for the session."""
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        f"--ServerApp.root_dir={notebooks}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.log_level=WARN",
        "--LabApp.log_level=WARN",
        f"--NotebookNotary.data_dir={notebooks / TRUST_FOLDER}",
        "--KernelManager.transport=ipc",
        # jupyter_server's kernel websocket pings every 30 s with a 90 s timeout, which tornado >= 6.5 refuses (and
        # logs at the first connection, then uses 30 s): say 30 s, so the log stays quiet and nothing changes.
        '--ServerApp.tornado_settings={"ws_ping_timeout": 30000}',
    ]
    if os.geteuid() == 0:  # JupyterLab refuses root without it (containers, CI)
        command.append("--allow-root")
    return command


def new_token() -> str:
    """The session's token: ours, so the URL is known without reading Jupyter's log."""
    return secrets.token_urlsafe(24)


def lab_env(targets: dict[str, str]) -> dict[str, str]:
    """What the lab process gets on top of this environment: the targets (a sandbox's) and the caller's
    imsnb.toml (the kernels run in notebooks/)."""
    added = dict(targets)
    found = config.config_file()
    if found is not None and "IMSNB_CONFIG" not in os.environ:
        added["IMSNB_CONFIG"] = str(found.resolve())
    return added


def session_env(folder: Path, token: str, targets: dict[str, str]) -> dict[str, str]:
    """`lab_env` plus the session's token and its JupyterLab settings folder."""
    return lab_env(targets) | {"JUPYTER_TOKEN": token, "JUPYTERLAB_SETTINGS_DIR": str(settings_folder(folder))}


def serve(
    command: list[str], added: dict[str, str], port: int, shutdown: Shutdown, on_ready: Callable[[], None]
) -> int:
    """Run JupyterLab (`command`, this environment plus `added`) until it exits or a stop signal ends the session;
    `on_ready` is called once it listens on `port`. Returns 0 when a signal stopped it, else JupyterLab's own exit
    status. The process is stopped (terminate, then kill after 15 s) whatever happens.

    The session's kernels talk over IPC sockets, whose paths must stay under the kernel's limit of 107 bytes: their
    runtime folder (JUPYTER_RUNTIME_DIR: connection files, sockets) is a short temporary one, removed at the end."""

    runtime = tempfile.mkdtemp(prefix="imsnb-lab-")
    env = {**os.environ, **added, "JUPYTER_RUNTIME_DIR": runtime}
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    try:
        ready = False
        while proc.poll() is None:
            if not ready and listening(port):
                ready = True
                on_ready()
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        shutdown.begin()
        stop_process(proc, timeout_s=15)
        shutil.rmtree(runtime, ignore_errors=True)
    return 0 if shutdown.signal else (proc.returncode or 0)
