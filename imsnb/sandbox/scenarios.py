"""Seeded incident scenarios: plain functions that make a running sandbox look like a given bad night.

Each takes the `Sandbox` and leaves its state behind (sessions it holds open are kept on `sandbox.held` and
released by `Sandbox.stop`).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from imsnb.sandbox import load
from imsnb.sandbox.aws import AppLog
from imsnb.sandbox.aws import seed as seed_aws
from imsnb.sandbox.postgres import APP_DATABASE
from imsnb.sandbox.prometheus import SLOW_LATENCY, Traffic
from imsnb.sandbox.redis import RedisServer
from imsnb.shutdown import stop_process

if TYPE_CHECKING:
    from imsnb.sandbox import Sandbox

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id serial PRIMARY KEY,
    customer_id int NOT NULL,
    status text NOT NULL,
    email text NOT NULL,
    total numeric(10, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
SEED = """
INSERT INTO orders (customer_id, status, email, total)
SELECT i %% 500, 'new', 'customer' || (i %% 500) || '@example.com', (i %% 97) * 1.5
FROM generate_series(1, %(rows)s) AS i
"""
# A healthy schema has the index its lookups need (without it, index advice would be right to name one).
ORDERS_INDEX = "CREATE INDEX IF NOT EXISTS orders_customer_id ON orders (customer_id)"
FAST_QUERY = "SELECT status, total FROM orders WHERE id = %(id)s"
CUSTOMER_QUERY = "SELECT count(*) FROM orders WHERE customer_id = %(customer_id)s"
# A report that takes ~300 ms a call: "slow" by the runbook's 100 ms mean, whatever the machine's speed.
SLOW_QUERY = "SELECT pg_sleep(0.3), count(*) FROM orders WHERE email LIKE %(pattern)s"
# The classic: a request updates a row, then the app forgets to commit (idle in transaction, holding the lock).
# The email literal lets tests prove that query text in artifacts is masked.
BLOCKER_UPDATE = "UPDATE orders SET status = 'hold', email = 'jane.doe@example.com' WHERE id = 1"
BLOCKED_UPDATE = "UPDATE orders SET status = 'shipped' WHERE id = 1"
WAITING = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND application_name = 'ims-worker'"
ORDERS_WAIT_S = 1.5  # /api/v1/orders waiting on a slow database (db-degradation, api-degraded)
CONNECTIONS_TARGET = 0.85  # of max_connections, counting the one the diagnostics will open


def _seed(sandbox: Sandbox, rows: int = 20_000) -> None:
    with sandbox.postgres.connect("ims-migrate", autocommit=True) as conn:
        conn.execute(SCHEMA)
        conn.execute(SEED, {"rows": rows})
        conn.execute(ORDERS_INDEX)
        conn.execute("ANALYZE orders")
    with sandbox.postgres.admin(APP_DATABASE) as admin:  # the seed is set-up, not workload: on a loaded machine
        admin.execute("SELECT pg_stat_statements_reset()")  # its INSERT alone can average over 100 ms


def _normal_traffic(sandbox: Sandbox, calls: int = 200) -> None:
    with sandbox.postgres.connect("ims-backend", autocommit=True) as conn:
        for i in range(calls):
            conn.execute(FAST_QUERY, {"id": i + 1})
            conn.execute(CUSTOMER_QUERY, {"customer_id": i % 500})


def _cache_traffic(sandbox: Sandbox, keys: int = 200, reads: int = 1000) -> None:
    """A warm cache: every read but a few hits (hit rate ~99%), memory far under maxmemory."""
    client = sandbox.redis.client()
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"session:{i}", "x" * 200, ex=3600)
    for i in range(reads):
        pipe.get(f"session:{i % keys}")
    for i in range(reads // 100):
        pipe.get(f"session:missing:{i}")
    pipe.execute()


def healthy(sandbox: Sandbox, *, live: bool = True, **aws) -> None:
    """Fast queries only, a handful of connections, no lock waits; a warm cache; a healthy API; a fresh cert.
    A past (thousands of indexed item lookups, months-style cache hits, a snapshot of them in the history store)
    and a present: live, healthy traffic (`live=False`: the caller adds its own past, then starts the present)."""
    _seed(sandbox)
    load.seed_items(sandbox)
    _normal_traffic(sandbox)
    _cache_traffic(sandbox)
    load.past_postgres(sandbox)
    load.past_redis(sandbox)
    seed_aws(sandbox.aws, app_log=APP_LOGS.get(sandbox.scenario), **aws)
    if live:
        load.record_past(sandbox)
        load.start(sandbox, [load.healthy_postgres, load.healthy_lookups, load.healthy_redis])


def db_degradation(sandbox: Sandbox) -> None:
    """The runbook's "Database Performance Degradation": slow statements, a lock pile-up, connections > 80%,
    and RDS CPU over 80% for the last 20 minutes. The cause to name: the item lookup's plan changed when a migration
    dropped its index (its past plan is in the history), and a new screen's query has no index at all.

    The API tells the same story: /api/v1/orders waits ~1.5 s on the database (Prometheus: p95 ~2.3 s) and ~2% of
    its requests end in a database timeout (Prometheus: 2% 5xx; the log lines in APP_LOGS); /health stays healthy,
    since the database answers."""
    healthy(sandbox, cpu_spike=True, live=False)
    sandbox.api.state.slow_paths["/api/v1/orders"] = ORDERS_WAIT_S
    load.past_nightly_report(sandbox)  # the past: a slow report that does not run now
    load.record_plans(sandbox)  # the past's plans: the item lookup on its index
    load.regress_items(sandbox)  # the migration that dropped the item lookup's index
    with sandbox.postgres.connect("ims-reports", autocommit=True) as conn:
        for _ in range(3):
            conn.execute(SLOW_QUERY, {"pattern": "%@example.org"})
    load.record_past(sandbox)
    # the present: the slow report keeps running, and every item lookup now scans the table
    # plus a new screen's query no index serves, and a count by status no index would help (a decoy for the advice)
    steps = [load.healthy_postgres, load.healthy_redis, load.slow_lookups, load.slow_report]
    load.start(sandbox, [*steps, load.orders_by_email, load.orders_by_status])

    blocker = sandbox.postgres.connect("ims-backend")  # not autocommit: the UPDATE opens a transaction
    blocker.execute(BLOCKER_UPDATE)
    sandbox.held.append(blocker)

    blocked = sandbox.postgres.connect("ims-worker", autocommit=True)
    sandbox.held.append(blocked)
    waiter = threading.Thread(target=_wait_quietly, args=(blocked,), name="imsnb-blocked-update", daemon=True)
    waiter.start()
    sandbox.threads.append(waiter)
    _wait_until_waiting(sandbox)

    target = int(sandbox.postgres.max_connections * CONNECTIONS_TARGET)
    with sandbox.postgres.admin() as admin:
        in_use = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        current = in_use.fetchone()[0] - 1  # less this admin session
    for _ in range(max(0, target - current - 1)):  # leave room for the diagnostics' own session
        sandbox.held.append(sandbox.postgres.connect("ims-backend-pool", autocommit=True))


def _wait_quietly(conn) -> None:
    try:
        conn.execute(BLOCKED_UPDATE)
    except Exception:  # noqa: BLE001 - the sandbox is stopping under it
        pass


def _wait_until_waiting(sandbox: Sandbox, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    with sandbox.postgres.admin() as admin:
        while time.monotonic() < deadline:
            row = admin.execute(WAITING).fetchone()
            if row[0]:
                return
            time.sleep(0.05)
    raise RuntimeError("the blocked UPDATE never started waiting on the lock")


def cache_pressure(sandbox: Sandbox) -> None:
    """Memory at maxmemory, keys being evicted, most reads missing (hit rate well under 80%), a big key, a slow
    Lua script in the slow log."""
    _seed(sandbox)
    _normal_traffic(sandbox)
    seed_aws(sandbox.aws)
    load.past_redis(sandbox)  # months of ~99% hits before the storm
    client = sandbox.redis.client()
    value = "v" * 10_000
    pipe = client.pipeline(transaction=False)
    for i in range(2_000):  # ~20 MB into an 8 MB cache: allkeys-lru evicts
        pipe.set(f"product:{i}", value)
        if i % 100 == 99:
            pipe.execute()
    pipe.execute()
    for i in range(2_000):  # reads spread over the whole set: most were evicted (small batches: replies count
        pipe.get(f"product:{i}")  # toward used_memory and would trigger evictions of their own)
        if i % 100 == 99:
            pipe.execute()
    client.eval("local i = 0 while i < 3000000 do i = i + 1 end return i", 0)  # ~tens of ms: the slow log
    client.set("report:daily:blob", "r" * 600_000)  # the big key a SCAN sample should surface
    limit = int(client.config_get("maxmemory")["maxmemory"])
    i = 0
    for _ in range(3):  # top up to the limit; re-check after a pause, as freed buffers lower the figure
        while int(client.info("memory")["used_memory"]) < 0.97 * limit and i < 5_000:
            client.set(f"product:refill:{i}", value)
            i += 1
        time.sleep(0.1)
    load.record_past(sandbox)
    load.start(sandbox, [load.miss_storm], postgres=False)  # the present: live evictions and a miss storm


def api_degraded(sandbox: Sandbox) -> None:
    """/health says the database is unhealthy (status degraded, HTTP 503); /api/v1/orders takes 1.5 s."""
    healthy(sandbox)
    sandbox.api.state.unhealthy = {"database"}
    sandbox.api.state.slow_paths["/api/v1/orders"] = ORDERS_WAIT_S


def cert_expiring(sandbox: Sandbox) -> None:
    """The API's TLS certificate has 10 days left."""
    healthy(sandbox)
    sandbox.api.set_certificate(days=10)


def error_spike(sandbox: Sandbox) -> None:
    """The runbook's "High Error Rate": 8% of requests fail with 5xx for the last 45 minutes (Prometheus and the
    ERROR lines in /ims/application), /health degraded by its database."""
    healthy(sandbox)
    sandbox.api.state.unhealthy = {"database"}


def scaling(sandbox: Sandbox) -> None:
    """A scale-up of ims-backend to 5 tasks that has not come through: 0 running, 5 pending; and the database is
    short of memory (FreeableMemory ~4% of the db.t3.micro's 1 GiB): memory is its bottleneck."""
    healthy(sandbox, scale_up_stuck=True, freeable_memory_ratio=0.04)


def memory_leak(sandbox: Sandbox) -> None:
    """The runbook's "Memory Leak / OOM Killer": ims-backend's memory climbs from ~40% to ~85% over 24 h, and on
    this host a real process named `ims-backend` grows its resident memory by ~4 MiB a second."""
    healthy(sandbox, memory_leak=True)
    sandbox.held.append(LeakingProcess().start())


# A process that leaks: it names itself (/proc/self/comm), then keeps ~4 MiB a second of touched memory until the
# cap (512 MiB, ~2 min), where it lets go of it all (as a restarted service would) and starts again.
LEAK_SCRIPT = """
import sys, time
open("/proc/self/comm", "w").write(sys.argv[1])
step, cap, pause = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
kept = []
while True:
    kept.append(bytearray(b"x" * step))
    if len(kept) * step >= cap:
        kept.clear()
    time.sleep(pause)
"""


class LeakingProcess:
    """A real process whose resident memory grows (the memory-leak scenario's host part, and the tests' leaker).
    `close()` ends it; it is kept on `sandbox.held`, which closes it when the sandbox stops."""

    def __init__(self, name: str = "ims-backend", *, mib_per_s: float = 4.0, cap_mib: int = 512):
        self.name = name
        self.step = 256 * 1024
        self.pause = self.step / (mib_per_s * 2**20)
        self.cap = cap_mib * 2**20
        self.process: subprocess.Popen | None = None

    def start(self) -> LeakingProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LEAK_SCRIPT, self.name, str(self.step), str(self.cap), str(self.pause)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def close(self) -> None:
        stop_process(self.process)
        self.process = None


def stale_backup(sandbox: Sandbox) -> None:
    """The newest RDS snapshot and S3 backup are 3 days old (the nightly backup stopped)."""
    healthy(sandbox, newest_snapshot_age=timedelta(days=3))


def disk_pressure(sandbox: Sandbox) -> None:
    """RDS free storage down to ~12%, and a log group kept forever (no retention policy)."""
    healthy(sandbox, free_storage_ratio=0.12, retention_gap=True)


UPGRADE_KEYS = {0: 300, 1: 200}  # keys per db on the old node
UPGRADE_LATE_WRITES = 20  # db1 keys written on the old node after the snapshot: missing on the new one
UPGRADE_CACHE_DB = 2  # cache entries with a TTL: what volatile-lru evicts (the sessions, without one, never)
UPGRADE_MEMORY = 0.94  # the node's share of maxmemory once full, as CloudWatch says of the cluster (~95%)


def cache_upgrade(sandbox: Sandbox) -> None:
    """The runbook's "Cache Cluster Upgrade": ims-redis (cache.t3.micro) at ~95% memory and evicting for the last
    6 h; the sandbox's Redis is its node (300 keys in db0, 200 in db1, cache entries in db2 filling it), and a
    second real redis-server stands in for the new cluster's node, holding what a snapshot taken a little earlier
    would: db0 complete, db1 without the 20 keys written since, db2 with entries the old node evicted or expired
    since. Its address is IMSNB_SANDBOX_NEW_REDIS (pass it as `-p new_redis`)."""
    _seed(sandbox)
    _normal_traffic(sandbox)
    seed_aws(sandbox.aws, cache_pressure=True)
    new = RedisServer(maxmemory="32mb", password=sandbox.redis.password).start()
    sandbox.held.append(new)
    sandbox.new_redis = new
    sandbox.extra_env["IMSNB_SANDBOX_NEW_REDIS"] = f"127.0.0.1:{new.port}"
    for db, count in UPGRADE_KEYS.items():
        old_pipe = sandbox.redis.client(db).pipeline(transaction=False)
        new_pipe = new.client(db).pipeline(transaction=False)
        for i in range(count):
            key, value = f"session:{db}:{i}", "s" * 100
            old_pipe.set(key, value)
            if db != 1 or i < count - UPGRADE_LATE_WRITES:
                new_pipe.set(key, value)
        old_pipe.execute()
        new_pipe.execute()
    _full_and_evicting(sandbox.redis, new)


def _full_and_evicting(old: RedisServer, new: RedisServer) -> None:
    """The node as CloudWatch tells it: cache entries (with a TTL) written past maxmemory under volatile-lru, so it
    evicted some of them and never a session (no TTL), copied to the new node as the earlier snapshot holds them;
    then the oldest entries expire until it sits at UPGRADE_MEMORY of maxmemory."""
    client, copy = old.client(UPGRADE_CACHE_DB), new.client(UPGRADE_CACHE_DB)
    client.config_set("maxmemory-policy", "volatile-lru")
    value = "c" * 10_000
    written = 0
    while int(client.info("stats")["evicted_keys"]) == 0 and written < 5_000:
        pipes = client.pipeline(transaction=False), copy.pipeline(transaction=False)
        for i in range(written, written + 20):
            for pipe in pipes:
                pipe.set(f"cache:{i}", value, ex=86_400)
        for pipe in pipes:
            pipe.execute()
        written += 20
    limit = int(client.config_get("maxmemory")["maxmemory"])
    expired = 0
    while int(client.info("memory")["used_memory"]) > UPGRADE_MEMORY * limit and expired < written:
        client.delete(*[f"cache:{i}" for i in range(expired, expired + 5)])
        expired += 5


QUIET_TABLES = 2_000  # a multi-tenant schema of small tables; more would push the sandbox's start past ~10 s
TENANT_TABLES = """
DO $$
BEGIN
    CREATE SCHEMA IF NOT EXISTS tenants;
    FOR i IN 1..{count} LOOP
        EXECUTE format('CREATE TABLE tenants.settings_%s (id int PRIMARY KEY, name text NOT NULL, value text)', i);
        EXECUTE format('INSERT INTO tenants.settings_%s VALUES (1, %L, %L), (2, %L, %L)', i, 'plan', 'basic',
            'seats', '5');
        IF i % 200 = 0 THEN
            COMMIT;  -- one transaction per 200 tables: max_locks_per_transaction
        END IF;
    END LOOP;
END
$$
"""


def tenant_tables(sandbox: Sandbox, count: int = QUIET_TABLES) -> None:
    """`count` small tables of two rows each in schema `tenants` (what a multi-tenant schema looks like)."""
    with sandbox.postgres.connect("ims-migrate", autocommit=True) as conn:
        conn.execute(TENANT_TABLES.format(count=int(count)))


def quiet(sandbox: Sandbox) -> None:
    """Quiet hours: a multi-tenant schema of many small tables, nothing wrong and nobody working; the past's
    counters recorded as `imsnb record` would have. Scheduled checks on it must page nobody (tests/test_quiet.py)."""
    healthy(sandbox, live=False)
    tenant_tables(sandbox)
    load.record_past(sandbox)  # no present: no load is started


SCENARIOS: dict[str, Callable[[Sandbox], None]] = {
    "healthy": healthy,
    "db-degradation": db_degradation,
    "cache-pressure": cache_pressure,
    "api-degraded": api_degraded,
    "cert-expiring": cert_expiring,
    "error-spike": error_spike,
    "scaling": scaling,
    "memory-leak": memory_leak,
    "stale-backup": stale_backup,
    "disk-pressure": disk_pressure,
    "cache-upgrade": cache_upgrade,
    "quiet": quiet,
}

# The API's request history in Prometheus, written before the server starts (scenarios not listed: normal traffic,
# 0.02% 5xx, p95 ~225 ms). Spikes cover the last 45 minutes and are still going on.
SPIKE = timedelta(minutes=45)
TRAFFIC: dict[str, Traffic] = {
    # requests wait on the slow, locked database: p95 ~2.3 s, and 2% time out as 5xx
    "db-degradation": Traffic(spike=SPIKE, spike_error_ratio=0.02, spike_latency=SLOW_LATENCY),
    # the runbook's "High Error Rate": 8% of requests fail
    "error-spike": Traffic(spike=SPIKE, spike_error_ratio=0.08),
    # /api/v1/orders takes 1.5 s: the p95 follows; a few requests fail
    "api-degraded": Traffic(spike=SPIKE, spike_error_ratio=0.005, spike_latency=SLOW_LATENCY),
}

# The same requests in the API's log (/ims/application, ten lines a minute; scenarios not listed: every line INFO
# 200 in 20-60 ms), so what triage reads in Prometheus the follow-ups find in the logs: the spike's share of ERROR
# lines and its slow lines, over the same last 45 minutes, continued live while the sandbox lives.
DB_TIMEOUT = "ERROR GET /api/v1/orders 500 database error: canceling statement due to statement timeout (1500 ms)"
DB_POOL = "ERROR GET /api/v1/orders 503 database connection pool exhausted: no connection within 1500 ms"
APP_LOGS: dict[str, AppLog] = {
    "db-degradation": AppLog(SPIKE, 0.02, (DB_TIMEOUT, DB_TIMEOUT, DB_POOL), slow_ms=int(ORDERS_WAIT_S * 1000)),
    "error-spike": AppLog(
        SPIKE,
        0.08,
        (
            "ERROR POST /api/v1/orders 500 database timeout after 30000ms",
            "ERROR POST /api/v1/orders 500 database timeout after 30000ms",
            "ERROR GET /api/v1/inventory 502 upstream connect error",
        ),
    ),
    "api-degraded": AppLog(
        SPIKE, 0.005, ("ERROR GET /api/v1/orders 503 database unavailable",), slow_ms=int(ORDERS_WAIT_S * 1000)
    ),
}
