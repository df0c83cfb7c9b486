"""The Sandbox: every server of a scenario started, seeded, exported and stopped together (see `imsnb.sandbox`)."""

from __future__ import annotations

import shlex
import socket
import threading
from typing import Any

from imsnb.errors import BadParameter
from imsnb.sandbox.api import ApiServer
from imsnb.sandbox.aws import AwsServer
from imsnb.sandbox.postgres import PostgresServer
from imsnb.sandbox.prometheus import PrometheusServer
from imsnb.sandbox.redis import RedisServer
from imsnb.sandbox.scenarios import SCENARIOS, TRAFFIC


class Sandbox:
    def __init__(self, scenario: str = "healthy", *, max_connections: int = 30):
        if scenario not in SCENARIOS:
            raise BadParameter(f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}")
        self.scenario = scenario
        self.postgres = PostgresServer(max_connections=max_connections)
        self.redis = RedisServer()
        self.api = ApiServer()
        self.aws = AwsServer()
        self.prometheus = PrometheusServer(TRAFFIC.get(scenario))  # history is written before it starts
        self.held: list[Any] = []  # connections a scenario keeps open
        self.threads: list[threading.Thread] = []
        self.extra_env: dict[str, str] = {}  # what a scenario adds (e.g. cache-upgrade's second Redis node)
        self.stopping = threading.Event()  # ends the scenario's live load (imsnb.sandbox.load)
        self.loads: list[threading.Thread] = []
        self.past_recorded_at: float | None = None  # time.monotonic() when the past's snapshots were stored

    def start(self) -> Sandbox:
        try:
            self.aws.launch()  # its own process: starts while the others do
            self.postgres.start()
            self.redis.start()
            self.api.start()
            self.prometheus.start()
            self.aws.wait()
            self.api.state.checks = {"database": self._database_answers, "cache": self._cache_answers}
            SCENARIOS[self.scenario](self)
        except BaseException:
            self.stop()
            raise
        return self

    def _database_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.postgres.port), timeout=1):
                return True
        except OSError:
            return False

    def _cache_answers(self) -> bool:
        try:
            return bool(self.redis.client().ping())
        except Exception:  # noqa: BLE001
            return False

    def env(self) -> dict[str, str]:
        """Every target's variables, as a user would export them."""
        servers = self.postgres.env() | self.redis.env() | self.api.env() | self.aws.env() | self.prometheus.env()
        return servers | self.extra_env

    def exports(self) -> str:
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in self.env().items())

    def stop_load(self) -> None:
        """End the scenario's live load (the incident's present); its past stays in the counters."""
        self.stopping.set()
        for load in self.loads:
            load.join(timeout=5)
        self.loads.clear()

    def release(self) -> None:
        """Close what the scenario holds open (its blocker rolls back, its waiter completes)."""
        self.stop_load()
        for conn in reversed(self.held):
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
        self.held.clear()
        for thread in self.threads:
            thread.join(timeout=5)
        self.threads.clear()

    def stop(self) -> None:
        """Stop every server and remove its files. Each part is stopped whatever happened to the others (an error
        or an interrupt in one does not leave the rest running); the first such error is raised at the end."""
        failure: BaseException | None = None
        for stop in (self.release, self.api.stop, self.prometheus.stop, self.aws.stop, self.redis.stop):
            try:
                stop()
            except BaseException as exc:  # noqa: BLE001 - the next part is stopped all the same
                failure = failure or exc
        try:
            self.postgres.stop()
        finally:
            if failure is not None:
                raise failure

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
