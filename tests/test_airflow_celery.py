"""Many workers, one memory, on the real engine: Apache Airflow with the CeleryExecutor (tests/airflow_celery.py),
the machine's RabbitMQ as the broker, the metadata database and the team's store in a private PostgreSQL, and two
Celery workers, each on its own queue with its own IMSNB_OUTPUTS. Only the store (IMSNB_STATE_URL) and the archive
(S3 on moto) are shared.

- `health_check` runs on both workers for the same failure (the API's health endpoint down): PagerDuty (a local
  stand-in over HTTP) gets one page; after the API heals, a healthy run on each worker resolves it once;
- `imsnb record` runs as the `imsnb_record` DAG's task on worker A, then a migration drops an index; the
  `db_performance` run on worker B starts its period from the snapshot worker A recorded (basis "history"), names
  the regressed statement, and names the plan change against the plan worker A kept (the index gone); worker B's
  outputs folder holds its run, worker A's does not;
- every run folder is in the archive bucket, and the scheduler made no run of its own (no start_date: the first
  scheduled run is the next cron time).

4-4.5 minutes on two cores shared with other suites (load average 12-14; five Airflow processes, five notebook runs);
marked `celery` so a quick local run can leave it out with `-m "not celery"`; `make test` and CI run it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow_celery import Cluster, Worker
from helpers import ROOT, bucket, checks_at_or_above, finding
from notify_servers import PagerDuty, Slack
from store_server import new_store, rows, store_name

from imsnb.sandbox import Sandbox
from imsnb.sandbox import load as sandbox_load
from imsnb.sandbox.postgres import APP_ROLE, PostgresServer

pytestmark = [pytest.mark.celery, pytest.mark.servers]

AIRFLOW_VENV = ROOT / ".venv-airflow"
BUCKET = "imsnb-celery-archive"
ROUTING_KEY = "CeleryRoutingKeyPagerDuty0123456"
WEBHOOK_TOKEN = "WhK9s3cretT0kenForSlackCelery77"
NEVER = "0 0 1 1 *"  # cron of every DAG here: the scheduler makes no run of its own during the test
HEALTH = ("health_check_a", "health_check_b")


@pytest.fixture(scope="module")
def airflow_bin() -> Path:
    """The cached Airflow venv (with the Celery provider); `make` rebuilds it only when its inputs changed."""
    subprocess.run(["make", "-s", ".venv-airflow/.installed"], cwd=ROOT, check=True, timeout=1200)
    return AIRFLOW_VENV / "bin"


def imsnb_toml(pd_url: str, start: str | None = None) -> str:
    """The team's imsnb.toml: notifications, the two health checks (one per worker) and db_performance, whose
    `start` is set once the recorder has run (the incident began then)."""
    archive = f"s3://{BUCKET}/scheduled"
    health = "".join(
        f'\n[schedules.{name}]\nnotebook = "health_check"\ncron = "{NEVER}"\narchive = "{archive}"\n' for name in HEALTH
    )
    parameters = f'{{ start = "{start}", sample_s = 2 }}' if start else "{ sample_s = 2 }"
    return f"""
[notify]
min_severity = "WARNING"

[notify.slack]

[notify.pagerduty]
url = "{pd_url}"
{health}
[schedules.db_performance]
cron = "{NEVER}"
archive = "{archive}"
parameters = {parameters}
"""


def dag_file(queue_a: str, queue_b: str) -> str:
    """The DAG file a team would deploy: the record DAG and each schedule pinned to a worker's queue."""
    queues = {"record": queue_a, "health_check_a": queue_a, "health_check_b": queue_b, "db_performance": queue_b}
    arguments = f"record={NEVER!r}, queues={queues!r}, retries=0"  # no retry: a failure shows at once
    return f"from imsnb.integrations.airflow import dags\n\nglobals().update(dags({arguments}))\n"


def run_both(cluster: Cluster, dag_ids: tuple[str, ...]) -> dict[str, str]:
    """Trigger each DAG, the next once the previous one's task is running (so the notebooks run at the same time,
    in run folders of different seconds); {dag_id: run_id} once all have finished successfully."""
    runs = {}
    for dag_id in dag_ids:
        runs[dag_id] = cluster.trigger(dag_id)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            listed = cluster.poll(f"/dags/{dag_id}/dagRuns/{runs[dag_id]}/taskInstances")
            states = [ti["state"] for ti in (listed or {}).get("task_instances", [])]
            if states and states[0] in ("running", "success", "failed"):
                break
            time.sleep(0.5)
        time.sleep(1.5)
    for dag_id, run_id in runs.items():
        state = cluster.wait_for_run(dag_id, run_id)
        assert state == "success", (dag_id, state, cluster.log("worker-a")[-3000:], cluster.log("worker-b")[-3000:])
    return runs


def pushed(cluster: Cluster, dag_id: str, run_id: str, task_id: str = "run_notebook") -> dict:
    return cluster.xcom(dag_id, run_id, task_id)


def test_dags_refuse_a_queue_for_no_schedule_and_a_bad_record_cron(tmp_path):
    """Checked before Airflow is imported: a typo in `queues` or `record` is the DAG file's one-line import error."""
    from imsnb.errors import BadParameter
    from imsnb.integrations.airflow import dags

    config = tmp_path / "imsnb.toml"
    config.write_text(f'[schedules.health_check]\ncron = "{NEVER}"\n')
    with pytest.raises(BadParameter, match=r"^dags\(queues=\.\.\.\): no schedule 'db_perf' \(known: health_check\)$"):
        dags(config=config, queues={"db_perf": "db-workers"})
    with pytest.raises(BadParameter, match=r"known: health_check, record\)$"):
        dags(config=config, record="* * * * *", queues={"recorder": "q"})
    with pytest.raises(BadParameter, match=r"^dags\(record=\.\.\.\): '\* \* \*' has 3 field\(s\)"):
        dags(config=config, record="* * *")
    with pytest.raises(BadParameter, match=r"the queue of 'health_check' must be a Celery queue name"):
        dags(config=config, queues={"health_check": " "})


def test_the_record_task_takes_one_round_into_the_store(degraded, tmp_path, monkeypatch):
    """The record DAG's body without Airflow: one round into the store; no target configured fails the task."""
    from imsnb.integrations.airflow import Fail, record_task

    monkeypatch.setenv("IMSNB_STATE_URL", f"sqlite://{tmp_path}/state.sqlite")
    done = record_task()
    assert done["store"] == str(tmp_path / "state.sqlite")  # the store by name, as imsnb record says it
    assert any(line.endswith("3 snapshots") for line in done["lines"]), done
    for name in [n for n in os.environ if n.startswith(("DB_", "PG", "REDIS_"))]:
        monkeypatch.delenv(name)
    with pytest.raises(Fail, match="no target configured"):
        record_task()


def test_celery_workers_share_one_memory(airflow_bin, tmp_path):
    home, dags_folder = tmp_path / "airflow", tmp_path / "dags"
    outputs = {"a": tmp_path / "worker-a", "b": tmp_path / "worker-b"}
    for folder in (home, dags_folder, *outputs.values()):
        folder.mkdir()
    token = secrets.token_hex(3)  # queues of this run only: another run on the same broker takes none of its tasks
    queue = {"a": f"imsnb-a-{token}", "b": f"imsnb-b-{token}"}
    (dags_folder / "imsnb_dags.py").write_text(dag_file(queue["a"], queue["b"]))
    pagerduty, slack = PagerDuty(ROUTING_KEY), Slack(WEBHOOK_TOKEN)
    config = tmp_path / "imsnb.toml"
    config.write_text(imsnb_toml(pagerduty.events_url))
    server = PostgresServer().start()  # the team's database server: Airflow's metadata and imsnb's store
    cluster = None
    try:
        with server.admin() as conn:
            conn.execute(f'CREATE DATABASE airflow OWNER "{APP_ROLE}"')
        store = new_store(server)
        metadata = store.rsplit("/", 1)[0] + "/airflow"
        with Sandbox("api-degraded") as sandbox:
            targets = sandbox.env()
            env = {
                **os.environ,
                **targets,
                "PYTHONPATH": str(ROOT),  # this checkout's imsnb, in every Airflow process and kernel
                "IMSNB_CONFIG": str(config),
                "IMSNB_STATE_URL": store,
                "IMSNB_SLACK_WEBHOOK_URL": slack.webhook_url,
                "IMSNB_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            }
            for name in ("IMSNB_ARCHIVE", "IMSNB_OUTPUTS", "IMSNB_HISTORY"):
                env.pop(name, None)
            s3 = bucket(targets, BUCKET)
            workers = [Worker(n, queue[n], {"IMSNB_OUTPUTS": str(outputs[n])}) for n in ("a", "b")]
            cluster = Cluster(airflow_bin, home, dags_folder, metadata, env, workers)
            cluster.start()
            cluster.wait_for_dags({"imsnb_record", "imsnb_db_performance", *(f"imsnb_{n}" for n in HEALTH)})

            # -- one failure, found on both workers at once: one page
            failing = run_both(cluster, tuple(f"imsnb_{n}" for n in HEALTH))
            summaries = []
            for (dag_id, run_id), worker in zip(failing.items(), ("a", "b"), strict=True):
                [ti] = cluster.task_instances(dag_id, run_id)
                assert ti["queue"] == queue[worker]
                folder = Path(pushed(cluster, dag_id, run_id)["run_folder"])
                assert folder.is_relative_to(outputs[worker]), folder
                summaries.append(json.loads((folder / "summary.json").read_text()))
                assert "api.health" in checks_at_or_above(summaries[-1], "ERROR"), summaries[-1]["findings"]
            paging = checks_at_or_above(summaries[0], "ERROR")
            assert checks_at_or_above(summaries[1], "ERROR") == paging
            triggers = pagerduty.events()
            assert [e["event_action"] for e in triggers] == ["trigger"] * len(paging), "one page per check, not two"
            assert len({e["dedup_key"] for e in triggers}) == len(paging)
            assert len([e for e in triggers if "api.health" in e["payload"]["summary"]]) == 1, triggers
            assert rows(server, store, "SELECT count(*) FROM notify_checks WHERE paged")[0][0] == len(paging)

            # -- the API heals: a healthy run on each worker, one resolve per page
            sandbox.api.state.unhealthy = set()
            sandbox.api.state.slow_paths.clear()
            run_both(cluster, tuple(f"imsnb_{n}" for n in HEALTH))
            resolves = pagerduty.events()[len(triggers) :]
            assert sorted((e["event_action"], e["dedup_key"]) for e in resolves) == sorted(
                ("resolve", e["dedup_key"]) for e in triggers
            ), "each page resolved once, by one of the two healthy runs"
            assert rows(server, store, "SELECT count(*) FROM notify_checks WHERE paged")[0][0] == 0
            assert pagerduty.problems == [] and slack.problems == []

            # -- worker A records; a migration drops the lookup's index; db_performance on worker B
            recorded = cluster.trigger("imsnb_record")
            assert cluster.wait_for_run("imsnb_record", recorded) == "success", cluster.log("worker-a")[-5000:]
            [ti] = cluster.task_instances("imsnb_record", recorded)
            assert ti["queue"] == queue["a"]
            said = pushed(cluster, "imsnb_record", recorded, "record")
            assert any(line.endswith("3 snapshots") for line in said["lines"]), said
            assert said["store"] == store_name(store)
            [[taken_at]] = rows(
                server, store, "SELECT max(taken_at) FROM snapshots WHERE source = 'pg_stat_statements'"
            )
            recorded_at = datetime.fromtimestamp(taken_at, UTC)
            sandbox_load.regress_items(sandbox)  # the live lookups now scan 100,000 rows
            start = (recorded_at - timedelta(seconds=1)).isoformat()
            config.write_text(imsnb_toml(pagerduty.events_url, start))
            performance = cluster.trigger("imsnb_db_performance")
            state = cluster.wait_for_run("imsnb_db_performance", performance)
            assert state == "success", cluster.log("worker-b")[-5000:]
            [ti] = cluster.task_instances("imsnb_db_performance", performance)
            assert ti["queue"] == queue["b"]
            result = pushed(cluster, "imsnb_db_performance", performance)
            folder = Path(result["run_folder"])
            assert folder.is_relative_to(outputs["b"]) and not list(outputs["a"].rglob("*-db_performance"))
            summary = json.loads((folder / "summary.json").read_text())
            regression = finding(summary, "postgres.statement_regression")
            assert regression["severity"] in ("WARNING", "ERROR", "CRITICAL"), regression
            assert "FROM items WHERE sku" in regression["message"], regression["message"]
            period = regression["period"]
            assert period["basis"] == "history" and period["from"] == recorded_at.isoformat(timespec="seconds")
            assert f"taken by imsnb record at {recorded_at:%H:%M:%S} UTC" in period["note"], period
            # the plan worker A's recorder kept (on the index) against the plan now: the cause, named on worker B
            plan = finding(summary, "postgres.plan_change")["message"]
            assert "Index Scan using items_sku" in plan and "items_sku no longer exists" in plan, plan

            # -- every run folder is in the archive
            keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}
            archived = sorted(k for k in keys if k.endswith("/summary.json"))
            assert len([k for k in archived if re.search(r"/[^/]+-health_check/summary.json$", k)]) == 4, archived
            assert result["archived_keys"] and set(result["archived_keys"]) <= keys
            body = s3.get_object(
                Bucket=BUCKET, Key=next(k for k in archived if k.endswith("-db_performance/summary.json"))
            )
            assert json.loads(body["Body"].read())["incident_id"] == summary["incident_id"]
            # the scheduler made no run of its own: the first scheduled run is the next cron time, not a past one
            for dag_id in ("imsnb_record", "imsnb_db_performance", *(f"imsnb_{n}" for n in HEALTH)):
                made = cluster.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
                assert {r["run_type"] for r in made} == {"manual"}, made
            for blob in (cluster.log("worker-a"), cluster.log("worker-b")):
                assert server.password not in blob
    finally:
        if cluster is not None:
            cluster.stop()
        server.stop()
        pagerduty.close()
        slack.close()
