"""A sandbox with a past and a present.

The past: counters aged before the incident (thousands of fast calls of the item lookup that will regress, an old
slow nightly report, months-style Redis hit counts). The present: a live load thread that keeps the incident going
while the sandbox lives (the slow report every second, the item lookup that lost its index, the miss storm and live
evictions), or healthy traffic. Diagnostics that sample counters over `sample_s` see the present; lifetime totals
see mostly the past.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from imsnb.sandbox.postgres import APP_DATABASE, APP_ROLE

if TYPE_CHECKING:
    from imsnb.sandbox import Sandbox

ITEMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id serial PRIMARY KEY,
    sku text NOT NULL,
    name text NOT NULL,
    price numeric(10, 2) NOT NULL
)
"""
ITEMS_SEED = """
INSERT INTO items (sku, name, price)
SELECT 'SKU-' || lpad(i::text, 8, '0'), 'item ' || i, (i %% 997) * 0.25
FROM generate_series(%(first)s::int, %(last)s::int) AS i
"""
ITEMS_INDEX = "CREATE INDEX IF NOT EXISTS items_sku ON items (sku)"
# Last night's migration "replaced" the index and forgot to create the new one: every lookup now reads the table.
DROP_ITEMS_INDEX = "DROP INDEX IF EXISTS items_sku"
ITEM_LOOKUP = "SELECT id, price FROM items WHERE sku = %(sku)s"
# A new screen shipped with the incident: the latest orders of the email a customer signs in with, which no index
# serves (the index advice's case; orders is indexed by id and customer_id only).
ORDERS_BY_EMAIL = "SELECT id, total, created_at FROM orders WHERE email = %(email)s ORDER BY created_at DESC LIMIT 20"
# A decoy for the index advice: every order is 'new', so an index on status would never be used.
ORDERS_BY_STATUS = "SELECT count(*) FROM orders WHERE status = %(status)s"
# A nightly report: slow (~0.5 s) but it ran hours ago and does not run now; never the basis of a WARNING.
NIGHTLY_REPORT = "SELECT pg_sleep(0.5), status, count(*) FROM orders GROUP BY status"

HEALTHY_ITEMS = 20_000
# A sequential scan of 100k rows: ~5-20 ms, 100x the indexed lookup; the table (~6 MB) stays under a quarter of
# the sandbox's 32 MB shared_buffers, so its scans hit the buffer cache (a bigger one would use a ring buffer and
# turn postgres.cache_hit_ratio CRITICAL, a different incident).
DEGRADED_ITEMS = 100_000
PAST_LOOKUPS = 2_000
PAST_HITS = 50_000
TICK_S = 0.5


def sku(i: int) -> str:
    return f"SKU-{i:08d}"


def seed_items(sandbox: Sandbox, rows: int = HEALTHY_ITEMS) -> None:
    """The items table, as the application role owns it, seeded untracked: the sandbox's set-up is not the
    application's workload, and a 20,000-row INSERT kept by pg_stat_statements would be a slow statement in every
    window reaching back to the sandbox's start (its statistics start there too)."""
    with sandbox.postgres.admin(APP_DATABASE) as conn:
        conn.execute("SET pg_stat_statements.track = 'none'")
        conn.execute(f"SET ROLE {APP_ROLE}")
        conn.execute(ITEMS_SCHEMA)
        conn.execute(ITEMS_SEED, {"first": 1, "last": rows})
        conn.execute(ITEMS_INDEX)
        conn.execute("ANALYZE items")


def past_postgres(sandbox: Sandbox, lookups: int = PAST_LOOKUPS) -> None:
    """Thousands of fast, indexed item lookups (the statement's history)."""
    with sandbox.postgres.connect("ims-backend", autocommit=True) as conn, conn.pipeline():
        for i in range(lookups):
            conn.execute(ITEM_LOOKUP, {"sku": sku(1 + i % HEALTHY_ITEMS)})


def past_nightly_report(sandbox: Sandbox) -> None:
    with sandbox.postgres.connect("ims-reports", autocommit=True) as conn:
        conn.execute(NIGHTLY_REPORT)


def past_redis(sandbox: Sandbox, hits: int = PAST_HITS, key: str = "session:0") -> None:
    """Months-style hit counts: many hits and ~1% misses, so the lifetime hit rate reads ~99%."""
    client = sandbox.redis.client()
    client.set(key, "x" * 200, ex=86400)
    pipe = client.pipeline(transaction=False)
    for i in range(hits):
        pipe.get(key)
        if i % 100 == 0:
            pipe.get(f"session:missing:past:{i}")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def regress_items(sandbox: Sandbox, rows: int = DEGRADED_ITEMS) -> None:
    """The migration: the table grew and the lookup's index is gone. The growth is back-story, seeded untracked
    like the table itself (an 80,000-row INSERT takes 0.5-2.5 s as load varies, and would be the window's slowest
    statement instead of the application's); the index dropped is the migration's own statement."""
    with sandbox.postgres.admin(APP_DATABASE) as conn:
        conn.execute("SET pg_stat_statements.track = 'none'")
        conn.execute(f"SET ROLE {APP_ROLE}")
        conn.execute(ITEMS_SEED, {"first": HEALTHY_ITEMS + 1, "last": rows})
    with sandbox.postgres.connect("ims-migrate", autocommit=True) as conn:
        conn.execute(DROP_ITEMS_INDEX)
        conn.execute("ANALYZE items")


def record_past(sandbox: Sandbox) -> None:
    """Seeded history: snapshots of the past's counters in the history store (IMSNB_HISTORY), as `imsnb record`
    would have taken them before the incident, so a run's `window` reaches back to before the present began."""
    # lazy: the sources pull in pandas and psycopg (~3 s); `imsnb sandbox list` and the scenarios' imports skip them
    from imsnb import cache, postgres, sampling
    from imsnb.history import History

    env = sandbox.env()
    settings = {"host": env["DB_HOST"], "port": env["DB_PORT"], "user": env["DB_USER"], "dbname": env["DB_NAME"]}
    taken_by = f"the {sandbox.scenario} sandbox's past"
    try:
        with postgres.Database("imsnb/sandbox", settings={**settings, "password": env["DB_PASSWORD"]}) as db:
            snapshots = [sampling.postgres_snapshot(db, source, taken_by) for source in sampling.PG_SOURCES]
        server = {"host": "127.0.0.1", "port": sandbox.redis.port, "password": sandbox.redis.password}
        with cache.Cache("imsnb/sandbox", settings=server) as redis:
            redis.label = f"127.0.0.1:{sandbox.redis.port}/0"  # as config.redis_label() names it from env()
            snapshots.append(sampling.redis_snapshot(redis, taken_by))
        History().add(*snapshots)
        sandbox.past_recorded_at = time.monotonic()
    except Exception as exc:  # noqa: BLE001 - a sandbox without seeded history still works
        print(f"imsnb sandbox: no seeded history: {exc}")


def record_plans(sandbox: Sandbox) -> None:
    """Seeded plan history: the statements' plans as `imsnb record` would have kept them before the incident (the
    item lookup on its index), so a run can name the plan change and the index that disappeared."""
    # lazy: as in record_past
    from imsnb import postgres, sampling
    from imsnb.history import History

    env = sandbox.env()
    settings = {"host": env["DB_HOST"], "port": env["DB_PORT"], "user": env["DB_USER"], "dbname": env["DB_NAME"]}
    try:
        with postgres.Database("imsnb/sandbox", settings={**settings, "password": env["DB_PASSWORD"]}) as db:
            sampling.record_plans(db, History(), taken_by=f"the {sandbox.scenario} sandbox's past")
    except Exception as exc:  # noqa: BLE001 - a sandbox without plan history still works
        print(f"imsnb sandbox: no seeded plan history: {exc}")


# --- the present ---------------------------------------------------------------------------------------------------


class LiveLoad(threading.Thread):
    """Runs its steps every `tick_s` until the sandbox stops (or `Sandbox.stop_load()`); errors end nothing."""

    def __init__(self, sandbox: Sandbox, steps: list[Callable[[LiveLoad, int], None]], *, tick_s: float = TICK_S):
        super().__init__(name=f"imsnb-live-load-{sandbox.scenario}", daemon=True)
        self.sandbox, self.steps, self.tick_s = sandbox, steps, tick_s
        self.stopping = sandbox.stopping
        self.pg: Any = None
        self.redis: Any = None
        self.random = random.Random(13)

    def postgres(self, application: str = "ims-backend-live"):
        """The load's own connection, opened before the thread starts (so a scenario can count it)."""
        if self.pg is None:
            self.pg = self.sandbox.postgres.connect(application, autocommit=True)
        return self.pg

    def run(self) -> None:
        tick = 0
        while not self.stopping.is_set():
            for step in self.steps:
                if self.stopping.is_set():
                    break
                try:
                    step(self, tick)
                except Exception:  # noqa: BLE001 - a server restarted by a test, a closed connection
                    if self.pg is not None and (self.pg.closed or self.pg.broken):
                        self.pg = None
            tick += 1
            self.stopping.wait(self.tick_s)
        if self.pg is not None:
            self.pg.close()


def start(sandbox: Sandbox, steps: list[Callable[[LiveLoad, int], None]], *, postgres: bool = True) -> LiveLoad:
    """The scenario's present: `steps` every tick, and the API's log lines as they fall due (`app_log`)."""
    load = LiveLoad(sandbox, [*steps, app_log])
    if postgres:
        load.postgres()
    load.redis = sandbox.redis.client()
    sandbox.loads.append(load)
    load.start()
    return load


def app_log(load: LiveLoad, tick: int) -> None:
    """The API's request lines in /ims/application as they fall due (ten a minute: every few ticks), telling the
    scenario's story (`imsnb.sandbox.aws.AppLog`) for as long as the sandbox lives."""
    writer = load.sandbox.aws.app_log
    if writer is not None and tick % 4 == 0:
        writer.write_due()


def healthy_postgres(load: LiveLoad, tick: int) -> None:
    conn = load.postgres()
    conn.execute("SELECT status, total FROM orders WHERE id = %(id)s", {"id": 1 + tick % 500})


def healthy_lookups(load: LiveLoad, tick: int) -> None:
    """The item lookup twice a second, on its index."""
    load.postgres().execute(ITEM_LOOKUP, {"sku": sku(1 + load.random.randrange(HEALTHY_ITEMS))})


def healthy_redis(load: LiveLoad, tick: int) -> None:
    pipe = load.redis.pipeline(transaction=False)
    for i in range(10):
        pipe.get(f"session:{(tick * 10 + i) % 200}")
    pipe.execute()


def slow_lookups(load: LiveLoad, tick: int) -> None:
    """The item lookup about once a second (after the migration: a sequential scan each)."""
    if tick % 2 == 0:
        load.postgres().execute(ITEM_LOOKUP, {"sku": sku(1 + load.random.randrange(DEGRADED_ITEMS))})


def slow_report(load: LiveLoad, tick: int) -> None:
    """The ~300 ms report, about once a second."""
    # lazy: scenarios imports this module at its top (the scenarios are made of these loads)
    from imsnb.sandbox.scenarios import SLOW_QUERY

    if tick % 2 == 0:
        load.postgres().execute(SLOW_QUERY, {"pattern": "%@example.org"})


def miss_storm(load: LiveLoad, tick: int) -> None:
    """Writes that evict (the cache is full) and reads that mostly miss."""
    pipe = load.redis.pipeline(transaction=False)
    for i in range(5):
        pipe.set(f"product:live:{tick}:{i}", "v" * 10_000)
    for _ in range(20):
        pipe.get(f"product:{load.random.randrange(2_000)}")
    pipe.touch("report:daily:blob")  # the big key stays recently used, so LRU keeps it for the SCAN sample
    pipe.execute()


def orders_by_email(load: LiveLoad, tick: int) -> None:
    """The new screen's lookup by email about once a second (no index serves it: a scan and a sort of orders each)."""
    if tick % 2 == 1:
        email = f"customer{load.random.randrange(500)}@example.com"
        load.postgres().execute(ORDERS_BY_EMAIL, {"email": email})


def orders_by_status(load: LiveLoad, tick: int) -> None:
    """A count by status every few seconds: a scan no index would help (every order has the same status)."""
    if tick % 4 == 0:
        load.postgres().execute(ORDERS_BY_STATUS, {"status": "new"})
