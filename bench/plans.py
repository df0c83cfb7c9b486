"""What plans and index advice cost the server, with pgbench running (issue 21: "plans for 20 statements plus advice
for 5 tables within 300 ms of server time").

Starts a private PostgreSQL (HypoPG created when installed), `pgbench -i -s 5` (500,000 accounts) and five shop
tables of 20,000–200,000 rows without the index their lookups need; runs a workload once so pg_stat_statements holds
it, then, with `pgbench -c 4` running against the same database, measures for each of N rounds:

  plans     postgres.statement_plans(db, top 20 statements by total time)
  advice    postgres.index_advice(db, the same 20, max_tables=5): plans again, candidates, HypoPG
  baseline  one snapshot of pg_stat_statements as imsnb samples it (sampling.postgres_snapshot)

Server time is the CPU time of imsnb's own backend process (/proc/<pid>/schedstat: everything the server did for
the session, PREPARE included, which pg_stat_statements does not count). pg_stat_statements holds 5,000 other
statements besides the workload, as on a long-lived server, so the baseline reads what production would. Prints
the mean server time and median wall time per round, and the ratio to the baseline (the machine is shared: compare
ratios).

Usage: .venv/bin/python bench/plans.py [N]     (default 5 rounds)
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psycopg

from imsnb import postgres, sampling
from imsnb.sandbox.postgres import APP_DATABASE, PostgresServer, find_bindir

TICK_S = 1 / os.sysconf("SC_CLK_TCK")
SHOP = """
CREATE TABLE customers AS
SELECT i AS id, 'customer' || i || '@example.com' AS email, (ARRAY['eu', 'us', 'ap'])[1 + i % 3] AS region
FROM generate_series(1, 50000) AS i;
CREATE TABLE orders AS
SELECT i AS id, 1 + (i * 7919) % 50000 AS customer_id, (ARRAY['new', 'paid', 'shipped'])[1 + i % 3] AS status,
    (i % 500)::numeric AS total, now() - i * interval '1 minute' AS created_at
FROM generate_series(1, 200000) AS i;
CREATE TABLE items AS
SELECT i AS id, md5(i::text) AS sku, (i % 100)::numeric AS price
FROM generate_series(1, 50000) AS i;
CREATE TABLE shipments AS
SELECT i AS id, 1 + i % 200000 AS order_id, md5((i * 3)::text) AS tracking, now() - i * interval '2 minutes' AS sent_at
FROM generate_series(1, 100000) AS i;
CREATE TABLE sessions AS
SELECT i AS id, md5((i * 7)::text) AS token, 1 + i % 50000 AS customer_id
FROM generate_series(1, 20000) AS i;
ALTER TABLE customers ADD PRIMARY KEY (id);
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE items ADD PRIMARY KEY (id);
ALTER TABLE shipments ADD PRIMARY KEY (id);
ALTER TABLE sessions ADD PRIMARY KEY (id);
ANALYZE;
CREATE ROLE imsnb_reader LOGIN IN ROLE pg_monitor, pg_read_all_data;
CREATE ROLE shop LOGIN IN ROLE pg_read_all_data;
CREATE ROLE filler LOGIN;
"""
DISTINCT = 5_000  # statements in pg_stat_statements besides the workload, as on a long-lived server
# Twenty shapes an application sends: five need an index (one per shop table), the rest are served or decoys.
WORKLOAD = [
    "SELECT id, total FROM orders WHERE customer_id = {n} ORDER BY created_at DESC LIMIT 20",
    "SELECT id, email FROM customers WHERE email = 'customer{n}@example.com'",
    "SELECT id, price FROM items WHERE sku = md5('{n}')",
    "SELECT id, sent_at FROM shipments WHERE tracking = md5('{n}')",
    "SELECT customer_id FROM sessions WHERE token = md5('{n}')",
    "SELECT o.id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id = {n}",
    "SELECT count(*) FROM orders WHERE status IN ('new', 'paid')",
    "SELECT * FROM orders WHERE id = {n}",
    "SELECT * FROM customers WHERE id IN ({n}, {n} + 1, {n} + 2)",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {n}",
    "SELECT bbalance FROM pgbench_branches WHERE bid = 1",
    "SELECT tbalance FROM pgbench_tellers WHERE tid = {n} % 10 + 1",
    "SELECT a.abalance, b.bbalance FROM pgbench_accounts a JOIN pgbench_branches b ON b.bid = a.bid WHERE a.aid = {n}",
    "SELECT count(*) FROM pgbench_history WHERE tid = {n} % 10 + 1",
    "SELECT region, count(*) FROM customers GROUP BY region",
    "SELECT sum(total) FROM orders WHERE created_at > now() - interval '1 day'",
    "SELECT s.id FROM shipments s WHERE s.order_id = {n}",
    "SELECT max(price) FROM items",
    "SELECT pg_sleep(0.001)",
    "SELECT i.sku FROM items i WHERE i.id BETWEEN {n} AND {n} + 10",
]


def cpu_s(pid: int) -> float:
    """The backend's CPU time: /proc/<pid>/schedstat in ns, else utime + stime in clock ticks."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * TICK_S


def measured(pid: int, work) -> tuple[float, float]:
    cpu, wall = cpu_s(pid), time.perf_counter()
    work()
    return cpu_s(pid) - cpu, time.perf_counter() - wall


def main(rounds: int = 5) -> None:
    server = PostgresServer(max_connections=30).start()
    pgbench_load = None
    try:
        socket = ["-h", str(server.dir), "-p", str(server.port), "-U", "postgres"]
        pgbench = str(find_bindir() / "pgbench")
        subprocess.run([pgbench, "-i", "-s", "5", "-q", *socket, APP_DATABASE], check=True, capture_output=True)
        with server.admin(APP_DATABASE) as admin:
            admin.execute("SET pg_stat_statements.track_utility = off")
            admin.execute(SHOP)
            admin.execute("SELECT pg_stat_statements_reset()")
            hypopg = admin.execute("SELECT extversion FROM pg_extension WHERE extname = 'hypopg'").fetchone()
        app = {"host": str(server.dir), "port": server.port, "dbname": APP_DATABASE, "autocommit": True}
        with psycopg.connect(user="shop", **app) as shop:
            for n in range(1, 6):
                for text in WORKLOAD:
                    shop.execute(text.format(n=n))
        with psycopg.connect(user="filler", **app) as filler:
            for ops in itertools.islice(itertools.product("+-*/", repeat=7), DISTINCT):
                filler.execute("SELECT 1" + "".join(f" {op} 1" for op in ops))
        print(f"HypoPG: {hypopg[0] if hypopg else 'not installed (advice unverified)'}")
        pgbench_load = subprocess.Popen(
            [pgbench, "-c", "4", "-j", "2", "-T", "600", "-n", *socket, APP_DATABASE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(2)
        settings = {"host": str(server.dir), "port": str(server.port), "user": "imsnb_reader", "dbname": APP_DATABASE}
        with postgres.Database("bench", settings=settings) as db:
            pid = int(db.scalar("SELECT pg_backend_pid()"))
            top = postgres.statements(db, limit=DISTINCT + 100)
            top = top[top["user"] == "shop"].head(20).reset_index(drop=True)
            print(f"pg_stat_statements holds {int(db.scalar('SELECT count(*) FROM pg_stat_statements')):,} statements")
            print(f"statements: {len(top)} of the workload, by total time")
            results: dict[str, list[tuple[float, float]]] = {"plans": [], "advice": [], "baseline": []}
            advice = pd.DataFrame()
            for _ in range(rounds):
                results["baseline"].append(
                    measured(pid, lambda: sampling.postgres_snapshot(db, sampling.PG_STATEMENTS, "bench"))
                )
                results["plans"].append(measured(pid, lambda: postgres.statement_plans(db, top, limit=20)))

                def advise() -> None:
                    nonlocal advice
                    advice = postgres.index_advice(db, top, max_tables=5)

                results["advice"].append(measured(pid, advise))
        plans = postgres.statement_plans(postgres.Database("bench", settings=settings), top, limit=20)
        print(
            f"planned: {int((plans['skipped'] == '').sum())} of {len(plans)}; skipped: "
            f"{sorted(set(plans.loc[plans['skipped'] != '', 'skipped']))}"
        )
        print(f"advised ({len(advice)}): " + "; ".join(f"{r.table} {r.columns}" for r in advice.itertuples()))
        base_cpu = sum(c for c, _ in results["baseline"]) / rounds
        for name in ("baseline", "plans", "advice"):
            cpu = sum(c for c, _ in results[name]) / rounds
            wall = statistics.median(w for _, w in results[name])
            ratio = f", {cpu / base_cpu:.1f}x the baseline" if base_cpu and name != "baseline" else ""
            print(
                f"{name:9} server {cpu * 1000:6.1f} ms per round (mean of {rounds}), wall {wall * 1000:6.1f} ms{ratio}"
            )
        total = sum(c for name in ("plans", "advice") for c, _ in results[name]) / rounds
        print(f"plans for 20 statements + advice for 5 tables: {total * 1000:.0f} ms of server time (aim: < 300 ms)")
    finally:
        if pgbench_load is not None:
            pgbench_load.terminate()
            pgbench_load.wait(timeout=10)
        server.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
