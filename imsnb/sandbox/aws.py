"""A moto server (in its own process) seeded the way production looks in the runbook.

RDS `ims-postgres-db` with snapshots, 24 h of CloudWatch history at 1-minute resolution, the log group
`/ims/application`, ECS cluster `ims-production` with service `ims-backend`, bucket `ims-backups` with dated
objects, ElastiCache cluster `ims-redis`. boto3 reaches it over HTTP through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import math
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imsnb.sandbox.postgres import free_port
from imsnb.shutdown import stop_process

REGION = "us-east-1"
RDS_INSTANCE = "ims-postgres-db"
RDS_STORAGE_GIB = 100
ECS_CLUSTER = "ims-production"
ECS_SERVICE = "ims-backend"
LOG_GROUP = "/ims/application"
BACKUP_BUCKET = "ims-backups"
CACHE_CLUSTER = "ims-redis"
HISTORY = timedelta(hours=24)
FINE_HISTORY_MINUTES = 3 * 60  # 1-minute datapoints for the last 3 h, 5-minute ones before
RELEASED = timedelta(days=2)  # when ims-backend's running deployment went out (the scenarios' incidents are newer)


class AwsServer:
    def __init__(self) -> None:
        self.port = 0
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self.secret_key = secrets.token_urlsafe(30)
        self.app_log: AppLogWriter | None = None  # /ims/application's lines, continued by the live load
        self._clients: dict[str, Any] = {}

    def launch(self) -> None:
        """Start the server process; `wait()` blocks until it answers (so other servers start meanwhile)."""
        self.dir = Path(tempfile.mkdtemp(prefix="imsnb-aws-"))
        (self.dir / "clock").write_text("0")
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "imsnb.sandbox.motoserver", str(self.port), str(self.dir / "clock")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def wait(self, timeout_s: float = 60) -> AwsServer:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the moto server exited: is the `sandbox` extra (moto[server]) installed?")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the moto server did not answer on port {self.port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "AKIAIMSNBSANDBOX0000",
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "IMSNB_RDS_INSTANCE": RDS_INSTANCE,
            "IMSNB_ECS_CLUSTER": ECS_CLUSTER,
            "IMSNB_ECS_SERVICE": ECS_SERVICE,
            "IMSNB_LOG_GROUP": LOG_GROUP,
            "IMSNB_BACKUP_BUCKET": BACKUP_BUCKET,
            "IMSNB_CACHE_CLUSTER": CACHE_CLUSTER,
        }

    def client(self, service: str) -> Any:
        if service not in self._clients:
            # lazy: boto3 (~2 s) only when the sandbox seeds AWS
            import boto3

            self._clients[service] = boto3.client(
                service,
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id="AKIAIMSNBSANDBOX0000",
                aws_secret_access_key=self.secret_key,
            )
        return self._clients[service]

    def backdate(self, age: timedelta) -> None:
        """Resources moto creates from now on are stamped `age` ago (see motoserver.py)."""
        assert self.dir is not None
        (self.dir / "clock").write_text(str(age.total_seconds()))

    def stop(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
            stop_process(self.process)  # its state is in memory: no need for moto's own slow (~4 s) stop
            self.process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# --- seeding -----------------------------------------------------------------------------------------------------


def seed(
    server: AwsServer,
    *,
    cpu_spike: bool = False,
    newest_snapshot_age: timedelta = timedelta(hours=3),
    app_log: AppLog | None = None,
    scale_up_stuck: bool = False,
    memory_leak: bool = False,
    free_storage_ratio: float = 0.6,
    retention_gap: bool = False,
    freeable_memory_ratio: float = 0.6,
    cache_pressure: bool = False,
) -> None:
    """Production as the runbook describes it; each keyword is one scenario's departure from normal."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    _seed_rds(server, newest_snapshot_age)
    _seed_metrics(server, now, cpu_spike=cpu_spike, memory_leak=memory_leak, free_storage_ratio=free_storage_ratio)
    _seed_rds_memory(server, now, freeable_memory_ratio)
    server.app_log = AppLogWriter(server, app_log or AppLog(), now)
    _seed_logs(server, server.app_log, retention_gap=retention_gap)
    _seed_ecs(server, running=0 if scale_up_stuck else 3, desired=5 if scale_up_stuck else 3)
    _seed_s3(server, newest_snapshot_age)
    server.client("elasticache").create_cache_cluster(
        CacheClusterId=CACHE_CLUSTER, Engine="redis", CacheNodeType="cache.t3.micro", NumCacheNodes=1
    )
    if cache_pressure:
        _seed_cache_pressure(server, now)


def _seed_rds(server: AwsServer, newest_age: timedelta) -> None:
    rds = server.client("rds")
    server.backdate(timedelta(days=30))
    rds.create_db_instance(
        DBInstanceIdentifier=RDS_INSTANCE,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        EngineVersion="15.4",
        AllocatedStorage=RDS_STORAGE_GIB,
        MasterUsername="ims",
        MasterUserPassword=secrets.token_urlsafe(12),
        BackupRetentionPeriod=7,
        MultiAZ=False,
    )
    ages = sorted({newest_age + timedelta(days=d) for d in range(3)}, reverse=True)  # three nightly backups
    for age in ages:
        server.backdate(age)
        stamp = (datetime.now(UTC) - age).strftime("%Y-%m-%d-%H-%M")
        rds.create_db_snapshot(DBInstanceIdentifier=RDS_INSTANCE, DBSnapshotIdentifier=f"ims-nightly-{stamp}")
    server.backdate(timedelta(0))


def _seed_metrics(
    server: AwsServer, now: datetime, *, cpu_spike: bool, memory_leak: bool, free_storage_ratio: float
) -> None:
    minutes = int(HISTORY.total_seconds() // 60)
    rds_dims = [{"Name": "DBInstanceIdentifier", "Value": RDS_INSTANCE}]
    ecs_dims = [{"Name": "ClusterName", "Value": ECS_CLUSTER}, {"Name": "ServiceName", "Value": ECS_SERVICE}]
    cache_dims = [{"Name": "CacheClusterId", "Value": CACHE_CLUSTER}]
    by_namespace: dict[str, list[dict]] = {"AWS/RDS": [], "AWS/ECS": [], "AWS/ElastiCache": []}
    for i in range(minutes):
        # One datapoint a minute for the last FINE_HISTORY, one every five minutes before: what the notebooks
        # chart at 1-minute resolution is recent, and moto answers a 24 h GetMetricData in ~1 s instead of ~4 s
        # (its cost grows with the datapoints stored; under load the 4 s came near the 10 s read timeout).
        if minutes - 1 - i >= FINE_HISTORY_MINUTES and i % 5:
            continue
        at = now - timedelta(minutes=minutes - 1 - i)
        daily = 10 * math.sin(i / minutes * 2 * math.pi)  # a gentle daily cycle
        cpu = 35 + daily + (i % 7)
        if cpu_spike and i >= minutes - 20:  # the last 20 minutes: the degradation
            cpu = 91 + (i % 5)
        memory = 40 + (i % 5) + (45 * i / minutes if memory_leak else 0)
        values = {
            "AWS/RDS": [
                ("CPUUtilization", cpu, "Percent", rds_dims),
                ("DatabaseConnections", 40 + (i % 10), "Count", rds_dims),
                ("FreeStorageSpace", RDS_STORAGE_GIB * 2**30 * (free_storage_ratio - i * 1e-6), "Bytes", rds_dims),
                ("ReplicaLag", 0.5 + (i % 3) * 0.2, "Seconds", rds_dims),
                ("ReadIOPS", 120 + (i % 30), "Count/Second", rds_dims),
                ("WriteIOPS", 60 + (i % 20), "Count/Second", rds_dims),
            ],
            "AWS/ECS": [
                ("CPUUtilization", 30 + daily, "Percent", ecs_dims),
                ("MemoryUtilization", memory, "Percent", ecs_dims),
            ],
            "AWS/ElastiCache": [
                ("CPUUtilization", 8 + (i % 4), "Percent", cache_dims),
                ("DatabaseMemoryUsagePercentage", 45 + (i % 3), "Percent", cache_dims),
                ("CacheHitRate", 95 - (i % 3), "Percent", cache_dims),
                ("Evictions", 0, "Count", cache_dims),
            ],
        }
        for namespace, datums in values.items():
            by_namespace[namespace].extend(
                {"MetricName": name, "Value": float(value), "Unit": unit, "Dimensions": dims, "Timestamp": at}
                for name, value, unit, dims in datums
            )
    cloudwatch = server.client("cloudwatch")
    for namespace, data in by_namespace.items():
        for offset in range(0, len(data), 1000):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[offset : offset + 1000])


def _seed_logs(server: AwsServer, writer: AppLogWriter, *, retention_gap: bool) -> None:
    logs = server.client("logs")
    for group, retention in ((LOG_GROUP, 30), ("/ims/database", 30), ("/ims/nginx", None if retention_gap else 30)):
        logs.create_log_group(logGroupName=group)
        if retention:
            logs.put_retention_policy(logGroupName=group, retentionInDays=retention)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=LOG_STREAM)
    writer.write_due()  # the last two hours; the live load writes the rest as time passes (AppLogWriter.write_due)


LOG_STREAM = "ims-backend/1"
LOG_EVERY = timedelta(seconds=6)  # ten requests a minute
LOG_HISTORY = timedelta(hours=2)


@dataclass(frozen=True)
class AppLog:
    """The API's request lines in /ims/application, ten a minute: the same story Prometheus tells of the requests.

    Outside the incident every line is `INFO ... 200` in 20-60 ms. During it (the last `spike`, still going on, as
    the scenario's Prometheus traffic) `error_ratio` of the lines, evenly spread, are the `errors` in turn, and the
    others take `slow_ms` (when given), so the logs confirm the 5xx rate and the p95 triage reads in Prometheus."""

    spike: timedelta | None = None
    error_ratio: float = 0.0
    errors: tuple[str, ...] = ()
    slow_ms: int | None = None

    def line(self, i: int, in_spike: bool) -> str:
        """The i-th line of the log (i counts from the start of its history, so errors stay evenly spread)."""
        if in_spike and self.errors and int((i + 1) * self.error_ratio) > int(i * self.error_ratio):
            error = self.errors[int(i * self.error_ratio) % len(self.errors)]
            return f"{error} request_id={i:08x}"
        ms = (self.slow_ms if in_spike and self.slow_ms else 20) + i % 40
        return f"INFO GET /api/v1/orders 200 {ms}ms request_id={i:08x}"


class AppLogWriter:
    """Writes an `AppLog`'s lines up to now: at seeding, the last two hours; then, called by the sandbox's live load,
    the lines due since (so a window over a sandbox started hours ago still holds the incident's lines)."""

    def __init__(self, server: AwsServer, log: AppLog, now: datetime):
        self.server, self.log = server, log
        self.origin = now - LOG_HISTORY
        self.spike_start = now - log.spike if log.spike else None
        self.next = 0  # the index of the next line to write

    def write_due(self, until: datetime | None = None) -> int:
        """Put every line due up to `until` (default now); the number written."""
        until = until or datetime.now(UTC)
        events = []
        while (at := self.origin + self.next * LOG_EVERY) <= until:
            in_spike = self.spike_start is not None and at >= self.spike_start
            events.append({"timestamp": int(at.timestamp() * 1000), "message": self.log.line(self.next, in_spike)})
            self.next += 1
        logs = self.server.client("logs")
        for offset in range(0, len(events), 5000):
            logs.put_log_events(
                logGroupName=LOG_GROUP, logStreamName=LOG_STREAM, logEvents=events[offset : offset + 5000]
            )
        return len(events)


def _seed_ecs(server: AwsServer, *, running: int, desired: int) -> None:
    ecs = server.client("ecs")
    ecs.create_cluster(clusterName=ECS_CLUSTER)
    server.backdate(RELEASED)  # the service's deployment is the last release, not a change in any incident's window
    for revision in range(1, 4):  # three releases: a rollback has somewhere to go
        ecs.register_task_definition(
            family=ECS_SERVICE,
            containerDefinitions=[{"name": "backend", "image": f"ims/backend:1.{revision}", "memory": 512}],
        )
    # moto: a new service shows running 0 / pending N; update_service makes running = desired at once.
    ecs.create_service(
        cluster=ECS_CLUSTER, serviceName=ECS_SERVICE, taskDefinition=f"{ECS_SERVICE}:3", desiredCount=desired
    )
    if running == desired:
        ecs.update_service(cluster=ECS_CLUSTER, service=ECS_SERVICE, desiredCount=desired)
    server.backdate(timedelta(0))


def _seed_s3(server: AwsServer, newest_age: timedelta) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket=BACKUP_BUCKET)
    for days in range(6, -1, -1):
        age = newest_age + timedelta(days=days)
        server.backdate(age)
        day = (datetime.now(UTC) - age).strftime("%Y%m%d")
        s3.put_object(Bucket=BACKUP_BUCKET, Key=f"logs/logs-{day}.tar.gz", Body=b"x" * (1024 * (10 + days)))
        s3.put_object(Bucket=BACKUP_BUCKET, Key=f"metrics/metrics-{day}.json", Body=b"{}")
    server.backdate(timedelta(0))


RDS_RAM_GIB = 1  # db.t3.micro


def _seed_rds_memory(server: AwsServer, now: datetime, ratio: float) -> None:
    """FreeableMemory over the history: `ratio` of the class's RAM free, dipping a little every 10 minutes."""
    minutes = int(HISTORY.total_seconds() // 60)
    dims = [{"Name": "DBInstanceIdentifier", "Value": RDS_INSTANCE}]
    data = [
        {
            "MetricName": "FreeableMemory",
            "Value": float(RDS_RAM_GIB * 2**30 * max(0.01, ratio - (i % 10) * 0.002)),
            "Unit": "Bytes",
            "Dimensions": dims,
            "Timestamp": now - timedelta(minutes=minutes - 1 - i),
        }
        for i in range(minutes)
    ]
    cloudwatch = server.client("cloudwatch")
    for offset in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="AWS/RDS", MetricData=data[offset : offset + 1000])


def _seed_cache_pressure(server: AwsServer, now: datetime, hours: int = 6) -> None:
    """The last `hours` of ims-redis: memory at ~93-96% of the node and keys evicted every minute (datapoints
    beside the normal ones: Maximum and Sum see them), the case for a bigger node."""
    dims = [{"Name": "CacheClusterId", "Value": CACHE_CLUSTER}]
    data = []
    for i in range(hours * 60):
        at = now - timedelta(minutes=i)
        data.append({"MetricName": "DatabaseMemoryUsagePercentage", "Value": 93.0 + (i % 4), "Unit": "Percent"})
        data.append({"MetricName": "Evictions", "Value": float(20 + i % 15), "Unit": "Count"})
        data[-2].update(Dimensions=dims, Timestamp=at)
        data[-1].update(Dimensions=dims, Timestamp=at)
    cloudwatch = server.client("cloudwatch")
    for offset in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace="AWS/ElastiCache", MetricData=data[offset : offset + 1000])
