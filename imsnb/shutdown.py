"""One orderly shutdown for the long-running commands (`imsnb sandbox`, `imsnb lab`).

SIGINT, SIGTERM and SIGHUP all mean "stop now": the first one interrupts whatever the main thread is doing
(as a KeyboardInterrupt, so `finally` blocks run), and every later one is ignored, so a second Ctrl-C (Jupyter's
banner invites it) cannot abort the clean-up half-way and leave servers and /tmp/imsnb-* folders behind. Installing
the handlers also undoes the SIGINT that a non-interactive shell's `&` leaves ignored (Python keeps it so).
"""

from __future__ import annotations

import signal
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
        """From here on every stop signal is ignored (call it before any clean-up, whatever started it)."""
        self.begun = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.begun:
            return
        self.begin()
        self.signal = signal.Signals(signum).name
        raise KeyboardInterrupt
