"""The Redis session: one connection per run with short socket timeouts, its failure remembered; reachability."""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from imsnb import config, session
from imsnb.errors import NotAvailable, NotConfigured, Unreachable
from imsnb.findings import Finding
from imsnb.session import LazySession, one_line

__all__ = [
    "CONNECT_TIMEOUT_S",
    "SOCKET_TIMEOUT_S",
    "Cache",
    "cache_or_default",
    "default_cache",
    "reachable_finding",
]

SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2.0
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.AuthenticationError)
ACL_HINT = "grant the monitoring user the commands of the documented ACL line (docs/configuration.md, Redis)"


class Cache(LazySession):
    """One Redis connection per run, opened on first use; a failure is remembered and raised again at once."""

    def __init__(
        self,
        application: str = "imsnb",
        *,
        settings: dict[str, Any] | None = None,
        socket_timeout_s: float = SOCKET_TIMEOUT_S,
    ):
        self.application = application if application.startswith("imsnb") else f"imsnb/{application}"
        self._settings = settings
        self.socket_timeout_s = socket_timeout_s
        self._client: redis.Redis | None = None
        super().__init__()
        self.label = config.redis_label()

    def client(self) -> redis.Redis:
        if self._client is not None:
            return self._client
        self.raise_if_failed()
        try:
            settings = dict(self._settings if self._settings is not None else config.redis_settings())
        except NotConfigured as exc:
            if exc.check == "cache.configured":  # no Redis at all: INFO "...: skipped", never a page
                raise self.fail(exc) from None
            raise self.fail(Unreachable("cache", str(exc))) from None  # configured, but unusable (REDIS_PORT=abc)
        except ValueError as exc:  # REDIS_PORT=abc and the like
            raise self.fail(Unreachable("cache", f"bad Redis settings: {exc}")) from None
        common = {
            "socket_timeout": self.socket_timeout_s,
            "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "retry_on_timeout": False,
            "retry": Retry(NoBackoff(), 0),  # redis-py retries 3 times by default: a hung server would cost 4x
            "decode_responses": False,
        }
        url = settings.pop("url", None)
        try:
            client = redis.Redis.from_url(str(url), **common) if url else redis.Redis(**settings, **common)
        except ValueError as exc:  # REDIS_URL=http://... : not a Redis URL
            raise self.fail(Unreachable(f"cache {self.label}", f"bad REDIS_URL: {exc}")) from None
        try:
            client.ping()
        except UNREACHABLE as exc:
            raise self.fail(Unreachable(f"cache {self.label}", _with_hint(one_line(exc)))) from None
        except redis.exceptions.NoPermissionError as exc:  # an ACL user without +ping
            raise self.fail(Unreachable(f"cache {self.label}", f"{one_line(exc)}: {ACL_HINT}")) from None
        except redis.exceptions.ResponseError as exc:  # the connection's own SELECT or HELLO refused
            raise self.fail(Unreachable(f"cache {self.label}", _with_hint(one_line(exc)))) from None
        try:  # named after the connection, not in it: a user without +client|setname still connects
            client.client_setname(self.application.replace("/", "-"))
        except redis.exceptions.NoPermissionError:
            pass
        except UNREACHABLE as exc:
            raise self.fail(Unreachable(f"cache {self.label}", one_line(exc))) from None
        self._client = client
        return client

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """One Redis command; a dropped connection becomes Unreachable (remembered)."""
        client = self.client()
        try:
            return getattr(client, method)(*args, **kwargs)
        except UNREACHABLE as exc:
            self._client = None
            raise self.fail(Unreachable(f"cache {self.label}", one_line(exc))) from None
        except redis.exceptions.NoPermissionError as exc:  # this command only: the section says so, the rest runs
            raise NotAvailable(f"cache {self.label}: {one_line(exc)}", ACL_HINT) from None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_hint(error: str) -> str:
    """A connection's error, with what to set when the error is one of the settings'."""
    lowered = error.lower()
    if "authenticat" in lowered or "noauth" in lowered or "invalid password" in lowered:
        return f"{error}: set REDIS_PASSWORD (and REDIS_USERNAME for an ACL user), or the password in REDIS_URL"
    if "db index" in lowered or "select is not allowed" in lowered:
        return f"{error}: the server refuses the database REDIS_DB (or REDIS_URL's /N) names; a cluster has only db 0"
    return error


def default_cache() -> Cache:
    """The client used when a diagnostic is called without one (interactive use)."""
    return Cache.default()


def cache_or_default(cache: Cache | None = None) -> Cache:
    """`cache`, or the interactive default client when None (what every fetcher does with its `cache` argument)."""
    return Cache.or_default(cache)


def reachable_finding(cache: Cache | None = None) -> Finding:
    """OK with the server's version and the round trip, or CRITICAL with the error (never raises)."""
    cache = cache_or_default(cache)

    def connected() -> str:
        info = cache.call("info", "server")
        unchecked = _raise_if_cluster_down(cache) if info.get("redis_mode") == "cluster" else ""
        return f"connected to {cache.label}: Redis {info.get('redis_version')}{unchecked}"

    return session.reachable_finding("cache", connected)


def _raise_if_cluster_down(cache: Cache) -> str:
    """A cluster node answers PING and INFO while its cluster is down, but every key command fails (CLUSTERDOWN):
    unreachable, as far as the application is concerned. '' when the cluster is ok; what was not checked when the
    user may not run CLUSTER INFO (or the service renamed it)."""
    try:
        reply = cache.call("execute_command", "CLUSTER", "INFO")
    except (NotAvailable, redis.exceptions.ResponseError) as exc:
        return f"; cluster state not checked ({one_line(exc)}): grant +cluster|info"
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    state = fields.get("cluster_state", "").strip()
    if state and state != "ok":
        slots = fields.get("cluster_slots_ok", "?").strip()
        raise Unreachable(
            f"cache {cache.label}",
            f"cluster_state is {state} ({slots} of 16384 slots served): every key command fails with CLUSTERDOWN",
        )
    return ""
