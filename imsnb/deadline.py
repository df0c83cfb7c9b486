"""Network calls bounded as a whole: a deadline for the call (connect, TLS handshake, headers and body together)
and a cap on the bytes read.

A socket timeout bounds each read, not the call: a server that sends one byte a second never trips it. Here a
watchdog thread shuts the connection down when the call's deadline passes, which ends any read blocked on it;
the caller then reports "deadline exceeded" instead of waiting for as long as the server likes.

    reply = get("https://api/health", timeout_s=5, max_bytes=64 * 1024)
    reply.status, reply.body, reply.truncated, reply.error   # never raises for network or HTTP errors
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 3
# The watchdog fires this long after the deadline, so a server that is merely silent trips the socket timeout
# first ("timeout after N s") and only one that keeps sending is cut off as "deadline exceeded".
GRACE_S = 0.25
REDIRECTS = (301, 302, 303, 307, 308)


class Watchdog:
    """Shuts `sock`'s connection down `seconds` (+ GRACE_S) from now unless left before: a read blocked on it
    returns at once.

    It acts on a duplicate of the socket's descriptor, so it still works after `sock` is wrapped in TLS (which
    detaches the original object) and never touches the TLS object from another thread.
    """

    def __init__(self, sock: socket.socket, seconds: float):
        self._watch = socket.socket(fileno=os.dup(sock.fileno()))
        self._timer = threading.Timer(max(0.0, seconds) + GRACE_S, self._fire)
        self._timer.daemon = True
        self.fired = threading.Event()

    def _fire(self) -> None:
        self.fired.set()
        try:
            self._watch.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._timer.cancel()
        self._watch.close()


def deadline_message(timeout_s: float, what: str = "answer") -> str:
    return f"deadline exceeded: no complete {what} within {timeout_s:g} s (the server is too slow or trickling)"


@dataclass
class Reply:
    url: str
    status: int | None
    body: bytes
    elapsed_ms: float
    truncated: bool = False  # the body was longer than max_bytes and was cut there
    error: str | None = None  # the request failed (refused, timeout, deadline, TLS)


def get(
    url: str,
    *,
    timeout_s: float,
    max_bytes: int,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """GET `url` within `timeout_s` in all (redirects included) reading at most `max_bytes` of body; never raises
    for network or HTTP errors. Proxies (HTTP(S)_PROXY) are not used: the diagnostics talk to targets directly."""
    started = time.monotonic()
    deadline = started + timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        reply, location = _once("GET", url, None, deadline, timeout_s, max_bytes, context, headers or {}, started)
        if location is None:
            return reply
        url = urljoin(url, location)
    return Reply(url, reply.status, b"", _ms(started), error=f"more than {MAX_REDIRECTS} redirects")


def post(
    url: str,
    body: bytes,
    *,
    timeout_s: float,
    max_bytes: int,
    context: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST `body` to `url` within `timeout_s` in all, reading at most `max_bytes` of the answer (redirects are
    not followed: the reply says where to); never raises for network or HTTP errors."""
    started = time.monotonic()
    reply, _ = _once("POST", url, body, started + timeout_s, timeout_s, max_bytes, context, headers or {}, started)
    return reply


def _once(
    method: str,
    url: str,
    payload: bytes | None,
    deadline: float,
    timeout_s: float,
    max_bytes: int,
    context: ssl.SSLContext | None,
    headers: dict[str, str],
    started: float,
) -> tuple[Reply, str | None]:
    try:
        https, host, port, target = _http_target(url)
    except ValueError as exc:
        return Reply(url, None, b"", _ms(started), error=f"bad URL {url!r}: {exc}"), None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return Reply(url, None, b"", _ms(started), error=deadline_message(timeout_s)), None
    try:
        raw = socket.create_connection((host, port), timeout=remaining)
    except TimeoutError:
        return Reply(url, None, b"", _ms(started), error=f"timeout after {timeout_s:g} s"), None
    except OSError as exc:
        return Reply(url, None, b"", _ms(started), error=_one_line(exc)), None
    conn: http.client.HTTPConnection | None = None
    with Watchdog(raw, deadline - time.monotonic()) as dog:
        try:
            if https:
                context = context or ssl.create_default_context()
                conn = http.client.HTTPSConnection(host, port, timeout=remaining, context=context)
                conn.sock = context.wrap_socket(raw, server_hostname=host)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=remaining)
                conn.sock = raw
            conn.request(
                method, target, body=payload, headers={"User-Agent": "imsnb", "Connection": "close", **headers}
            )
            response = conn.getresponse()
            redirect = method == "GET" and response.status in REDIRECTS
            location = response.getheader("Location") if redirect else None
            body = b"" if location else response.read(max_bytes + 1)
            if dog.fired.is_set():  # the shutdown can look like a clean end of the body
                raise TimeoutError
            reply = Reply(url, response.status, body[:max_bytes], _ms(started), truncated=len(body) > max_bytes)
            return reply, location
        except (OSError, http.client.HTTPException, ValueError) as exc:
            if dog.fired.is_set():
                error = deadline_message(timeout_s)
            elif isinstance(exc, TimeoutError):
                error = f"timeout after {timeout_s:g} s"
            else:
                error = _one_line(exc)
            return Reply(url, None, b"", _ms(started), error=error), None
        finally:
            if conn is not None:
                conn.close()
            raw.close()


def _http_target(url: str) -> tuple[bool, str, int, str]:
    """An http(s) URL's (https?, host, port, path and query); ValueError when it is not one."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)  # .port raises ValueError for a bad one
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme == "https", parts.hostname, port, target


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
