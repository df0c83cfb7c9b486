"""What two snapshots of statements and tables cost at 20,000 tables and ~5,000 statements (issue 22 §3).

Prints the server time (pg_stat_statements' own counters for imsnb's tagged statements) of two snapshots of
pg_stat_statements and pg_stat_user_tables, against the same with the table snapshot read straight from the view
(the old query, which sums every index's counters for every table before LIMIT keeps the top 500): the median of
five measurements of each, alternated. Aim: < 100 ms.

Usage: .venv/bin/python bench/table_snapshot.py [TABLES]     (default 20000)
"""

from __future__ import annotations

import statistics
import sys

from imsnb import postgres, sampling
from imsnb.sampling.postgres import TABLES_SNAPSHOT
from imsnb.sandbox.postgres import APP_DATABASE, PostgresServer
from imsnb.sandbox.scenarios import TENANT_TABLES

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from own_statements import fill  # noqa: E402 - the bench beside this one

VIEW_SNAPSHOT = """
SELECT
    schemaname AS schema,
    relname AS table,
    coalesce(seq_scan, 0)::float8 AS seq_scan,
    coalesce(seq_tup_read, 0)::float8 AS seq_tup_read,
    coalesce(idx_scan, 0)::float8 AS idx_scan,
    coalesce(idx_tup_fetch, 0)::float8 AS idx_tup_fetch,
    n_live_tup::float8 AS live_rows
FROM pg_stat_user_tables
ORDER BY seq_tup_read DESC
LIMIT %(limit)s
"""
ROUNDS = 5
SERVER_TIME = """
SELECT coalesce(sum(total_exec_time), 0)::float8 AS ms
FROM pg_stat_statements
WHERE query LIKE '/* imsnb */%%'
"""


BREAKDOWN = """
SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
FROM pg_stat_statements
WHERE query LIKE '/* imsnb */%%'
ORDER BY total_exec_time DESC
LIMIT 5
"""


def server_ms(server: PostgresServer) -> float:
    with server.admin(APP_DATABASE) as admin:
        return float(admin.execute(SERVER_TIME).fetchone()[0])


def two_rounds(server: PostgresServer, db: postgres.Database) -> float:
    """Server time of two snapshots of statements and tables, from pg_stat_statements' counters."""
    before = server_ms(server)
    for _ in range(2):
        for source in (sampling.PG_STATEMENTS, sampling.PG_TABLES):
            sampling.postgres_snapshot(db, source, "bench")
    return server_ms(server) - before


def main(tables: int = 20_000) -> None:
    server = PostgresServer().start()
    try:
        with server.connect("ims-migrate", autocommit=True) as conn:
            conn.execute(TENANT_TABLES.format(count=int(tables)))
        statements = fill(server, 5_000)
        print(f"{tables:,} tables, pg_stat_statements holds {statements:,} statements")
        env = server.env()
        settings = {"host": env["DB_HOST"], "port": env["DB_PORT"], "user": env["DB_USER"]}
        settings |= {"dbname": env["DB_NAME"], "password": env["DB_PASSWORD"]}
        with postgres.Database("bench", settings=settings) as db:
            two_rounds(server, db)  # warm the catalogue caches
            lean, view = [], []
            for _ in range(ROUNDS):  # alternated, so a burst of load on the shared machine hits both alike
                lean.append(two_rounds(server, db))
                sampling.postgres.TABLES_SNAPSHOT = VIEW_SNAPSHOT
                try:
                    view.append(two_rounds(server, db))
                finally:
                    sampling.postgres.TABLES_SNAPSHOT = TABLES_SNAPSHOT
        mid, mid_view = statistics.median(lean), statistics.median(view)
        print(
            f"server: two snapshots of statements and tables {mid:.1f} ms, median of {ROUNDS} "
            f"({min(lean):.1f}-{max(lean):.1f}; aim < 100 ms)"
        )
        with server.admin(APP_DATABASE) as admin:
            for calls, total, query in admin.execute(BREAKDOWN):
                print(f"  {calls:>3} calls {total:>7} ms  {query}")
        print(f"server: the same, tables read from the view {mid_view:.1f} ms; ratio {mid / mid_view:.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
