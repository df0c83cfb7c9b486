"""A crontab line is a line: a schedule value holding a newline (or any control character) would end it and start an
entry of its own (`* * * * * touch ...`), which shlex quoting does not prevent and the comment line does not quote at
all. Every value that reaches a line is refused with one line instead."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
from helpers import ROOT

from imsnb.errors import BadParameter
from imsnb.schedule import Schedule, crontab_lines

INJECTED = "* * * * * touch /tmp/imsnb-crontab-injected"
HOSTILE = {
    "newline": f"x\n{INJECTED}\n",
    "carriage-return": f"x\r{INJECTED}",
    "nul": "x\x00y",
    "escape": "x\x1b[2Jy",
    "line-separator": f"x\u2028{INJECTED}",
    "next-line": f"x\x85{INJECTED}",
}


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
@pytest.mark.parametrize(
    "field", ["notebook", "incident", "environment", "config_path", "outputs", "log_dir", "workdir", "env_file"]
)
def test_control_characters_never_reach_a_crontab_line(tmp_path, field, value):
    schedule = Schedule(name="hc", notebook="health_check", cron="0 */4 * * *")
    where = {
        "workdir": tmp_path,
        "outputs": tmp_path / "outputs",
        "log_dir": tmp_path / "logs",
        "config_path": tmp_path / "imsnb.toml",
        "env_file": tmp_path / "imsnb.env",
    }
    if field in ("notebook", "incident", "environment"):
        schedule = replace(schedule, **{field: f"sched-{value}"})
    else:
        where[field] = tmp_path / f"a{value}b"
    with pytest.raises(BadParameter, match="holds the control character"):
        crontab_lines({"hc": schedule}, **where)


def test_a_notebook_path_with_a_newline_is_refused_by_imsnb_schedule_crontab(tmp_path):
    folder = tmp_path / "nb\n* * * * * touch imsnb-crontab-injected\n"  # a folder name: no slash in it
    folder.mkdir()
    notebook = folder / "health_check.ipynb"
    shutil.copy(ROOT / "notebooks" / "health_check.ipynb", notebook)
    toml_path = str(notebook).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    (tmp_path / "imsnb.toml").write_text(
        f'[schedules.evil]\nnotebook = "{toml_path}"\ncron = "0 * * * *"\nincident = "sched-evil-{{date}}"\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "imsnb.cli", "schedule", "crontab", "--log-dir", str(tmp_path / "logs")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "IMSNB_CONFIG": str(tmp_path / "imsnb.toml"), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert not any(line.startswith("* * * * * touch") for line in proc.stdout.splitlines()), proc.stdout
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "control character" in proc.stderr
