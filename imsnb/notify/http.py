"""HTTP for the notification channels: one request bounded as a whole, through the proxy the environment names.

    answer = request("POST", url, body, headers, what="Slack webhook")   # Answer(status, headers, body) on 2xx

- A whole-call deadline (connect, proxy tunnel, TLS handshake, headers and body together: `imsnb.deadline`'s
  watchdog on every socket the call opens) and a cap on the answer, so a trickling endpoint cannot hold a run.
- Proxies as any HTTP client: urllib's `ProxyHandler` reads HTTPS_PROXY / HTTP_PROXY / NO_PROXY
  (`urllib.request.getproxies()`, bypass by `proxy_bypass`); HTTPS goes through a CONNECT tunnel, so TLS is end to
  end and the proxy sees only the host name.
- Success is the service's own: a redirect is a failure naming where it pointed (a webhook that moved must be
  fixed, not followed with its secret), 4xx and 5xx are failures with the service's words, 429 waits for
  `Retry-After` when that fits in the deadline and otherwise fails (the next run tries again).
- Secrets go only over TLS: `check_secure` refuses plain http:// except to a loopback address.

DeliveryFailed messages never carry the URL (a webhook URL is a secret); `retryable` says the service as a whole did
not answer (network, deadline, 429, 5xx), so a batch stops there instead of waiting once per event.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from imsnb.deadline import Watchdog, deadline_message
from imsnb.errors import ImsnbError

TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 64 * 1024
MAX_RETRIES_429 = 3


class DeliveryFailed(ImsnbError):
    """A channel did not take the message; the message names the channel and why, never its secret URL.

    `retryable`: the service as a whole did not take it (network error, deadline, 429, 5xx): a batch of events
    stops there and the next run tries again. Otherwise (400, 401, 404, ...) only this message was refused."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def text(self, limit: int = 300) -> str:
        return " ".join(self.body[:limit].decode("utf-8", "replace").split())


def is_loopback(host: str | None) -> bool:
    """localhost or a loopback IP literal (127.0.0.0/8, ::1): the only hosts a secret may reach in clear."""
    if not host:
        return False
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_secure(url: str, what: str) -> str | None:
    """Why `url` must not carry a secret (plain http:// to a host that is not loopback, not http(s) at all), or
    None. The message never shows the URL's path or query (a webhook's secret), only its scheme and host."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return f"{what}: not a URL"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host:
        if is_loopback(host):
            return None
        return (
            f"{what} is plain http://{host}: the secret it carries would cross the network in clear; "
            "use https:// (plain http is allowed to loopback addresses only)"
        )
    return f"{what}: not an http(s) URL"


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds from now: a number of seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def request(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    what: str,
    timeout_s: float = TIMEOUT_S,
) -> Answer:
    """Send one request and return the service's 2xx Answer; DeliveryFailed (one line, no URL) otherwise.

    A 429 is sent again after its Retry-After when that ends before the deadline (at most MAX_RETRIES_429 times);
    otherwise it fails as retryable, for the next run."""
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_RETRIES_429 + 1):
        answer = _once(method, url, body, headers, what=what, deadline=deadline, timeout_s=timeout_s)
        if answer.status != 429:
            break
        wait = retry_after_s(answer.headers.get("retry-after"))
        if wait is None or time.monotonic() + wait >= deadline:
            said = (
                f"Retry-After {answer.headers['retry-after']}" if "retry-after" in answer.headers else "no Retry-After"
            )
            raise DeliveryFailed(
                f"{what} rate limited (HTTP 429, {said}): not within the {timeout_s:g} s deadline, "
                "tried again on the next run",
                retryable=True,
                status=429,
            )
        time.sleep(wait)
    if answer.status == 429:
        raise DeliveryFailed(f"{what} still rate limited (HTTP 429) after {MAX_RETRIES_429} waits", retryable=True)
    if 300 <= answer.status < 400:
        where = answer.headers.get("location") or "nowhere (no Location)"
        raise DeliveryFailed(
            f"{what} answered HTTP {answer.status} redirecting to {where[:200]}: a redirect is not delivery "
            "(set the URL it points to)",
            status=answer.status,
        )
    if answer.status >= 400 or answer.status < 200:
        detail = answer.text()
        raise DeliveryFailed(
            f"{what} answered HTTP {answer.status}{': ' + detail if detail else ''}",
            retryable=answer.status >= 500,
            status=answer.status,
        )
    return answer


def post(
    url: str, body: bytes, headers: dict[str, str], *, what: str, timeout_s: float = TIMEOUT_S
) -> tuple[int, bytes]:
    """POST and return (status, body) of a 2xx answer; DeliveryFailed otherwise."""
    answer = request("POST", url, body, headers, what=what, timeout_s=timeout_s)
    return answer.status, answer.body


def post_json(
    url: str, payload: Any, *, what: str, headers: dict[str, str] | None = None, timeout_s: float = TIMEOUT_S
) -> Answer:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return request(
        "POST", url, body, {"Content-Type": "application/json", **(headers or {})}, what=what, timeout_s=timeout_s
    )


# ---------------------------------------------------------------- one exchange


class Watch:
    """The watchdogs of one call: every socket it opens (to the service or to a proxy) is shut down at the
    deadline, whatever it is doing then."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.dogs: list[Watchdog] = []

    def create_connection(self, address: tuple[str, int], timeout: Any = None, source_address: Any = None) -> Any:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("deadline")
        if isinstance(timeout, (int, float)):
            remaining = min(remaining, float(timeout))
        sock = socket.create_connection(address, remaining, source_address)
        dog = Watchdog(sock, self.deadline - time.monotonic())
        dog.__enter__()
        self.dogs.append(dog)
        return sock

    @property
    def fired(self) -> bool:
        return any(dog.fired.is_set() for dog in self.dogs)

    def close(self) -> None:
        for dog in self.dogs:
            dog.__exit__(None, None, None)


def _opener(watch: Watch) -> urllib.request.OpenerDirector:
    class Connection(http.client.HTTPConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = watch.create_connection

    class TLSConnection(http.client.HTTPSConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._create_connection = watch.create_connection

    class Handler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(Connection, req)

    class TLSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(TLSConnection, req, context=ssl.create_default_context())

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # the 3xx comes back as an answer: the caller names where it pointed

    # ProxyHandler() reads the environment's proxies now (getproxies) and skips NO_PROXY hosts (proxy_bypass).
    return urllib.request.build_opener(urllib.request.ProxyHandler(), Handler(), TLSHandler(), NoRedirect())


def _once(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    *,
    what: str,
    deadline: float,
    timeout_s: float,
) -> Answer:
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError
    except ValueError:
        raise DeliveryFailed(f"{what} unreachable: bad destination URL") from None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeliveryFailed(f"{what} unreachable: {deadline_message(timeout_s)}", retryable=True)
    watch = Watch(deadline)
    req = urllib.request.Request(url, data=body, headers={"User-Agent": "imsnb", **headers}, method=method)
    try:
        try:
            response = _opener(watch).open(req, timeout=remaining)
        except urllib.error.HTTPError as exc:  # an answer all the same: 3xx, 4xx, 5xx
            response = exc
        with response:
            data = response.read(MAX_ANSWER_BYTES + 1)
            status = response.status if hasattr(response, "status") else response.code
            answer = Answer(int(status), {k.lower(): v for k, v in response.headers.items()}, data[:MAX_ANSWER_BYTES])
        if watch.fired:  # the shutdown can look like a clean end of the body
            raise TimeoutError("deadline")
        return answer
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if watch.fired:
            error = deadline_message(timeout_s)
        elif isinstance(reason, TimeoutError | socket.timeout):
            error = f"timeout after {timeout_s:g} s"
        else:
            error = " ".join(str(reason).split()) or type(reason).__name__
        raise DeliveryFailed(f"{what} unreachable: {error}", retryable=True) from None
    finally:
        watch.close()
