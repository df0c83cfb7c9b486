"""A private PostgreSQL with an application's shapes, for the plan and index-advice tests (test_plans, test_advice).

pgbench's tables (`pgbench -i`, 100,000 accounts) and a shop's: customers, orders (no index but the primary key:
the lookups by customer scan), items with an index on sku (the already-indexed lookup), a small audit table. The
tables belong to the superuser; the roles imsnb may connect as:

    imsnb_reader     pg_monitor + pg_read_all_data: reads every table, plans SELECTs
    imsnb_statsonly  pg_monitor only: sees statements, may PREPARE, may not plan (permission denied for table)
    imsnb_monitor    pg_monitor + EXECUTE on imsnb.explain_generic (created only by the test that needs it)
"""

from __future__ import annotations

import subprocess
from contextlib import contextmanager

from imsnb import postgres
from imsnb.sandbox.postgres import APP_DATABASE, PostgresServer, find_bindir

ROLES = {
    "imsnb_reader": "IN ROLE pg_monitor, pg_read_all_data",
    "imsnb_statsonly": "IN ROLE pg_monitor",
    "imsnb_monitor": "IN ROLE pg_monitor",
}

SHOP = """
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email text NOT NULL,
    region text NOT NULL
);
INSERT INTO customers (email, region)
SELECT 'customer' || i || '@example.com', (ARRAY['eu', 'us', 'ap'])[1 + i % 3]
FROM generate_series(1, 20000) AS i;
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL,
    status text NOT NULL,
    total numeric NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO orders (customer_id, status, total, created_at)
SELECT 1 + (i * 7919) % 20000, (ARRAY['new', 'paid', 'shipped'])[1 + i % 3], i % 500, now() - i * interval '1 minute'
FROM generate_series(1, 100000) AS i;
CREATE TABLE items (
    id bigserial PRIMARY KEY,
    sku text NOT NULL,
    price numeric NOT NULL
);
INSERT INTO items (sku, price)
SELECT md5(i::text), i % 100
FROM generate_series(1, 50000) AS i;
CREATE INDEX items_sku ON items (sku);
CREATE TABLE audit (id bigserial PRIMARY KEY, note text);
ANALYZE;
"""


def start_planner_server() -> PostgresServer:
    server = PostgresServer(max_connections=20).start()
    try:
        pgbench = find_bindir() / "pgbench"
        subprocess.run(
            [pgbench, "-i", "-s", "1", "-q", "-h", str(server.dir), "-p", str(server.port), "-U", "postgres"]
            + [APP_DATABASE],
            check=True,
            capture_output=True,
            timeout=120,
        )
        with server.admin(APP_DATABASE) as admin:
            admin.execute("SET pg_stat_statements.track_utility = off")
            for role, grants in ROLES.items():
                admin.execute(f"CREATE ROLE {role} LOGIN {grants}")
            admin.execute(SHOP)
    except BaseException:
        server.stop()
        raise
    return server


@contextmanager
def session_as(server: PostgresServer, role: str, dbname: str = APP_DATABASE):
    """imsnb's own read-only, bounded session as `role`, over the private socket (trusted)."""
    settings = {"host": str(server.dir), "port": str(server.port), "user": role, "dbname": dbname}
    with postgres.Database("tests", settings=settings) as db:
        yield db
