"""Guarantee 1 (dead dependencies), the slow kind: a server that answers one byte a second never trips a socket
timeout, which bounds each read, not the call. Every network call has a deadline for the whole call and a cap on
what it reads; AWS paging has a page cap.

The servers here are real local sockets. Each trickling server would need a minute to finish its answer; the
proof that the client gave up at its deadline is that the server saw it leave long before then (it counts the
bytes it managed to send), and that the finding names the deadline.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from imsnb import api, prometheus
from imsnb.aws import MAX_EMPTY_PAGES, Aws
from imsnb.errors import Unreachable
from imsnb.findings import Severity

TOTAL_BYTES = 60  # one a second: a minute to answer in full
DEADLINE_S = 2


class TricklingServer:
    """Accepts connections, reads the request, then sends `prefix` at once and `TOTAL_BYTES` more one a second.

    `sent` counts the trickled bytes per connection until the client went away (a send fails) or all were sent.
    """

    def __init__(self, prefix: bytes = b"", byte: bytes = b"x", *, read_request: bool = True) -> None:
        self.prefix, self.byte, self.read_request = prefix, byte, read_request
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent: list[int] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            thread = threading.Thread(target=self._trickle, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _trickle(self, conn: socket.socket) -> None:
        index = len(self.sent)
        self.sent.append(0)
        with conn:
            try:
                if self.read_request:
                    conn.recv(65536)
                conn.sendall(self.prefix)
                for _ in range(TOTAL_BYTES):
                    if self._stop.wait(1):
                        return
                    conn.sendall(self.byte)
                    self.sent[index] += 1
            except OSError:
                return  # the client left

    def __enter__(self) -> TricklingServer:
        self._acceptor.start()
        return self

    def finished(self) -> list[int]:
        """Wait for every connection's trickle to end (the client left, or all was sent); the counts."""
        for thread in self._threads:
            thread.join(timeout=TOTAL_BYTES + 5)
        return self.sent

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(timeout=2)
        self.sock.close()


def assert_left_early(server: TricklingServer) -> None:
    """The client closed its side while the server was still trickling: it did not wait for the whole answer."""
    counts = server.finished()
    assert counts, "the client never connected"
    assert all(count < TOTAL_BYTES // 2 for count in counts), counts


HEADERS_THEN_BODY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"


@pytest.mark.parametrize(
    "prefix", [b"", b"HTTP/1.1 200 OK\r\n", HEADERS_THEN_BODY], ids=["status-line", "headers", "body"]
)
def test_api_health_returns_at_its_deadline_from_a_trickling_server(prefix):
    with TricklingServer(prefix, b" " if prefix == HEADERS_THEN_BODY else b"X") as server:
        checked = api.health(base=f"http://127.0.0.1:{server.port}", timeout_s=DEADLINE_S)
        assert_left_early(server)
    [reach] = api.health_findings(checked)
    assert reach.check == "api.reachable" and reach.severity == Severity.CRITICAL, reach
    assert f"deadline exceeded: no complete answer within {DEADLINE_S} s" in reach.message, reach.message


def test_prometheus_returns_at_its_deadline_from_a_trickling_server():
    with TricklingServer(HEADERS_THEN_BODY, b" ") as server:
        prom = prometheus.Prometheus(f"http://127.0.0.1:{server.port}", timeout_s=DEADLINE_S)
        finding = prometheus.reachable_finding(prom)
        assert_left_early(server)
        with pytest.raises(Unreachable, match="deadline exceeded"):  # remembered: no second wait
            prom.get("query", {"query": "up"})
        assert len(server.sent) == 1
    assert finding.check == "prometheus.reachable" and finding.severity == Severity.CRITICAL, finding
    assert "deadline exceeded" in finding.message, finding.message


def test_a_tls_handshake_trickled_byte_by_byte_ends_at_the_deadline():
    """A TLS record header announcing 16 KB of handshake, then one byte a second: OpenSSL keeps reading.

    (CPython already turns an SSL socket's timeout into a deadline for the handshake; what the call adds is one
    deadline for both of `certificate`'s handshakes and their connects, which could take twice the timeout.)"""
    record = b"\x16\x03\x03\x40\x00"
    with TricklingServer(record, b"\x00", read_request=False) as server:
        cert = api.certificate(f"127.0.0.1:{server.port}", timeout_s=DEADLINE_S)
        assert_left_early(server)
    finding = api.certificate_finding(cert)
    assert finding.check == "tls.reachable" and finding.severity == Severity.CRITICAL, finding
    assert f"timeout after {DEADLINE_S} s" in finding.message or "deadline exceeded" in finding.message, finding


class _BigBody(BaseHTTPRequestHandler):
    size = 5 * 2**20

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(self.size))
        self.end_headers()
        try:
            self.wfile.write(b"x" * self.size)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def big_body_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BigBody)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_what_is_read_is_capped(big_body_server, monkeypatch):
    reply = api.fetch("/health", base=big_body_server, timeout_s=10)
    assert reply.truncated and len(reply.body.encode()) == api.MAX_BODY_BYTES, len(reply.body)
    checked = api.health(base=big_body_server, timeout_s=10)
    assert any("body larger than 64 KiB" in p for p in checked.problems), checked.problems
    monkeypatch.setattr(prometheus, "MAX_REPLY_BYTES", 2**20)
    prom = prometheus.Prometheus(big_body_server, timeout_s=10)
    finding = prometheus.reachable_finding(prom)
    assert finding.severity == Severity.WARNING and "larger than 1 MB" in finding.message, finding


# --- AWS paging -------------------------------------------------------------------------------------------------


class _EndlessLogs(BaseHTTPRequestHandler):
    """CloudWatch Logs' JSON protocol: FilterLogEvents answers pages of `events` with a nextToken, forever (up to
    a safety stop far beyond the cap, so an uncapped client fails this test instead of hanging it)."""

    mode = "empty"  # empty: no events, new token; same: one event, the same token; full: one event, new token
    requests = 0
    SAFETY_STOP = 300

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        cls = type(self)
        cls.requests += 1
        page: dict = {"events": []}
        if cls.mode != "empty":
            event = {"eventId": str(cls.requests), "timestamp": 0, "message": "ERROR x", "logStreamName": "s"}
            page["events"] = [event]
        if cls.requests < self.SAFETY_STOP:
            page["nextToken"] = "same" if cls.mode == "same" else f"token-{cls.requests}"
        body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def endless_logs(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EndlessLogs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    _EndlessLogs.requests = 0
    yield _EndlessLogs
    server.shutdown()
    server.server_close()


def _paginate(aws: Aws, **kwargs) -> list:
    return aws.paginate("logs", "filter_log_events", "events", logGroupName="/ims/application", **kwargs)


def test_paging_stops_when_a_token_keeps_coming_with_empty_pages(endless_logs, capsys):
    endless_logs.mode = "empty"
    aws = Aws("test")
    assert _paginate(aws) == []
    assert endless_logs.requests == MAX_EMPTY_PAGES
    note = f"logs filter_log_events: stopped paging, {MAX_EMPTY_PAGES} empty pages in a row (0 items found)"
    assert aws.notes == [note]
    assert aws.notes[0] in capsys.readouterr().out


def test_paging_stops_when_the_same_token_comes_back(endless_logs):
    endless_logs.mode = "same"
    aws = Aws("test")
    assert len(_paginate(aws)) == 2
    assert endless_logs.requests == 2
    assert "the same page token came back" in aws.notes[0]


def test_paging_stops_at_its_page_cap(endless_logs):
    endless_logs.mode = "full"
    aws = Aws("test")
    found = _paginate(aws, max_pages=25)
    assert len(found) == 25 and endless_logs.requests == 25, (len(found), endless_logs.requests)
    assert aws.notes == ["logs filter_log_events: stopped after 25 pages (25 items found, more remain)"]


def test_an_aws_call_returns_at_its_deadline_from_a_trickling_endpoint(monkeypatch):
    """botocore's read timeout (10 s) bounds each read; the endpoint sends a byte a second, so only the call's
    deadline ends it. The call is left behind in its thread; the session remembers the endpoint as unreachable."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n\r\n{"
    with TricklingServer(head, b" ") as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        aws = Aws("test", deadline_s=DEADLINE_S)
        with pytest.raises(Unreachable, match="deadline exceeded: no complete describe_log_groups answer within 2 s"):
            aws.call("logs", "describe_log_groups")
        assert server.sent and server.sent[0] < TOTAL_BYTES // 2, server.sent  # it had far more to send
        with pytest.raises(Unreachable, match="deadline exceeded"):  # remembered: no second wait
            aws.call("logs", "describe_log_groups")
        assert len(server.sent) == 1


def test_a_post_returns_at_its_deadline_from_a_trickling_server():
    """`deadline.post` is for webhooks (notifications): the same whole-call deadline as a GET."""
    from imsnb import deadline

    with TricklingServer(HEADERS_THEN_BODY, b" ") as server:
        reply = deadline.post(f"http://127.0.0.1:{server.port}/hook", b"{}", timeout_s=DEADLINE_S, max_bytes=1024)
        assert_left_early(server)
    assert reply.status is None and reply.error.startswith("deadline exceeded"), reply
