"""imsnb.integrations.airflow on the real engine: Apache Airflow in its own venv (.venv-airflow, built and cached
by the Makefile like .venv), `airflow dags test` of the documented DAG file against a sandbox. The health-check DAG's
run folder lands in the archive bucket (moto) with the scenario's findings and its severity is the task's XCom;
a notebook that fails fails its task at once (no retry), although the DAG has retries; an unreachable target is
retried, and its last try reports the finding."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from helpers import ROOT, bucket, checks_at_or_above

from imsnb.sandbox import Sandbox

pytestmark = pytest.mark.servers  # runs Airflow and notebooks on a sandbox

AIRFLOW_VENV = ROOT / ".venv-airflow"
BUCKET = "imsnb-airflow-archive"
LOGICAL_DATE = "2026-11-29T20:00:00+00:00"


@pytest.fixture(scope="module")
def airflow_bin() -> Path:
    """The cached Airflow venv; `make` rebuilds it only when pyproject.toml changed (a no-op otherwise)."""
    subprocess.run(["make", "-s", ".venv-airflow/.installed"], cwd=ROOT, check=True, timeout=1200)
    return AIRFLOW_VENV / "bin"


DAG_SHAPE = """
import json
from imsnb.integrations.airflow import dags
d = dags()["imsnb_health_check"]
t = d.timetable
print(json.dumps({
    "max_active_runs": d.max_active_runs, "catchup": d.catchup, "timetable": type(t).__name__,
    "cron": t.expression, "timezone": str(t.timezone), "tasks": [x.task_id for x in d.tasks],
    "retries": d.tasks[0].retries,
}))
"""


def readme_dag_file() -> str:
    """The DAG file exactly as docs/schedules.md shows it."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "schedules.md").read_text(), re.S)
    [dag_file] = [b for b in blocks if "globals().update(dags())" in b]
    return dag_file


def broken_notebook(folder: Path) -> None:
    """health_check with a cell that raises after the parameters: its run fails (exit 3)."""
    nb = json.loads((ROOT / "notebooks" / "health_check.ipynb").read_text())
    at = next(i for i, c in enumerate(nb["cells"]) if "parameters" in c["metadata"].get("tags", []))
    nb["cells"].insert(at + 1, {"cell_type": "code", "execution_count": None, "id": "broken", "metadata": {},
                                "outputs": [], "source": 'raise RuntimeError("broken on purpose")'})  # fmt: skip
    (folder / "broken.ipynb").write_text(json.dumps(nb))


def test_health_check_dag_runs_on_airflow_and_lands_in_the_archive(airflow_bin, tmp_path):
    home, dags_folder, notebooks = tmp_path / "airflow", tmp_path / "dags", tmp_path / "notebooks"
    for folder in (home, dags_folder, notebooks):
        folder.mkdir()
    (dags_folder / "imsnb_dags.py").write_text(readme_dag_file())
    for name in ("health_check", "triage"):
        (notebooks / f"{name}.ipynb").write_text((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    broken_notebook(notebooks)
    config = tmp_path / "imsnb.toml"
    config.write_text(
        f"""
[schedules.health_check]
cron = "0 */4 * * *"
archive = "s3://{BUCKET}/scheduled"

[schedules.broken]
cron = "30 * * * *"
archive = "s3://{BUCKET}/scheduled"
"""
    )
    # a second DAG file, with its own imsnb.toml and quick retries: Redis on a closed port is an unreachable target
    retry_config = tmp_path / "retry.toml"
    retry_config.write_text(
        f"""
[environments.redis_down]
REDIS_PORT = "1"

[schedules.redis_down]
notebook = "health_check"
cron = "0 * * * *"
environment = "redis_down"
incident = "sched-{{schedule}}-{{date}}"
archive = "s3://{BUCKET}/scheduled"
"""
    )
    (dags_folder / "imsnb_retry_dags.py").write_text(
        "from datetime import timedelta\n\nfrom imsnb.integrations.airflow import dags\n\n"
        f"globals().update(dags(config={str(retry_config)!r}, retries=1, retry_delay=timedelta(seconds=1)))\n"
    )
    with Sandbox("api-degraded") as sandbox:
        targets = sandbox.env()
        env = {
            **os.environ,
            **targets,
            "PATH": f"{airflow_bin}:{os.environ['PATH']}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "IMSNB_CONFIG": str(config),
            "IMSNB_NOTEBOOKS": str(notebooks),
            "IMSNB_OUTPUTS": str(tmp_path / "worker-outputs"),
        }
        env.pop("IMSNB_ARCHIVE", None)
        s3 = bucket(targets, BUCKET)

        def airflow(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [str(airflow_bin / "airflow"), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                timeout=600,
            )  # fmt: skip

        migrated = airflow("db", "migrate")
        assert migrated.returncode == 0, migrated.stderr[-3000:]
        listed = airflow("dags", "list", "--local", "-o", "json")  # as parsed from the DAG file
        assert listed.returncode == 0, listed.stderr[-3000:]
        [dag_list] = [line for line in listed.stdout.splitlines() if line.startswith("[")]
        assert {d["dag_id"] for d in json.loads(dag_list)} == {"imsnb_health_check", "imsnb_broken", "imsnb_redis_down"}
        shape = subprocess.run(
            [str(airflow_bin / "python"), "-c", DAG_SHAPE], env=env, capture_output=True, text=True, timeout=300
        )
        assert json.loads(shape.stdout.splitlines()[-1]) == {
            "max_active_runs": 1,
            "catchup": False,
            "timetable": "CronTriggerTimetable",
            "cron": "0 */4 * * *",
            "timezone": "UTC",
            "tasks": ["run_notebook"],
            "retries": 2,
        }, shape.stderr[-3000:]

        ran = airflow("dags", "test", "imsnb_health_check", LOGICAL_DATE)
        assert ran.returncode == 0, (ran.stdout + ran.stderr)[-5000:]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        summaries = [
            k for k in keys if re.fullmatch(r"scheduled/sched-health_check-\d{8}/[^/]+-health_check/summary.json", k)
        ]
        assert len(summaries) == 1, keys
        run_folder = summaries[0].rsplit("/", 1)[0]
        assert {f"{run_folder}/{n}" for n in ("notebook.ipynb", "report.html", "summary.json")} <= set(keys)
        summary = json.loads(s3.get_object(Bucket=BUCKET, Key=summaries[0])["Body"].read())
        incident = f"sched-health_check-{summary['started_at'][:10].replace('-', '')}"  # the pattern's {date}, UTC
        assert summary["status"] == "ok" and summary["incident_id"] == incident == summaries[0].split("/")[1]
        assert "api.health" in checks_at_or_above(summary, "WARNING"), summary["findings"]
        archived = s3.get_object(Bucket=BUCKET, Key=f"{run_folder}/notebook.ipynb")["Body"].read()
        assert sandbox.postgres.password.encode() not in archived

        down = airflow("dags", "test", "imsnb_redis_down", LOGICAL_DATE)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        down_keys = [k for k in keys if k.startswith("scheduled/sched-redis_down-") and k.endswith("/summary.json")]
        assert len(down_keys) == 2, (down.stdout + down.stderr)[-5000:]  # the first try and its retry
        for key in down_keys:
            tried = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            assert tried["parameters"]["environment"] == "redis_down"
            assert {"cache.reachable"} <= checks_at_or_above(tried, "CRITICAL"), tried["findings"]

        broke = airflow("dags", "test", "imsnb_broken", LOGICAL_DATE)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        [broken_key] = [k for k in keys if k.endswith("-broken/summary.json")]
        broken = json.loads(s3.get_object(Bucket=BUCKET, Key=broken_key)["Body"].read())
        assert broken["status"] == "failed" and broken["error"]["evalue"] == "broken on purpose"

    db = sqlite3.connect(home / "airflow.db")
    [(severity,)] = db.execute(
        "SELECT value FROM xcom WHERE dag_id = 'imsnb_health_check' AND task_id = 'run_notebook' AND key = 'severity'"
    ).fetchall()
    assert json.loads(severity) == summary["severity"]
    states = dict(db.execute("SELECT dag_id, state FROM task_instance").fetchall())
    assert states["imsnb_health_check"] == "success", "findings are results, not task failures"
    # the notebook failed: the task failed on its first try and was not retried (retries are for unreachable targets)
    assert states["imsnb_broken"] == "failed", (broke.stdout + broke.stderr)[-5000:]
    [(try_number, max_tries)] = db.execute(
        "SELECT try_number, max_tries FROM task_instance WHERE dag_id = 'imsnb_broken'"
    ).fetchall()
    assert try_number == 1 and max_tries >= 2
    # the unreachable target was retried once; on the last try the run is reported (success, severity CRITICAL)
    [(state, try_number)] = db.execute(
        "SELECT state, try_number FROM task_instance WHERE dag_id = 'imsnb_redis_down'"
    ).fetchall()
    assert (state, try_number) == ("success", 2)
    [(severity,)] = db.execute(
        "SELECT value FROM xcom WHERE dag_id = 'imsnb_redis_down' AND key = 'severity'"
    ).fetchall()
    assert json.loads(severity) == "CRITICAL"
