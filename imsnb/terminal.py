"""Text for a terminal: what the CLI prints comes partly from targets (finding messages carry up to 300 characters
of an API body, error values, key names), so escape sequences and control characters are removed before it is
written. A hostile body could otherwise move the cursor, rewrite earlier lines (`\\r`), retitle the window or hide
text (OSC/CSI sequences), or reorder what is shown (Unicode bidirectional controls)."""

from __future__ import annotations

import re
from typing import Any, TextIO

# ESC-introduced sequences (CSI ... final, OSC ... BEL/ST, DCS/PM/APC/SOS ... ST, two-byte ESC x) and their 8-bit
# C1 forms, then every other C0/C1 control except newline and tab, then the bidirectional overrides and isolates.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # other ESC sequences, and a lone ESC
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """`text` without escape sequences or control characters (newline and tab kept)."""
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


class SafeStream:
    """A text stream that writes `terminal_safe` text to the stream it wraps (the CLI's stdout and stderr)."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(terminal_safe(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, isatty, encoding, buffer ...
        return getattr(self.stream, name)
