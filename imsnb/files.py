"""Writing files so that a reader never sees half of one: the one atomic-write helper, and the one folder lock.

`write_atomic` writes to a temporary file in the target's folder (same filesystem), fsyncs it, sets its mode and
renames it over the target. A crash leaves either the old file or the new one, never a torn one; a failure removes
the temporary file and re-raises.

Used by the archive's index.html, notifications (summary.json, ticket.json, the notify state) and `imsnb summarize`
(`imsnb.runs.summary.write_summary`). Not by `imsnb.runs.folder` (its partial-folder rename is a different shape).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_atomic(path: Path | str, text: str, *, mode: int = 0o644) -> Path:
    """Write `text` (UTF-8) to `path` atomically: temp file beside it, fsync, chmod `mode`, rename; the path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def locked_folder(folder: Path | str) -> Iterator[None]:
    """An exclusive flock on the folder itself (no lock file left behind), held while the block runs: the incident
    folder's index and ticket, the notification state. Released when the block ends, however it ends."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
