"""One lazy session per source: connect on first use, remember the failure, one default for interactive use.

PostgreSQL (`imsnb.postgres.Database`), Redis (`imsnb.cache.Cache`), AWS (`imsnb.aws.Aws`) and Prometheus
(`imsnb.prometheus.Prometheus`) build on `LazySession`: once a connection failed (unreachable, not configured),
every later call of the run raises the same error at once instead of waiting for the same timeout again.
`reachable_finding` is their `<source>.reachable` check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar, Self

from imsnb.errors import NotAvailable, NotConfigured, Unreachable
from imsnb.findings import Finding, Severity


class LazySession:
    """The failure-remembering half of a source's session; the subclass opens the connection on first use."""

    _defaults: ClassVar[dict[type, LazySession]] = {}

    def __init__(self) -> None:
        self._failure: Unreachable | NotConfigured | None = None

    @property
    def failure(self) -> Unreachable | NotConfigured | None:
        """Why this session is given up for the run (None while it works or has not been tried)."""
        return self._failure

    def raise_if_failed(self) -> None:
        """Raise the remembered failure, if any: called before every attempt to connect or call."""
        if self._failure is not None:
            raise self._failure

    def fail(self, failure: Unreachable | NotConfigured) -> Unreachable | NotConfigured:
        """Remember `failure` for the rest of the run and return it (`raise self.fail(...) from None`)."""
        self._failure = failure
        return failure

    @classmethod
    def interactive(cls) -> Self:
        """The session `default()` creates: named for interactive use."""
        return cls("imsnb/interactive")  # type: ignore[call-arg]

    @classmethod
    def default(cls) -> Self:
        """The session used when a diagnostic is called without one (interactive use), created on first use."""
        if cls not in LazySession._defaults:
            LazySession._defaults[cls] = cls.interactive()
        return LazySession._defaults[cls]  # type: ignore[return-value]

    @classmethod
    def or_default(cls, session: Self | None = None) -> Self:
        """`session`, or the default one when None (what every fetcher does with its session argument)."""
        return session if session is not None else cls.default()


def one_line(exc: BaseException) -> str:
    """An exception as one line of text (its type name when it says nothing)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def reachable_finding(source: str, probe: Callable[[], str]) -> Finding:
    """`<source>.reachable`: OK with what `probe()` says ("connected to ...: <server and version>") and how long it
    took, or what the failure is reported as (`Finding.unusable`); never raises for an unusable source."""
    started = time.monotonic()
    try:
        connected = probe()
    except (Unreachable, NotConfigured) as exc:
        return Finding.unusable(exc, source)
    except NotAvailable as exc:  # it answers, but may not run what the probe asks (a restricted user)
        return Finding.of(f"{source}.reachable", Severity.WARNING, f"{exc}: {exc.hint}".rstrip(": "))
    elapsed_ms = (time.monotonic() - started) * 1000
    return Finding.ok(
        f"{source}.reachable", f"{connected} in {elapsed_ms:.0f} ms", value=round(elapsed_ms, 1), unit="ms"
    )
