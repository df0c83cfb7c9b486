"""imsnb.schedule and `imsnb schedule`: [schedules.NAME] validation, the runbook's default timetable, next runs in
UTC, last runs from the archive, one scheduled run against the sandbox (archived to the moto server), and crontab
lines executed by a real /bin/sh with a real flock."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from croniter import croniter
from helpers import read_summary

from imsnb import schedule
from imsnb.cli import main
from imsnb.errors import BadParameter
from imsnb.integrations.airflow import task_outcome, unreachable_targets

NOW = datetime(2026, 11, 29, 22, 5, tzinfo=UTC)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "imsnb.toml"
    path.write_text(text)
    return path


def test_without_a_file_the_runbooks_timetable(monkeypatch, tmp_path):
    monkeypatch.delenv("IMSNB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    schedules = schedule.load_schedules()
    assert {n: s.cron for n, s in schedules.items()} == {
        "health_check": "0 */4 * * *",
        "backup_verification": "30 3 * * *",
        "performance_baseline": "0 9 * * *",
        "triage": "0 * * * *",
        "certificate_expiry": "0 6 * * *",
        "disk_usage": "15 6 * * *",
    }
    assert all(s.notebook == n and s.incident == "sched-{notebook}-{date}" for n, s in schedules.items())
    assert [t.isoformat() for t in schedule.next_runs(schedules["health_check"], NOW)] == [
        "2026-11-30T00:00:00+00:00",
        "2026-11-30T04:00:00+00:00",
        "2026-11-30T08:00:00+00:00",
    ]
    assert schedule.next_runs(schedules["backup_verification"], NOW)[0] == datetime(2026, 11, 30, 3, 30, tzinfo=UTC)
    # a file without a schedules table keeps the default; an empty [schedules] means none
    assert set(schedule.load_schedules(write_config(tmp_path, '[environments.x]\nDB_HOST = "h"\n'))) == set(schedules)
    assert schedule.load_schedules(write_config(tmp_path, "[schedules]\n")) == {}


def test_a_schedule_table_with_every_field(tmp_path):
    path = write_config(
        tmp_path,
        """
[environments.prod]
DB_HOST = "db.internal"

[schedules.prod-health]
notebook = "health_check"
cron = "0 */2 * * mon-fri"
parameters = { window = "2h", request_timeout_s = 3 }
environment = "prod"
incident = "sched-{schedule}-{environment}-{month}"
archive = "s3://ims-incidents/scheduled"
timeout = 120
""",
    )
    s = schedule.load_schedules(path)["prod-health"]
    assert (s.notebook, s.cron, s.environment, s.archive, s.timeout_s) == (
        "health_check", "0 */2 * * mon-fri", "prod", "s3://ims-incidents/scheduled", 120.0,
    )  # fmt: skip
    assert s.run_parameters() == {"window": "2h", "request_timeout_s": 3, "environment": "prod"}
    assert schedule.incident_for(s, NOW) == "sched-prod-health-prod-202611"
    assert schedule.next_runs(s, NOW)[0] == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Monday
    assert schedule.next_runs(schedule.Schedule("x", "health_check", "0 6 * * *"), NOW)[0].hour == 6


BAD = [
    ('[schedules.h]\nnotebook = "health_check"\n', "[schedules.h] cron: is missing"),
    ('[schedules.h]\ncron = "0 */4 * *"\n', "[schedules.h] cron: '0 */4 * *' has 4 field(s)"),
    ('[schedules.h]\ncron = "0 0 */4 * * *"\n', "[schedules.h] cron: '0 0 */4 * * *' has 6 field(s)"),
    ('[schedules.h]\ncron = "61 * * * *"\n', "[schedules.h] cron: '61 * * * *' is not a valid cron expression"),
    ('[schedules.h]\ncron = "0 0 L * *"\n', "[schedules.h] cron: '0 0 L * *': 'L' is not cron syntax"),
    ('[schedules.h]\ncron = "0 0 30 feb *"\n', "[schedules.h] cron: '0 0 30 feb *'"),
    ("[schedules.h]\ncron = 5\n", "[schedules.h] cron: must be a string"),
    ('[schedules.nope]\ncron = "0 * * * *"\n', "[schedules.nope] notebook: unknown notebook 'nope'"),
    ('[schedules.h]\nnotebook = "health_check"\ncron = "0 * * * *"\ncolour = 1\n', "[schedules.h] colour: unknown"),
    ('[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\nparameters = { nope = 1 }\n', "parameters.nope:"),
    (
        '[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\nparameters = { window = "soon" }\n',
        "[schedules.h] parameters.window:",
    ),
    (
        '[schedules.h]\ncron = "0 * * * *"\nnotebook = "db_performance"\nparameters = { apply_actions = true }\n',
        "[schedules.h] parameters.apply_actions: a scheduled run never applies actions",
    ),
    (
        '[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\nparameters = { incident_id = "X" }\n',
        "[schedules.h] parameters.incident_id: use the schedule's `incident` pattern",
    ),
    ('[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\nenvironment = "prod"\n', "environment: no [env"),
    ('[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\nincident = "x-{who}"\n', "incident: unknown pla"),
    ('[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\nincident = "a b {date}"\n', "incident: 'a b {d"),
    ('[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\narchive = "/tmp/x"\n', "archive: archive '/tm"),
    ('[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\ntimeout = -1\n', "[schedules.h] timeout: must"),
    ('[schedules."a b"]\ncron = "0 * * * *"\n', "[schedules.a b]: the name must be"),
    ("schedules = 3\n", "[schedules] must be a table"),
    ("[schedules.h\n", "cannot read it: Expected ']'"),
    # the same refusal of secret-looking keys as [environments]
    ('[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\nDB_PASSWORD = "x"\n', "DB_PASSWORD looks like"),
    (
        '[schedules.h]\ncron = "0 * * * *"\nnotebook = "redis_cache"\nparameters = { api_token = "abcd" }\n',
        "[schedules.h] parameters.api_token looks like a secret: set it in the environment",
    ),
    (
        '[schedules.h]\ncron = "0 * * * *"\nnotebook = "health_check"\n'
        'parameters = { health_path = "redis://:hunter22@h/0" }\n',
        "[schedules.h] parameters.health_path looks like a secret",
    ),
]


@pytest.mark.parametrize(("text", "needle"), BAD, ids=[b[1][:40] for b in BAD])
def test_bad_entries_are_one_line_naming_file_table_and_field(text, needle, tmp_path, monkeypatch, capsys):
    if "notebook" not in text:
        text = text.replace("[schedules.h]\n", '[schedules.h]\nnotebook = "health_check"\n')
    path = write_config(tmp_path, text)
    monkeypatch.setenv("IMSNB_CONFIG", str(path))
    assert main(["schedule", "list", "--outputs", str(tmp_path / "out")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"imsnb: error: {path}"), err
    assert needle in err
    assert "hunter22" not in err and not (tmp_path / "out").exists()


def test_list_shows_next_three_utc_runs_and_the_last_run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IMSNB_CONFIG", raising=False)
    monkeypatch.delenv("IMSNB_ARCHIVE", raising=False)
    monkeypatch.chdir(tmp_path)
    # two archived runs of health_check (another incident's run of the same notebook does not count)
    for incident, started, severity in [
        ("sched-health_check-20261128", "2026-11-28T20:00:02Z", "OK"),
        ("sched-health_check-20261129", "2026-11-29T20:00:03Z", "WARNING"),
        ("INC-1", "2026-11-29T21:00:00Z", "CRITICAL"),
    ]:
        folder = tmp_path / "outputs" / incident / f"{started[:4]}-health_check"
        folder.mkdir(parents=True)
        summary = {"notebook": "health_check", "status": "ok", "started_at": started, "severity": severity}
        (folder / "summary.json").write_text(json.dumps({**summary, "parameters": {"incident_id": incident}}))
    assert main(["schedule", "list"]) == 0
    out = capsys.readouterr().out
    assert "runbook's default timetable; every time is UTC" in out
    block = out.split("health_check: notebook health_check, cron '0 */4 * * *' UTC")[1].split("\n\n")[0]
    times = block.split("next runs (UTC): ")[1].splitlines()[0].split(", ")
    assert len(times) == 3
    parsed = [datetime.strptime(t, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC) for t in times]
    assert all(t.minute == 0 and t.hour % 4 == 0 for t in parsed) and parsed == sorted(parsed)
    assert parsed[0] > datetime.now(UTC) and (parsed[1] - parsed[0]).total_seconds() == 4 * 3600
    assert "last run: 2026-11-29T20:00:03Z (UTC), status ok, worst WARNING" in block
    assert "last run: none" in out.split("triage: notebook triage")[1]


def test_schedule_run_against_the_sandbox_is_archived_and_listed(degraded, tmp_path, monkeypatch, capsys):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="imsnb-sched-test")
    path = write_config(
        tmp_path,
        """
[schedules.hc]
notebook = "health_check"
cron = "*/5 * * * *"
parameters = { window = "30m" }
archive = "s3://imsnb-sched-test/scheduled"
""",
    )
    monkeypatch.setenv("IMSNB_CONFIG", str(path))
    monkeypatch.setenv("IMSNB_ALLOW_ACTIONS", "1")  # an exported run key never reaches a scheduled run's kernel
    outputs = tmp_path / "outputs"
    code = main(["schedule", "run", "hc", "--outputs", str(outputs)])
    out = capsys.readouterr().out
    [folder] = list(outputs.glob("sched-health_check-*/*-health_check"))
    summary = read_summary(folder)
    incident = folder.parent.name
    assert incident == f"sched-health_check-{summary['started_at'][:10].replace('-', '')}" == summary["incident_id"]
    assert summary["status"] == "ok" and summary["parameters"]["window"] == "30m"
    assert code == (1 if summary["severity"] in ("ERROR", "CRITICAL") else 0)
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="imsnb-sched-test")["Contents"]}
    assert f"scheduled/{incident}/{folder.name}/summary.json" in keys
    assert "archived 4 file(s) to s3://imsnb-sched-test/scheduled" in out
    assert main(["schedule", "list", "--outputs", str(outputs)]) == 0
    listed = capsys.readouterr().out
    assert f"status ok, worst {summary['severity']}, {folder}" in listed
    assert "archive s3://imsnb-sched-test/scheduled" in listed
    assert main(["schedule", "run", "nope", "--outputs", str(outputs)]) == 2
    assert "no schedule 'nope' (known: hc)" in capsys.readouterr().err


def test_crontab_lines_run_under_sh_with_flock_and_a_log(tmp_path, monkeypatch):
    config = write_config(tmp_path, '[schedules.hc]\nnotebook = "health_check"\ncron = "*/5 * * * *"\n')
    env_file = tmp_path / "imsnb.env"
    env_file.write_text("DB_HOST=db.from.env.file\n")
    logs = tmp_path / "logs dir"  # a space, quoted
    lines = schedule.crontab_lines(
        schedule.load_schedules(config),
        workdir=tmp_path,
        outputs=tmp_path / "outputs",
        log_dir=logs,
        config_path=config,
        env_file=env_file,
        command=["/bin/sh", "-c", "env", "imsnb"],  # prints what a scheduled run would see, runs no notebook
    )
    assert "CRON_TZ=UTC" in lines
    entries = [ln for ln in lines if ln and not ln.startswith("#") and "=" not in ln.split()[0]]
    [entry] = [ln for ln in entries if "hc.log" in ln]
    [record] = [ln for ln in entries if "record.log" in ln]
    assert record.startswith("* * * * * ") and " record --history " in record, "the history, one round a minute"
    fields = entry.split(maxsplit=5)
    assert croniter.is_valid(" ".join(fields[:5])) and " ".join(fields[:5]) == "*/5 * * * *"
    command = fields[5]
    assert "flock -n" in command and ">> '" in command and "2>&1" in command
    subprocess.run(["/bin/sh", "-c", command], check=True, timeout=30)
    log = (logs / "hc.log").read_text()
    assert "DB_HOST=db.from.env.file" in log and f"IMSNB_CONFIG={config}" in log and f"PWD={tmp_path}" in log
    # a run still going holds the lock: the next one skips, the log does not grow
    with open(logs / "hc.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = subprocess.run(["/bin/sh", "-c", command], timeout=30)
    assert done.returncode == 1 and (logs / "hc.log").read_text() == log


def test_crontab_cli_uses_this_imsnb_and_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IMSNB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["schedule", "crontab", "--log-dir", str(tmp_path / "log")]) == 0
    out = capsys.readouterr().out.splitlines()
    entries = [ln for ln in out if ln and not ln.startswith("#") and not ln.startswith(("CRON_TZ", "SHELL"))]
    assert out.count("CRON_TZ=UTC") == 1 and len(entries) == 7, "the six notebooks and imsnb record"
    assert any(e.startswith("* * * * * ") and " record --history " in e for e in entries)
    assert any(e.startswith("0 */4 * * * ") and " schedule run health_check --outputs " in e for e in entries)
    assert all(f"flock -n {tmp_path}/log/" in e for e in entries)
    assert main(["schedule", "crontab", "--env-file", str(tmp_path / "missing")]) == 2


def test_task_outcome_fails_on_exit_3_retries_only_unreachable(tmp_path):
    failed = {"notebook": "hc", "status": "failed", "error": {"ename": "ValueError", "evalue": "x"}, "findings": []}
    assert task_outcome(failed, archive_error=None, last_try=False)[0] == "fail"
    critical = {"status": "ok", "severity": "CRITICAL", "findings": [{"check": "api.health", "severity": "CRITICAL"}]}
    assert task_outcome(critical, archive_error=None, last_try=False) == ("ok", "worst CRITICAL")
    down = {**critical, "findings": [{"check": "postgres.reachable", "severity": "CRITICAL"}]}
    assert unreachable_targets(down) == ["postgres.reachable"]
    assert task_outcome(down, archive_error=None, last_try=False)[0] == "retry"
    assert task_outcome(down, archive_error=None, last_try=True)[0] == "ok"
    assert task_outcome(critical, archive_error="upload failed", last_try=False)[0] == "retry"
    assert task_outcome(critical, archive_error="upload failed", last_try=True)[0] == "fail"


def test_check_cron_accepts_what_cron_and_airflow_read():
    for good in ("0 */4 * * *", "30 3 * * *", "15 6 * * mon-fri", "0 0 1 jan,jul *", "*/5  * * * *"):
        assert schedule.check_cron(good) == " ".join(good.split())
    with pytest.raises(BadParameter, match="has 1 field"):
        schedule.check_cron("@hourly")


def test_a_run_reads_environments_from_the_file_its_schedule_came_from(tmp_path, monkeypatch):
    other = write_config(tmp_path, '[schedules.hc]\nnotebook = "health_check"\ncron = "0 * * * *"\n')
    monkeypatch.setenv("IMSNB_CONFIG", str(tmp_path / "main.toml"))
    s = schedule.load_schedules(other)["hc"]
    with schedule.config_of(s):
        assert os.environ["IMSNB_CONFIG"] == str(other.resolve())
    assert os.environ["IMSNB_CONFIG"] == str(tmp_path / "main.toml")
    with schedule.config_of(schedule.default_schedules()["triage"]):  # the default timetable changes nothing
        assert os.environ["IMSNB_CONFIG"] == str(tmp_path / "main.toml")
