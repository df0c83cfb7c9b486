"""The `imsnb` command as a user runs it: a real process, real exit codes, one-line errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, read_summary

IMSNB = [sys.executable, "-m", "imsnb.cli"]


def run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*IMSNB, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def test_list_shows_every_notebook_with_parameters(tmp_path):
    result = run("list", cwd=tmp_path)
    assert result.returncode == 0
    assert "db_performance: Database performance degradation" in result.stdout
    assert "-p window" in result.stdout and "default '1h'" in result.stdout


def test_run_writes_the_run_folder_and_prints_findings(tmp_path, degraded):
    # the lock wait grows with the session's age (WARNING, ERROR past 30 s): --fail-on CRITICAL keeps exit 0
    args = ("run", "db_performance", "-p", "window", "30m", "--incident", "INC-1234", "--fail-on", "CRITICAL")
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    folders = [p for p in (tmp_path / "outputs" / "INC-1234").iterdir() if p.is_dir()]
    assert len(folders) == 1 and f"run folder: outputs/INC-1234/{folders[0].name}" in result.stdout
    assert re.search(r"(WARNING|ERROR) +postgres.blocked_queries", result.stdout)
    assert read_summary(folders[0])["parameters"]["window"] == "30m"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run", "no_such_notebook"], "unknown notebook 'no_such_notebook'"),
        (["run", "db_performance", "-p", "window", "5x"], "window '5x' is not a duration"),
        (["run", "db_performance", "-p", "colour", "red"], "has no parameter 'colour'"),
        (["run", "db_performance", "-p", "top_n", "many"], "'top_n' must be a int"),
        (["run", "db_performance", "-p", "api_token", "abc"], "looks like a secret"),
        (["run", "db_performance", "--incident", "../etc"], "incident id '../etc' is not usable"),
        (["run", "db_performance", "--fail-on", "LOUD"], "unknown severity 'LOUD'"),
        (["run", "db_performance", "-p", "window"], "expected 2 arguments"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, needle):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.servers  # `imsnb sandbox` starts one
def test_sandbox_prints_exports_and_cleans_up_on_ctrl_c(tmp_path):
    import tempfile

    # A temp dir of its own (traversable by the postgres user), so other sandboxes on the machine do not count.
    own_tmp = Path(tempfile.mkdtemp(prefix="imsnb-cli-test-"))
    own_tmp.chmod(0o755)
    before = _sandbox_dirs(own_tmp)
    proc = subprocess.Popen(
        [*IMSNB, "sandbox", "--scenario", "db-degradation"],
        cwd=tmp_path,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "TMPDIR": str(own_tmp)},
    )
    try:
        exports = {}
        wanted = {"PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "DB_HOST", "DB_NAME", "DB_USER"}
        deadline = time.monotonic() + 60
        while not wanted <= set(exports) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("export "):
                key, _, value = line[len("export ") :].strip().partition("=")
                exports[key] = value.strip("'")
        assert wanted <= set(exports)
        import psycopg

        with psycopg.connect(
            host=exports["PGHOST"],
            port=exports["PGPORT"],
            user=exports["PGUSER"],
            dbname=exports["PGDATABASE"],
            password=exports["PGPASSWORD"],
        ) as conn:
            waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
        assert waiting[0] == 1
        datadirs = _sandbox_dirs(own_tmp) - before
        assert len(datadirs) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert not (datadirs & _sandbox_dirs(own_tmp)), "the sandbox removed its temp dirs"
    own_tmp.rmdir()  # fails if the sandbox left anything behind


def _sandbox_dirs(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("imsnb-pg-*")}


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_a_verdict_on_part_of_the_window_says_which_part_on_its_line(capsys):
    """An OK judged on a 10 s sample of a 5 min window printed as a plain OK: at 3 a.m. that reads as 'the window
    was fine'. The line says what the verdict covers; a verdict on the whole window says nothing more."""
    from datetime import UTC, datetime, timedelta

    from imsnb.cli.output import print_findings
    from imsnb.period import Period
    from imsnb.sampling.start import uncovered_note
    from imsnb.window import Window

    end = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    note = uncovered_note(Window(end - timedelta(minutes=5), end), 10, "sample")
    part = Period(end - timedelta(seconds=10), end, "sample", note).to_dict()
    whole = Period(end - timedelta(minutes=5), end, "history").to_dict()
    print_findings(
        [
            {"severity": "OK", "check": "postgres.slow_queries", "message": "no statement averages 100 ms or more",
             "period": part},
            {"severity": "OK", "check": "postgres.cache_hit_ratio", "message": "hit ratio 99.9%", "period": whole},
        ]
    )  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("no statement averages 100 ms or more (the sample covers 10 s of the 5 min window)")
    assert lines[1].endswith("hit ratio 99.9%")
