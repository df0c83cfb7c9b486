"""What telling imsnb's own statements apart costs, with ~5,000 distinct statements in pg_stat_statements.

The snapshots read pg_stat_statements without text (STACK.md: a fifth of the cost); knowing which entries are
imsnb's own needs their text once per run (`sampling.own_statements`). Prints the server time of each, from
pg_stat_statements' own counters (imsnb's statements carry its tag, so they are easy to find), and the ratio.

Usage: .venv/bin/python bench/own_statements.py [ROUNDS]     (default 10)
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time

from imsnb import postgres, sampling
from imsnb.sandbox.postgres import APP_DATABASE, PostgresServer

DISTINCT = 5_000
SERVER_TIME = """
SELECT coalesce(sum(total_exec_time), 0)::float8 AS ms
FROM pg_stat_statements
WHERE query LIKE %(pattern)s
"""


def fill(server: PostgresServer, count: int) -> int:
    """`count` statements with distinct parse trees (operator sequences), so distinct queryids."""
    with server.connect("bench-filler", autocommit=True) as conn:
        for ops in itertools.islice(itertools.product("+-*/", repeat=7), count):
            conn.execute("SELECT 1" + "".join(f" {op} 1" for op in ops))
    with server.admin(APP_DATABASE) as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0]


def server_ms(server: PostgresServer, pattern: str) -> float:
    with server.admin(APP_DATABASE) as admin:
        return float(admin.execute(SERVER_TIME, {"pattern": pattern}).fetchone()[0])


def main(rounds: int = 10) -> None:
    server = PostgresServer().start()
    try:
        print(f"pg_stat_statements holds {fill(server, DISTINCT):,} statements")
        env = server.env()
        settings = {"host": env["DB_HOST"], "port": env["DB_PORT"], "user": env["DB_USER"]}
        settings |= {"dbname": env["DB_NAME"], "password": env["DB_PASSWORD"]}
        with postgres.Database("bench", settings=settings) as db:
            walls: dict[str, list[float]] = {"snapshot": [], "own": []}
            for _ in range(rounds):
                started = time.perf_counter()
                sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "bench")
                walls["snapshot"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                own = sampling.own_statements(db)
                walls["own"].append((time.perf_counter() - started) * 1000)
        snapshot_ms = server_ms(server, "/* imsnb */%FROM pg_stat_statements($%") / rounds
        own_ms = server_ms(server, "/* imsnb */%s.query LIKE $%") / rounds
        print(f"own entries found: {len(own)}")
        print(f"server: snapshot without text {snapshot_ms:.1f} ms, own statements (text read) {own_ms:.1f} ms")
        print(f"ratio:  own / snapshot {own_ms / snapshot_ms:.2f}x (once per run; snapshots: twice per run)")
        print(
            f"client: medians snapshot {statistics.median(walls['snapshot']):.1f} ms "
            f"(with its epoch and version reads), own {statistics.median(walls['own']):.1f} ms"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
