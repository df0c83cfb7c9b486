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
