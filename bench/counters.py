"""What sampling counters costs, on the db-degradation sandbox with ~5,000 distinct statements in pg_stat_statements.

Prints:
  server  the diagnostics' own time for two snapshots of pg_stat_statements, pg_stat_database and
          pg_stat_user_tables (server time from pg_stat_statements' own counters for those queries, and the
          client's wall time, which adds the round trips) — aim: under 100 ms per run
  store   the size of one snapshot of each source in the history store (compressed JSON), and the store's file
  wall    `imsnb run db_performance` with sample_s=S against sample_s=0, alternating N times: the wall time a run
          adds beyond S (aim: none — the sample overlaps the other sections)

Usage: .venv/bin/python bench/counters.py [N] [S]     (defaults 2 rounds, S=10)
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imsnb import postgres, sampling
from imsnb.history import History
from imsnb.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DISTINCT = 5_000
OWN_TIME = """
SELECT coalesce(sum(total_exec_time), 0)::float8 AS ms, coalesce(sum(calls), 0)::int AS calls
FROM pg_stat_statements
WHERE query LIKE '%%pg_stat_statements(%%' OR query LIKE '%%FROM pg_stat_database%%'
    OR query LIKE '%%FROM pg_stat_user_tables%%' OR query LIKE '%%pg_postmaster_start_time()%%'
"""


def distinct_statements(sandbox: Sandbox, count: int) -> int:
    """`count` statements with distinct parse trees (operator sequences), so distinct queryids."""
    operators = "+-*/"
    with sandbox.postgres.connect("bench-filler", autocommit=True) as conn:
        for ops in itertools.islice(itertools.product(operators, repeat=7), count):
            conn.execute("SELECT 1" + "".join(f" {op} 1" for op in ops))
    with sandbox.postgres.admin("ims") as admin:
        return admin.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0]


def own_time(sandbox: Sandbox) -> tuple[float, int]:
    with sandbox.postgres.admin("ims") as admin:
        ms, calls = admin.execute(OWN_TIME).fetchone()
    return float(ms), int(calls)


def timed_run(sample_s: float, env: dict, outputs: Path) -> float:
    command = [str(BIN / "imsnb"), "run", "db_performance", "-p", "sample_s", str(sample_s), "--outputs", str(outputs)]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode not in (0, 1):
        raise SystemExit(f"imsnb run failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed


def main(rounds: int = 2, sample_s: float = 10.0) -> None:
    with Sandbox("db-degradation") as sandbox, tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        env = {**os.environ, **sandbox.env(), "MPLBACKEND": "Agg", "IMSNB_HISTORY": str(work_dir / "h.sqlite")}
        entries = distinct_statements(sandbox, DISTINCT)
        print(f"pg_stat_statements holds {entries:,} statements")

        history = History(work_dir / "bench.sqlite")
        settings = {k: env[v] for k, v in (("host", "DB_HOST"), ("port", "DB_PORT"), ("user", "DB_USER"))}
        settings |= {"dbname": env["DB_NAME"], "password": env["DB_PASSWORD"]}
        with postgres.Database("bench", settings=settings) as db:
            db.connection()
            before_ms, _ = own_time(sandbox)
            walls = []
            for _ in range(2):
                started = time.perf_counter()
                snapshots = [sampling.postgres_snapshot(db, source, "bench") for source in sampling.PG_SOURCES]
                walls.append((time.perf_counter() - started) * 1000)
            after_ms, _ = own_time(sandbox)
            history.add(*snapshots)
        print(
            f"server: two snapshots of the three sources: {after_ms - before_ms:.1f} ms of server time "
            f"(client wall {sum(walls):.1f} ms incl. round trips; aim < 100 ms)"
        )
        for snapshot in snapshots:
            size = len(snapshot.to_row()["data"]) / 1024
            print(f"store:  {snapshot.source}: {len(snapshot.data):,} rows, {size:.1f} KiB compressed")
        print(f"store:  file after one round: {history.path.stat().st_size / 1024:.0f} KiB")

        timed_run(0, env, work_dir)  # warm the page cache and the kernel's imports
        times: dict[float, list[float]] = {0: [], sample_s: []}
        for _ in range(rounds):
            for value in times:
                times[value].append(timed_run(value, env, work_dir))
        off, on = statistics.median(times[0]), statistics.median(times[sample_s])
        print(f"wall:   sample_s=0 {off:.2f} s, sample_s={sample_s:g} {on:.2f} s (medians of {rounds})")
        print(f"wall:   added beyond sample_s: {on - off - sample_s:+.2f} s (aim: 0 or less)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2, float(sys.argv[2]) if len(sys.argv) > 2 else 10.0)
