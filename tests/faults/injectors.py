"""Fault injectors and a timed run, shared by the fault-injection tests."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from imsnb.runs.execute import RunResult, run_notebook


class HangingServer:
    """A TCP server that accepts connections and never reads or answers: an API that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.held.append(conn)  # held open, never read, never answered
            except OSError:
                continue

    def __enter__(self) -> HangingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed_run(notebook: str, outputs: Path, incident: str, **parameters) -> tuple[RunResult, float]:
    started = time.monotonic()
    result = run_notebook(notebook, {"window": "30m", **parameters}, incident_id=incident, outputs=outputs)
    return result, time.monotonic() - started
