"""The JupyterLab session `imsnb lab` starts: a working folder of fresh notebook copies, quiet settings, the URL.

The lab never serves the repository's tracked `notebooks/`: autosave would write outputs into them and File > New
would add `Untitled.ipynb` to the catalogue. Each session gets `<outputs>/.lab/<UTC yyyymmddTHHMMSSZ>/` (under the
git-ignored archive folder; hidden, so `imsnb archive list` never shows it as an incident) with a copy of every
runbook notebook; the work stays there after the session.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from datetime import UTC, datetime
from pathlib import Path

from imsnb.runs.catalogue import notebooks_dir, runbook_paths

# JupyterLab 4 asks on first start whether to fetch Jupyter news, and may check for updates: neither is wanted on
# an incident bridge (nor is the network call). A user's own choice in these settings is kept.
QUIET_SETTINGS = {"@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}}
QUIET_SETTINGS_DEFAULTS = {"checkForUpdates": False}


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


def user_settings_dir() -> Path | None:
    """The user's JupyterLab settings folder, if JupyterLab has one here."""
    if os.environ.get("JUPYTERLAB_SETTINGS_DIR"):
        return Path(os.environ["JUPYTERLAB_SETTINGS_DIR"])
    try:
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
