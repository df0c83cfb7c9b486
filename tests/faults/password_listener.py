"""A TCP server speaking just enough of PostgreSQL's protocol to learn what password a client sends.

It answers SSL/GSS encryption requests with 'N', asks for a cleartext password (AuthenticationCleartextPassword),
records the PasswordMessage, and refuses the login. A client with no password for it closes the connection
instead; `received` then holds None for that attempt.
"""

from __future__ import annotations

import socket
import struct
import threading

SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104
_REFUSAL = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed (password listener)\0\0"


class PasswordListener:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.received: list[dict[str, str | None]] = []  # one per login attempt: user, database, password
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> PasswordListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    @property
    def passwords(self) -> list[str | None]:
        return [attempt["password"] for attempt in self.received]

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    self._login(conn)
                except (OSError, struct.error):
                    continue

    def _login(self, conn: socket.socket) -> None:
        while True:
            (length,) = struct.unpack("!i", _read(conn, 4))
            body = _read(conn, length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                conn.sendall(b"N")  # no encryption here: the client goes on in plain text
                continue
            break
        fields = body[4:].split(b"\0")
        startup = {fields[i].decode(): fields[i + 1].decode() for i in range(0, len(fields) - 1, 2) if fields[i]}
        attempt: dict[str, str | None] = {"user": startup.get("user"), "database": startup.get("database")}
        attempt["password"] = None
        conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        try:
            kind = _read(conn, 1)
            (length,) = struct.unpack("!i", _read(conn, 4))
            payload = _read(conn, length - 4)
            if kind == b"p":
                attempt["password"] = payload.rstrip(b"\0").decode()
                conn.sendall(b"E" + struct.pack("!i", len(_REFUSAL) + 4) + _REFUSAL)
        except (OSError, struct.error):
            pass  # the client had no password to give and hung up
        self.received.append(attempt)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data
