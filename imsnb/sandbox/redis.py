"""A private redis-server on a free port: a password (so redaction is tested for real), a small maxmemory."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from imsnb.sandbox.postgres import free_port
from imsnb.shutdown import stop_process


class RedisServer:
    def __init__(
        self,
        *,
        maxmemory: str = "8mb",
        policy: str = "allkeys-lru",
        password: str | None = None,
        options: tuple[str, ...] = (),
    ):
        self.options = options  # more redis-server options, e.g. ("--cluster-enabled", "yes")
        self.maxmemory = maxmemory
        self.policy = policy
        self.password = password or secrets.token_urlsafe(18)
        self.port = 0
        self.dir: Path | None = None
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run `sudo apt-get install -y redis-server`")
        self.dir = Path(tempfile.mkdtemp(prefix="imsnb-redis-"))
        self.port = free_port()
        config = self.dir / "redis.conf"  # the password goes in a 0600 file, not on a command line `ps` shows
        config.write_text(f"requirepass {self.password}\n")
        config.chmod(0o600)
        self.process = subprocess.Popen(
            [
                binary,
                str(config),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory",
                self.maxmemory,
                "--maxmemory-policy",
                self.policy,
                "--dir",
                str(self.dir),
                "--slowlog-log-slower-than",
                "10000",
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return self
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, db=db, socket_timeout=5)

    def env(self) -> dict[str, str]:
        return {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(self.port),
            "REDIS_PASSWORD": self.password,
        }

    def stop(self) -> None:
        stop_process(self.process)  # SIGTERM: nothing to save (--save ''); SHUTDOWN through redis-py took ~3 s
        self.process = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def close(self) -> None:
        """Stop it: a scenario's extra server is kept on `sandbox.held`, which is closed when the sandbox stops."""
        self.stop()
