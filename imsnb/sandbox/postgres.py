"""A private PostgreSQL cluster in a temp dir on a free port, pg_stat_statements preloaded, HypoPG when installed.

As root (CI), initdb and the server run as the `postgres` user (initdb refuses root); otherwise as the caller.
Local socket connections are trusted (for the sandbox's own set-up); TCP needs the app role's password, so the
password really travels through imsnb's configuration and the secret-scrubbing is tested for real.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

APP_ROLE = "ims"
APP_DATABASE = "ims"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_bindir() -> Path:
    """Where initdb/pg_ctl live: IMSNB_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin, else PATH."""
    explicit = os.environ.get("IMSNB_PG_BINDIR")
    candidates = [Path(explicit)] if explicit else []
    candidates += sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "pg_ctl").exists():
            return bindir
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run `sudo apt-get install -y postgresql` "
        "or set IMSNB_PG_BINDIR"
    )


class PostgresServer:
    def __init__(self, *, max_connections: int = 30, password: str | None = None):
        self.max_connections = max_connections
        self.password = password or secrets.token_urlsafe(18)
        self.port = 0
        self.dir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    @property
    def datadir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    def _run(self, *args: str | Path) -> None:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> PostgresServer:
        bindir = find_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="imsnb-pg-"))
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run(
            bindir / "initdb",
            "-D",
            self.datadir,
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self.port = free_port()
        settings = [
            f"-p {self.port}",
            f"-k {self.dir}",
            "-c listen_addresses=127.0.0.1",
            f"-c max_connections={self.max_connections}",
            "-c shared_preload_libraries=pg_stat_statements",
            "-c pg_stat_statements.track=all",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c shared_buffers=32MB",
        ]
        self._run(
            bindir / "pg_ctl",
            "-D",
            self.datadir,
            "-w",
            "-t",
            "60",
            "-l",
            self.dir / "server.log",
            "-o",
            " ".join(settings),
            "start",
        )
        with self.admin() as conn:
            conn.execute("SET pg_stat_statements.track_utility = off")  # keep the password out of the view
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(
                    sql.Identifier(APP_ROLE), sql.Literal(self.password)
                )
            )
            conn.execute(f"CREATE DATABASE {APP_DATABASE} OWNER {APP_ROLE}")
        with self.admin(APP_DATABASE) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            # hypothetical indexes for index advice, when the package (postgresql-<version>-hypopg) is installed
            if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'").fetchone():
                conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
        return self

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        """A superuser connection over the private socket (trust), for set-up only."""
        return psycopg.connect(host=str(self.dir), port=self.port, user="postgres", dbname=dbname, autocommit=True)

    def connect(self, application: str = "ims-backend", **kwargs) -> psycopg.Connection:
        """A connection as the application role over TCP, as production clients connect."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=APP_ROLE,
            password=self.password,
            dbname=APP_DATABASE,
            application_name=application,
            **kwargs,
        )

    def env(self) -> dict[str, str]:
        """Both the runbook's DB_* names and libpq's PG* names, so psql and imsnb agree."""
        values = {"HOST": "127.0.0.1", "PORT": str(self.port), "USER": APP_ROLE, "PASSWORD": self.password}
        env = {f"DB_{k}": v for k, v in values.items()} | {"DB_NAME": APP_DATABASE}
        env |= {f"PG{k}": v for k, v in values.items()} | {"PGDATABASE": APP_DATABASE}
        return env

    def stop(self) -> None:
        if self.dir is None:
            return
        try:
            self._run(find_bindir() / "pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
