"""How much server time do the diagnostics take from a database under load? (issue 7, guarantee 3)

Starts a `healthy` sandbox, gives the diagnostics their own least-privilege role (`imsnb_monitor`, pg_monitor only)
and runs, in one process:
  idle      `db_performance` N times with no other load
  alone     pgbench (the app role, -c 4) for T seconds, nothing else
  together  pgbench for T seconds while `db_performance` runs back to back

Server time is read from pg_stat_statements (total_exec_time), reset before each phase. pg_stat_statements keeps
no application_name, so the diagnostics are told apart by their role; pg_stat_activity confirms they connect as
application_name imsnb/db_performance. Prints ratios (the machine is shared: compare ratios, not seconds).
Usage: .venv/bin/python bench/pg_under_load.py [N] [T]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from psycopg import sql

from imsnb.runs.execute import run_notebook
from imsnb.sandbox import Sandbox
from imsnb.sandbox.postgres import APP_DATABASE, APP_ROLE, find_bindir

MONITOR = "imsnb_monitor"
SERVER_TIME = """
SELECT
    coalesce(sum(s.total_exec_time) FILTER (WHERE r.rolname = %(monitor)s), 0) AS diagnostics_ms,
    coalesce(sum(s.calls) FILTER (WHERE r.rolname = %(monitor)s), 0) AS diagnostics_calls,
    coalesce(sum(s.total_exec_time) FILTER (WHERE r.rolname = %(app)s), 0) AS load_ms,
    coalesce(sum(s.calls) FILTER (WHERE r.rolname = %(app)s), 0) AS load_calls
FROM pg_stat_statements AS s
JOIN pg_roles AS r ON r.oid = s.userid
"""
SEEN_AS = "SELECT DISTINCT application_name FROM pg_stat_activity WHERE usename = %(monitor)s"


def pgbench() -> str:
    found = shutil.which("pgbench") or str(find_bindir() / "pgbench")
    if not Path(found).exists():
        raise SystemExit("pgbench not found: apt-get install -y postgresql-contrib (or postgresql-client)")
    return found


def server_time(box: Sandbox) -> dict[str, float]:
    with box.postgres.admin(APP_DATABASE) as admin:
        row = admin.execute(SERVER_TIME, {"monitor": MONITOR, "app": APP_ROLE}).fetchone()
    return dict(zip(("diagnostics_ms", "diagnostics_calls", "load_ms", "load_calls"), map(float, row), strict=True))


def reset(box: Sandbox) -> None:
    with box.postgres.admin(APP_DATABASE) as admin:
        admin.execute("SELECT pg_stat_statements_reset()")


def load(box: Sandbox, seconds: int, env: dict[str, str]) -> subprocess.Popen:
    port = str(box.postgres.port)
    args = ["-h", "127.0.0.1", "-p", port, "-U", APP_ROLE, "-c", "4", "-j", "2", "-T", str(seconds), APP_DATABASE]
    return subprocess.Popen([pgbench(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def tps(output: str) -> float:
    match = re.search(r"tps = ([\d.]+)", output)
    return float(match[1]) if match else float("nan")


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    outputs = Path(tempfile.mkdtemp(prefix="imsnb-bench-"))
    with Sandbox("healthy") as box:
        password = "bench-" + os.urandom(8).hex()
        with box.postgres.admin() as admin:
            admin.execute("SET pg_stat_statements.track_utility = off")
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(
                    sql.Identifier(MONITOR), sql.Literal(password)
                )
            )
        bench_env = os.environ | box.env()
        subprocess.run(
            [
                pgbench(),
                "-i",
                "-q",
                "-s",
                "5",
                "-h",
                "127.0.0.1",
                "-p",
                str(box.postgres.port),
                "-U",
                APP_ROLE,
                APP_DATABASE,
            ],
            env=bench_env,
            check=True,
            capture_output=True,
        )
        os.environ.update(
            box.env() | {"DB_USER": MONITOR, "PGUSER": MONITOR, "DB_PASSWORD": password, "PGPASSWORD": password}
        )
        seen: set[str] = set()

        def diagnose() -> float:
            started = time.perf_counter()
            result = run_notebook("db_performance", {"window": "30m"}, incident_id="BENCH", outputs=outputs)
            assert result.summary["status"] == "ok", result.summary.get("error")
            return time.perf_counter() - started

        reset(box)
        idle_wall = [diagnose() for _ in range(runs)]
        idle = server_time(box)

        reset(box)
        alone = load(box, seconds, bench_env)
        alone_tps = tps(alone.communicate()[0])
        alone_time = server_time(box)

        reset(box)
        together = load(box, seconds, bench_env)
        loaded_wall: list[float] = []

        def watch() -> None:
            with box.postgres.admin(APP_DATABASE) as admin:
                while together.poll() is None:
                    seen.update(r[0] for r in admin.execute(SEEN_AS, {"monitor": MONITOR}).fetchall())
                    time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        while together.poll() is None:
            loaded_wall.append(diagnose())
        together_tps = tps(together.communicate()[0])
        watcher.join()
        loaded = server_time(box)
    shutil.rmtree(outputs, ignore_errors=True)

    idle_ms = idle["diagnostics_ms"] / runs
    loaded_ms = loaded["diagnostics_ms"] / max(1, len(loaded_wall))
    print(f"db_performance as {MONITOR}, seen in pg_stat_activity as: {', '.join(sorted(seen - {''})) or '?'}")
    print(
        f"idle      {runs} runs: server time {idle_ms:.1f} ms a run ({idle['diagnostics_calls'] / runs:.0f} "
        f"statements), wall {sum(idle_wall) / runs:.2f} s a run"
    )
    print(f"alone     pgbench {seconds} s: {alone_tps:.0f} tps, server time {alone_time['load_ms']:.0f} ms")
    print(
        f"together  pgbench {seconds} s with {len(loaded_wall)} diagnostic runs: {together_tps:.0f} tps, "
        f"load server time {loaded['load_ms']:.0f} ms, diagnostics {loaded['diagnostics_ms']:.1f} ms "
        f"({loaded_ms:.1f} ms a run), wall {sum(loaded_wall) / max(1, len(loaded_wall)):.2f} s a run"
    )
    print(
        f"diagnostics' server time / load's server time, together: "
        f"{loaded['diagnostics_ms'] / max(loaded['load_ms'], 1e-9):.4f}"
    )
    print(f"diagnostics' server time a run, loaded / idle: {loaded_ms / max(idle_ms, 1e-9):.2f}x")
    print(f"pgbench tps with diagnostics / alone: {together_tps / alone_tps:.3f}")


if __name__ == "__main__":
    main()
