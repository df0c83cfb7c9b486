"""Guarantee 10: what the CLI prints from targets cannot drive the terminal. A real API answers /health with a body
full of escape sequences (clear screen, retitle the window, a hyperlink, colours, a carriage return that overwrites
the line, a right-to-left override); `imsnb run health_check` prints the finding's message with the text kept and
every escape sequence and control character gone."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from imsnb.terminal import terminal_safe

HOSTILE_BODY = (
    "\x1b]0;pwned-title\x07\x1b[2J\x1b[H\x1b[31mdown\x1b[0m \x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\"
    " overwritten\rfaked OK \u202egnp.exe \x9b1mcsi8 \x07bell \x00nul \x7fdel"
)
LEFT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


class HostileApi(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        payload = HOSTILE_BODY.encode()
        self.send_response(503)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


def test_a_hostile_api_body_cannot_drive_the_terminal(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**os.environ, "IMSNB_API_URL": f"http://127.0.0.1:{server.server_port}"}
        result = subprocess.run(
            [sys.executable, "-m", "imsnb.cli", "run", "health_check", "--outputs", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    finally:
        server.shutdown()
        server.server_close()
    shown = [line for line in result.stdout.splitlines() if "api.health" in line]
    assert shown, result.stdout + result.stderr
    assert "down click overwritten" in shown[0] and "faked OK" in shown[0] and "bell nul del" in shown[0]
    for stream in (result.stdout, result.stderr):
        assert "\x1b" not in stream and "\r" not in stream and not LEFT.search(stream), repr(stream[-600:])


def test_terminal_safe_keeps_text_newlines_and_tabs():
    assert terminal_safe("café — ⚠\tok\n") == "café — ⚠\tok\n"
    assert terminal_safe("a\x1b[38;5;196mb\x1b[0m\x1b(Bc\x1bPq#0\x1b\\d\x1b") == "abcd"
