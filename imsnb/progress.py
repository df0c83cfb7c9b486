"""What a notebook is doing, told to the command that runs it while it runs: `imsnb triage` prints each key metric
as it is judged instead of staying silent for the whole sample.

The kernel side is `say(text)`: one line appended to the file the runner named in IMSNB_PROGRESS, nothing when it
named none (JupyterLab, plain papermill). The notebook's own outputs stay as they are: progress is never a cell
output, so the artifact does not fill with it. The runner side is `Follower`: a thread that reads new lines from
that file every POLL_S and hands each, scrubbed of known secrets, to a callback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

PROGRESS_ENV = "IMSNB_PROGRESS"
POLL_S = 0.2
MAX_LINE = 300  # a progress line is a glance, not the evidence: the findings hold the rest


def say(text: str) -> None:
    """Tell the runner what is happening now (one line); a no-op outside a run that asked for progress."""
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    line = " ".join(str(text).splitlines())
    if len(line) > MAX_LINE:
        line = line[: MAX_LINE - 1] + "…"
    try:
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
    except OSError:
        pass  # progress is a courtesy: never the reason a diagnosis fails


class Follower:
    """Reads the lines a kernel `say`s into `path` while it runs, calling `on_line` with each (in this process, from
    a thread of its own); `stop()` reads what is left and joins."""

    def __init__(self, path: Path, on_line: Callable[[str], None], clean: Callable[[str], str] = lambda s: s):
        self.path, self.on_line, self.clean = path, on_line, clean
        self._offset, self._rest = 0, ""
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="imsnb-progress", daemon=True)

    def start(self) -> Follower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._read()

    def _loop(self) -> None:
        while not self._stopped.wait(POLL_S):
            self._read()

    def _read(self) -> None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as src:
                src.seek(self._offset)
                chunk = src.read()
                self._offset = src.tell()
        except OSError:
            return
        *lines, self._rest = (self._rest + chunk).split("\n")
        for line in lines:
            if line.strip():
                try:
                    self.on_line(self.clean(line))
                except Exception:  # noqa: BLE001 - a printing problem must not stop the run
                    pass
