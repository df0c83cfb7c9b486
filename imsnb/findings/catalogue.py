"""The catalogue: every check imsnb reports, what it tells the engineer, and the levels it is judged by.

A check is one entry in CHECKS (`Check`: `about`, its documentation, and `limit`, its Threshold from the runbook's
Monitoring section, or None where a rule of its own judges it) and one judge in its source's topic module that words
the finding from `threshold(check)`. CATALOGUE, the threshold catalogue, is derived: the checks that have levels.
SECTIONS names the notebook sections that show evidence without a verdict of their own (a failure there is reported
under that name). tests/test_catalogue.py holds the two halves together: every name a judge, a finding or a notebook
section uses is here, and every entry here is used and says what it is.

The warning levels are the runbook's; error and critical levels are imsnb's, written beside them. Each level can be
overridden per deployment with IMSNB_THRESHOLD_<CHECK>[_ERROR|_CRITICAL] (`threshold`, `check_threshold_overrides`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from imsnb.errors import BadParameter, ImsnbError
from imsnb.findings.finding import Severity

__all__ = [
    "CATALOGUE",
    "CHECKS",
    "SECTIONS",
    "Check",
    "Threshold",
    "check_threshold_overrides",
    "threshold",
]


@dataclass(frozen=True)
class Threshold:
    """Levels at which a value becomes WARNING / ERROR / CRITICAL. `above`: higher is worse; else lower is worse.
    `first`: what passing the first level makes a finding (INFO where that is worth knowing, not a warning)."""

    warning: float
    error: float | None = None
    critical: float | None = None
    above: bool = True
    unit: str = ""
    source: str = ""
    first: Severity = Severity.WARNING

    def severity(self, value: float) -> Severity:
        worse = (lambda v, t: v >= t) if self.above else (lambda v, t: v <= t)
        for level, limit in ((Severity.CRITICAL, self.critical), (Severity.ERROR, self.error)):
            if limit is not None and worse(value, limit):
                return level
        return self.first if worse(value, self.warning) else Severity.OK


@dataclass(frozen=True)
class Check:
    """One kind of finding: `about` says what it tells the engineer (the documentation of the check); `limit` is the
    Threshold it is judged by, None where a rule of its own judges it (said in `about`)."""

    about: str
    limit: Threshold | None = None


T = Threshold
CHECKS: dict[str, Check] = {
    # -- PostgreSQL (component: database) ---------------------------------------------------------------------------
    "postgres.configured": Check("no PostgreSQL target is set (DB_HOST/PG*): its checks are skipped, listed apart"),
    "postgres.reachable": Check("whether imsnb could connect and how long it took; CRITICAL when it could not"),
    "postgres.visibility": Check(
        "whether imsnb's role sees every session and statement (pg_monitor / pg_read_all_stats) and the statistics "
        "are on; WARNING when not: connections, lock waits and statement times are judged all the same, but other "
        "roles' sessions running long or idle in a transaction cannot be seen (those checks say how many are hidden)"
    ),
    "postgres.connections_used": Check(
        "client connections in use, as a share of max_connections",
        T(0.80, 0.90, 0.98, unit="ratio", source="Connections: < 80% of max"),
    ),
    "postgres.slow_queries": Check(
        "statements whose mean time is over the slow-query line, the slowest named with its calls, baseline and the "
        "tables it read; over a sample's period when one was taken, else pg_stat_statements' lifetime means",
        T(100.0, 1000.0, 10000.0, unit="ms", source="slow query: mean > 100 ms"),
    ),
    "postgres.statement_regression": Check(
        "a statement whose mean in the period is a multiple of its reference: the saved baseline's mean, else the "
        "mean of its calls before the period",
        T(5.0, 20.0, None, unit="x", source="imsnb: mean in the window ≥ 5x its baseline mean"),
    ),
    "postgres.plan_change": Check(
        "a statement whose generic plan differs from its stored one (history or baseline): ERROR when it also "
        "regressed (the cause, named), WARNING when an index the old plan used is gone, INFO otherwise"
    ),
    "postgres.long_running": Check(
        "the longest-running active statement", T(60.0, 300.0, 1800.0, unit="s", source="imsnb: active > 60 s")
    ),
    "postgres.idle_in_transaction": Check(
        "sessions idle inside an open transaction (holding locks and snapshots); one that blocks others is a "
        "WARNING at any age",
        T(60.0, 600.0, 3600.0, unit="s", source="imsnb: idle in xact > 60 s"),
    ),
    "postgres.blocked_queries": Check(
        "sessions waiting on a lock, with the session blocking them; any wait is at least a WARNING",
        T(1.0, 30.0, 300.0, unit="s", source="imsnb: any wait on a lock"),
    ),
    "postgres.replication_lag": Check(
        "replay lag of each replica (on a primary) or of this server (on a replica)",
        T(10.0, 60.0, 300.0, unit="s", source="Replication lag: < 10s"),
    ),
    # under PgHero's 99% is worth knowing, not an alert: INFO (ERROR and CRITICAL further down as usual)
    "postgres.cache_hit_ratio": Check(
        "shared-buffer hit ratio of the busiest databases, judged on its 95% interval (too little traffic: INFO)",
        T(0.99, 0.90, 0.80, above=False, unit="ratio", source="PgHero: > 99%", first=Severity.INFO),
    ),
    "postgres.xid_age": Check(
        "how far the oldest unfrozen transaction ID is toward wraparound (2^31)",
        T(0.50, 0.75, 0.90, unit="ratio", source="imsnb: of 2^31 transaction IDs"),
    ),
    "postgres.dead_rows": Check(
        "the table whose dead rows are furthest past the point where autovacuum starts on it (its own settings or "
        "the server's), and why autovacuum has not cleaned it: off for the table, running now, or last run when",
        T(2.0, 5.0, None, unit="x", source="imsnb: dead rows ≥ 2x the table's autovacuum trigger"),
    ),
    "postgres.invalid_indexes": Check(
        "INVALID indexes left by an interrupted CREATE INDEX CONCURRENTLY (paid for on every write, never read)"
    ),
    # advice is INFO; verified advice for statements carrying half the window's statement time or more is a WARNING
    "postgres.index_advice": Check(
        "indexes that would serve the busiest statements, verified with HypoPG's hypothetical indexes",
        T(0.5, unit="ratio", source="imsnb: advised statements ≥ 50% of the window's statement time"),
    ),
    "postgres.row_count": Check("a table's exact row count against the count expected after a restore"),
    "postgres.baseline": Check("a record (OK) of the statement baseline performance_baseline saved, and its period"),
    # -- Redis (component: cache) ----------------------------------------------------------------------------------
    "cache.configured": Check("no Redis target is set (REDIS_URL/REDIS_HOST): its checks are skipped, listed apart"),
    "cache.reachable": Check("whether imsnb could connect to Redis and how long it took; CRITICAL when it could not"),
    "cache.hit_rate": Check(
        "keyspace hits of all lookups in the period, judged on its 95% interval; the lifetime rate and the "
        "baseline's beside it as context",
        T(0.80, 0.60, 0.40, above=False, unit="ratio", source="Hit rate: > 80%"),
    ),
    "cache.memory_used": Check(
        "used_memory as a share of maxmemory, with the eviction policy; no maxmemory at all is a WARNING",
        T(0.90, 0.95, 0.99, unit="ratio", source="Memory: < 90% used"),
    ),
    "cache.evictions": Check(
        "keys evicted in the period (the lifetime count beside it as context)",
        T(1.0, 1000.0, None, unit="keys", source="Evictions: = 0"),
    ),
    "cache.latency": Check(
        "the median round trip of PINGs (p99 beside it)", T(1.0, 10.0, 100.0, unit="ms", source="Latency: < 1ms")
    ),
    "cache.replication_lag": Check(
        "seconds since the most silent replica last acknowledged its master (a healthy one does every second), "
        "with its bytes behind; a replica not online, or a replica's link to its master down, is a WARNING",
        T(10.0, 60.0, 300.0, unit="s", source="imsnb: Redis's min-replicas-max-lag default, 10 s"),
    ),
    "cache.ops_per_s": Check("commands per second in the period and the busiest commands: context, always OK"),
    "cache.blocked_clients": Check("clients blocked on a blocking command (BLPOP ...): any is a WARNING"),
    # Cache Cluster Upgrade: the new node's keys against the old one's
    "cache.key_counts": Check(
        "the share of the old node's keys missing on the new one, per database",
        T(0.01, 0.05, 0.50, unit="ratio", source="imsnb: new node lacks < 1% of the keys"),
    ),
    "cache.baseline": Check("a record (OK) of the Redis rates performance_baseline saved, and their period"),
    # -- the API, Prometheus, TLS, Grafana (component: api, tls) ----------------------------------------------------
    "api.configured": Check("no API URL is set (IMSNB_API_URL/API_HOST): its checks are skipped, listed apart"),
    "api.reachable": Check("whether the API's health endpoint answered, with its status and time"),
    "api.health": Check("what the health endpoint reports (database, cache, ...); ERROR when anything is off"),
    "api.response_time": Check(
        "p95 of the requests imsnb sampled, judged by api.p95_latency's level; failed requests make it ERROR or worse"
    ),
    "api.error_rate": Check(
        "5xx share of requests over the window (Prometheus), judged on each point's 95% interval",
        T(0.001, 0.01, 0.05, unit="ratio", source="Error rate: < 0.1%"),
    ),
    "api.p95_latency": Check(
        "the window's worst p95 response time (Prometheus)",
        T(500.0, 1000.0, 30000.0, unit="ms", source="Response time P95: < 500ms"),
    ),
    "api.request_rate": Check("requests per second over the window: INFO when not steady (the runbook gives no level)"),
    "api.third_party_status": Check("the status pages imsnb.toml names: a provider reporting an incident is a WARNING"),
    "prometheus.configured": Check("no Prometheus is set (PROMETHEUS_URL): its checks are skipped, listed apart"),
    "prometheus.reachable": Check("whether Prometheus answered, with its version"),
    "prometheus.export": Check(
        "the daily export of key metrics (up, request rate, 5xx rate, p95) as metrics-YYYYMMDD.json"
    ),
    "grafana.configured": Check("no Grafana is set (GRAFANA_URL and GRAFANA_TOKEN): no baseline annotation posted"),
    "grafana.annotation": Check("whether the baseline's annotation was posted to Grafana"),
    "tls.reachable": Check("whether a TLS handshake with the endpoint succeeded; CRITICAL when it did not"),
    "tls.days_to_expiry": Check(
        "days until the endpoint's certificate expires; an invalid chain is CRITICAL",
        T(30.0, 7.0, 0.0, above=False, unit="days", source="cert expires in 30 days"),
    ),
    # -- this host (component: host) ---------------------------------------------------------------------------------
    "host.disk_used": Check(
        "each filesystem's used share", T(0.85, 0.90, 0.95, unit="ratio", source="Disk usage > 85%")
    ),
    "host.disk_free": Check(
        "the runbook's free-space level, by which aws.rds.free_storage and aws.rds.bottleneck judge storage",
        T(0.20, 0.10, 0.05, above=False, unit="ratio", source="Disk space: > 20% free"),
    ),
    "host.old_logs": Check("log files older than the given age: cleanup candidates (INFO), with their size"),
    "host.log_rotation": Check("a large log with no rotated copy beside it: logrotate is not running (WARNING)"),
    "host.tcp_reachable": Check("whether a TCP connection to each dependency opened; CRITICAL when it did not"),
    "host.state_store": Check(
        "whether the shared state store (IMSNB_STATE_URL) could be used during the run; WARNING naming it (never its"
        " credentials), the snapshots not written and what was not read"
    ),
    # Memory Leak / OOM Killer, on the host itself
    "host.memory_used": Check(
        "memory in use (total less available)", T(0.90, 0.95, 0.98, unit="ratio", source="Memory: < 90% used")
    ),
    "host.swap_used": Check(
        "swap in use; no swap at all is OK",
        T(0.50, 0.80, 0.95, unit="ratio", source="imsnb: swapping means memory pressure"),
    ),
    "host.oom_kills": Check(
        "OOM kills in the window from the kernel log (and containers' memory.events); unreadable log: WARNING",
        T(1.0, 1.0, 5.0, unit="kills", source="imsnb: any OOM kill in the window"),
    ),
    "host.process_growth": Check(
        "the fastest-growing process over the sample (resident memory), named; imsnb's own kernels left out",
        T(10.0, 50.0, 500.0, unit="MiB/min", source="imsnb: RSS growth over the sample"),
    ),
    # -- AWS (component: aws) ----------------------------------------------------------------------------------------
    "aws.credentials": Check("no AWS region or credentials resolve: the AWS checks are skipped, listed apart"),
    "aws.reachable": Check("whether AWS answered (a timeout or a refused endpoint is CRITICAL)"),
    "aws.baseline": Check("whether every CloudWatch metric had datapoints; WARNING naming those without"),
    "aws.rds.cpu": Check(
        "the RDS instance's peak CPU in the window, and how long it stayed above the level",
        T(80.0, 90.0, 98.0, unit="%", source="CPU: < 80%"),
    ),
    "aws.rds.free_storage": Check("the RDS instance's lowest free storage in the window, judged by host.disk_free"),
    # Vertical Scaling › Identify bottleneck: the RDS instance's memory and IOPS beside CPU and storage
    "aws.rds.memory_used": Check(
        "the RDS instance's memory in use, of its class's RAM",
        T(0.90, 0.95, 0.98, unit="ratio", source="Memory: < 90% used (of class RAM)"),
    ),
    "aws.rds.iops_used": Check(
        "the level p95 IOPS of the volume's baseline is judged by, in aws.rds.bottleneck",
        T(0.80, 0.90, 1.0, unit="ratio", source="imsnb: p95 IOPS of the volume baseline"),
    ),
    "aws.rds.bottleneck": Check("which resource (CPU, memory, storage, IOPS) limits the RDS instance, if any"),
    "aws.rds.snapshot_age": Check("the newest available snapshot's age against the daily backup; none is CRITICAL"),
    "aws.rds.snapshot_failed": Check("a failed RDS snapshot (ERROR)"),
    "aws.rds.snapshot_choice": Check("the snapshot a restore would use; ERROR when there is none"),
    "aws.rds.restore_test": Check(
        "the monthly restore test: restored, row counts as expected, temporary instance deleted"
    ),
    "aws.s3.backup_age": Check("the newest object's age in the backup bucket; no object at all is CRITICAL"),
    "aws.logs.error_rate": Check("matching log lines as a share of all lines in the window, judged by api.error_rate"),
    "aws.logs.retention": Check("log groups kept forever or for another time than the runbook's 30 days"),
    "aws.ecs.running_vs_desired": Check("running tasks against desired: under is WARNING, half ERROR, none CRITICAL"),
    "aws.ecs.memory_trend": Check("a service's memory line climbing toward 100% within the horizon (a leak)"),
    "aws.ecs.rollback_candidate": Check("the task definition revision a rollback would return to"),
    "aws.change_correlation": Check("the change (deployment, config, RDS event) the error rate rose after, if any"),
    # Cache Cluster Upgrade: the current cluster from CloudWatch
    "aws.elasticache.status": Check("each ElastiCache cluster's status: anything but available is a WARNING"),
    "aws.elasticache.memory_used": Check(
        "the cluster's peak memory use in the window", T(0.90, 0.95, 0.99, unit="ratio", source="Memory: < 90% used")
    ),
    "aws.elasticache.evictions": Check(
        "keys the cluster evicted in the window", T(1.0, 1000.0, None, unit="keys", source="Evictions: = 0")
    ),
}

# Notebook sections that show evidence or plan an action without judging it: a failure is reported under the name.
SECTIONS: dict[str, str] = {
    "postgres.database_sizes": "each database's size",
    "postgres.table_scans": "the tables the slow and regressed statements read, with their scans in the period",
    "postgres.mitigation": "the backends a mitigation would cancel or terminate, and the plan to do it",
    "cache.keyspace": "keys per Redis database, with expiring keys and average TTL",
    "cache.big_keys": "the largest keys of a sample",
    "cache.slow_log": "Redis's slow log, newest first",
    "cache.flush_plan": "the plan to flush a Redis database (applied only with approval)",
    "host.largest_directories": "the largest directories under the scanned root",
    "host.log_cleanup": "the plan to archive and delete old logs (applied only with approval)",
    "aws.rds.events": "the RDS instance's events in the window",
    "aws.rds.mitigation": "the plan to resize the RDS instance one size up (applied only with approval)",
    "aws.rds.restore": "the point-in-time restore plan and the restored instance",
    "aws.ecs.deployments": "a service's deployments and task definition revisions",
    "aws.ecs.events": "the services' deployments and recent events",
    "aws.ecs.headroom": "a service's CPU and memory over the window against its limits",
    "aws.ecs.restart": "the plan to restart leaking services (a new deployment, applied only with approval)",
    "aws.ecs.rollback": "the plan to roll a service back to the revision before the change",
    "aws.scaling.plan": "the horizontal and vertical scaling plan sized from what was found",
    "aws.logs.retention_plan": "the plan to set log groups' retention to the runbook's 30 days",
}

# The threshold catalogue: the checks judged against levels (IMSNB_THRESHOLD_* overrides name these), name -> Threshold.
CATALOGUE: dict[str, Threshold] = {name: check.limit for name, check in CHECKS.items() if check.limit is not None}


def threshold(check: str) -> Threshold:
    """The catalogue entry for `check`, with levels overridden by IMSNB_THRESHOLD_<CHECK>[_ERROR|_CRITICAL]."""
    base = CATALOGUE[check]
    env_name = "IMSNB_THRESHOLD_" + check.upper().replace(".", "_")
    levels = {}
    for suffix, attr in (("", "warning"), ("_ERROR", "error"), ("_CRITICAL", "critical")):
        raw = os.environ.get(env_name + suffix)
        if raw:
            try:
                levels[attr] = float(raw)
            except ValueError:
                raise ImsnbError(f"{env_name + suffix}={raw!r} is not a number") from None
    if not levels:
        return base
    return Threshold(**{**base.__dict__, **levels})


def check_threshold_overrides(environ: dict[str, str] | None = None) -> None:
    """Every IMSNB_THRESHOLD_* variable names a check of the catalogue and holds a finite number; BadParameter
    otherwise, so a typo or a unit in the value is refused before a run rather than ignored or half-applied."""
    environ = os.environ if environ is None else environ
    known = {check.upper().replace(".", "_") for check in CATALOGUE}
    for name, raw in sorted(environ.items()):
        if not name.startswith("IMSNB_THRESHOLD_") or not raw:
            continue
        check = name.removeprefix("IMSNB_THRESHOLD_")
        base = next((check.removesuffix(s) for s in ("_ERROR", "_CRITICAL") if check.removesuffix(s) in known), check)
        if base not in known:
            raise BadParameter(
                f"{name} names no check with a threshold: use the check's name in capitals, dots as underscores, "
                "e.g. IMSNB_THRESHOLD_POSTGRES_CONNECTIONS_USED (the checks: imsnb/findings/catalogue.py CATALOGUE)"
            )
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise BadParameter(f"{name}={raw!r} is not a number: give the level as a plain number, e.g. 0.7")
