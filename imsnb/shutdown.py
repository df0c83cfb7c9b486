"""One orderly shutdown for the long-running commands (`imsnb sandbox`, `imsnb lab`).

SIGINT, SIGTERM and SIGHUP all mean "stop now": the first one interrupts whatever the main thread is doing
(as a KeyboardInterrupt, so `finally` blocks run), and every later one is ignored, so a second Ctrl-C (Jupyter's
banner invites it) cannot abort the clean-up half-way and leave servers and /tmp/imsnb-* folders behind. Installing
the handlers also undoes the SIGINT that a non-interactive shell's `&` leaves ignored (Python keeps it so).
"""

from __future__ import annotations

import signal
import subprocess
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Shutdown:
    def __init__(self) -> None:
        self.begun = False
        self.signal: str | None = None  # the name of the signal that started it, if one did

    def install(self) -> Shutdown:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def begin(self) -> None:
        """From here on every stop signal is ignored (call it before any clean-up, whatever started it): by the
        kernel, not only by `_handle`, because Python puts back the default action of the signals it handles as it
        exits, and a second Ctrl-C landing then would end a clean stop as killed by SIGINT."""
        self.begun = True
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.begun:
            return
        self.begin()
        self.signal = signal.Signals(signum).name
        raise KeyboardInterrupt


def stop_process(process: subprocess.Popen | None, *, timeout_s: float = 5.0) -> None:
    """SIGTERM a child server, wait up to `timeout_s`, then SIGKILL: one way to stop every process imsnb starts."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
