"""Apache Airflow with the CeleryExecutor, as a team runs it, for tests/test_airflow_celery.py: the metadata database
in a private PostgreSQL (the sandbox's PostgresServer), the machine's RabbitMQ as the broker (started here when a
clean machine has it installed but not running), and Airflow's own processes from .venv-airflow: api-server (the
REST API and the execution API the workers' tasks report to), scheduler, dag-processor and one `airflow celery
worker` per queue, each with its own environment (its own IMSNB_OUTPUTS).

Every process is started here and stopped here, by its own pid (its process group). The REST API is used with
Airflow's simple auth manager, every user an admin (a token from GET /auth/token), on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imsnb.sandbox.postgres import free_port

BROKER_HOST, BROKER_PORT = "127.0.0.1", 5672
FINISHED = ("success", "failed")
API_TIMEOUT_S = 120  # one REST call; the api-server has one worker, and the cores are shared


def broker_url() -> str:
    """The machine's RabbitMQ (guest/guest on 127.0.0.1:5672, the default vhost), started when it is installed but
    not running (`rabbitmq-server -detached`, as the machine starts it); an error naming what to do otherwise."""
    if not _answers(BROKER_HOST, BROKER_PORT):
        server = shutil.which("rabbitmq-server")
        if server is None:
            raise RuntimeError(
                "RabbitMQ is not installed: run scripts/system-deps --test (apt-get install rabbitmq-server)"
            )
        subprocess.run([server, "-detached"], check=False, timeout=60, capture_output=True)
        if not _wait(lambda: _answers(BROKER_HOST, BROKER_PORT), 120):
            raise RuntimeError(f"RabbitMQ did not answer on {BROKER_HOST}:{BROKER_PORT} within 120 s")
    return f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}//"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _wait(condition, within_s: float, every_s: float = 0.5) -> bool:
    """Poll `condition` until it holds or `within_s` passes: a bound, not a measurement."""
    end = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(every_s)
    return True


@dataclass
class Worker:
    name: str
    queue: str
    env: dict[str, str]  # what this worker's environment adds (IMSNB_OUTPUTS ...)
    log: Path | None = None


@dataclass
class Cluster:
    """Airflow's processes over one metadata database and one broker. `env` is every process's environment
    (targets, IMSNB_CONFIG, IMSNB_STATE_URL ...); each worker adds its own."""

    airflow_bin: Path
    home: Path
    dags_folder: Path
    metadata_url: str  # postgresql://user:password@host:port/db
    env: dict[str, str]
    workers: list[Worker]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    port: int = 0
    token: str = ""
    secrets: dict[str, str] = field(default_factory=dict)

    def base_env(self) -> dict[str, str]:
        sql = self.metadata_url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.port = self.port or free_port()
        if not self.secrets:  # one of each for every process: a task's token is checked by the api-server
            self.secrets = {
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            }
        return {
            **self.env,
            "PATH": f"{self.airflow_bin}:{os.environ['PATH']}",
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql,
            # psycopg 3 (imsnb's own driver) for the async engine too, rather than asyncpg
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": sql.replace("+psycopg://", "+psycopg_async://", 1),
            "AIRFLOW__CELERY__BROKER_URL": broker_url(),
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{sql}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
            # a task's calls to the api-server wait a minute rather than 5 s: on two busy cores a call can take
            # 30 s, and a retried "task started" is refused (409/400) once the first one got through
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            **self.secrets,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        }

    def airflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.airflow_bin / "airflow"), *args], env=self.base_env(), cwd=self.home, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip

    def _start(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.home / f"{name}.log", "w")  # noqa: SIM115 - kept open for the process's life
        process = subprocess.Popen(
            [str(self.airflow_bin / "airflow"), *args], env={**self.base_env(), **(extra or {})}, cwd=self.home,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def start(self) -> Cluster:
        self.home.mkdir(parents=True, exist_ok=True)
        migrated = self.airflow("db", "migrate")
        if migrated.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed: {(migrated.stdout + migrated.stderr)[-3000:]}")
        self._start("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"])
        self._start("scheduler", ["scheduler"])
        self._start("dag-processor", ["dag-processor"])
        for worker in self.workers:
            worker.log = self.home / f"worker-{worker.name}.log"
            self._start(
                f"worker-{worker.name}",
                ["celery", "worker", "--queues", worker.queue, "--concurrency", "1", "--skip-serve-logs",
                 "--celery-hostname", f"{worker.name}@%h"],
                {**worker.env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
            )  # fmt: skip
        if not _wait(self._api_answers, 180):
            raise RuntimeError(f"the api-server did not answer within 180 s: {self.log('api-server')[-3000:]}")
        return self

    def _api_answers(self) -> bool:
        self._check_alive()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/auth/token", timeout=5) as answer:
                self.token = json.loads(answer.read())["access_token"]
            return True
        except (OSError, ValueError, KeyError):
            return False

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {name} exited ({process.returncode}): {self.log(name)[-3000:]}")

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=API_TIMEOUT_S) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from None

    def poll(self, path: str) -> Any:
        """A GET for a polling loop: None when the api-server did not answer in time (busy cores), to ask again."""
        try:
            return self.api("GET", path)
        except (TimeoutError, urllib.error.URLError):
            return None

    def wait_for_dags(self, dag_ids: set[str], within_s: float = 180) -> None:
        """Until the dag-processor has parsed and serialized every DAG in `dag_ids` (the scheduler can run them)."""

        def parsed() -> bool:
            self._check_alive()
            listed = self.poll("/dags?limit=100")
            return listed is not None and dag_ids <= {d["dag_id"] for d in listed["dags"]}

        if not _wait(parsed, within_s, every_s=1):
            raise RuntimeError(f"DAGs not parsed within {within_s:.0f} s: {self.log('dag-processor')[-3000:]}")

    def trigger(self, dag_id: str) -> str:
        """A manual run of `dag_id` now; its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None})
        return run["dag_run_id"]

    def state(self, dag_id: str, run_id: str) -> str | None:
        run = self.poll(f"/dags/{dag_id}/dagRuns/{run_id}")
        return None if run is None else run["state"]

    def wait_for_run(self, dag_id: str, run_id: str, within_s: float = 600) -> str:
        """The run's final state (success or failed), waited for at most `within_s`."""
        states = []

        def finished() -> bool:
            self._check_alive()
            states.append(self.state(dag_id, run_id))
            return states[-1] in FINISHED

        if not _wait(finished, within_s, every_s=1):
            raise RuntimeError(f"{dag_id} {run_id} still {states[-1:]} after {within_s:.0f} s")
        return states[-1]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        return self.api("GET", path)["value"]

    def stop(self) -> None:
        """Each process we started, by its process group: SIGTERM, then SIGKILL after 30 s."""
        for process in self.processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)  # the group: celery's pool processes too
            except ProcessLookupError:
                pass
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
