"""A finding is one judged fact: `check` (dotted name), `component`, `severity`, the `value` seen, the `threshold` it
was judged against, its `unit`, a one-line `message` and optionally a small `evidence` table and the `period` it covers.
`Findings` holds one run's, and turns a failed notebook section into a finding instead of an error.
"""

from __future__ import annotations

import math
import re
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

from imsnb.errors import NotAvailable, NotConfigured, Unreachable
from imsnb.period import Period

__all__ = [
    "COMPONENTS",
    "EVIDENCE_ROWS",
    "Finding",
    "Findings",
    "Severity",
    "component_of",
    "evidence_rows",
    "skipped_target",
    "skipped_text",
]

COMPONENTS = ("api", "database", "cache", "aws", "host", "tls")
PACKAGE = Path(__file__).resolve().parents[1]  # imsnb/
SOURCE_COMPONENTS = {"postgres": "database", "prometheus": "api", "grafana": "api"}  # the rest: the source itself
EVIDENCE_ROWS = 20
SKIPPED = ": skipped"  # how the message of a target that is not configured ends (`Finding.unusable`)


class Severity(IntEnum):
    OK = 0
    INFO = 1
    WARNING = 2
    ERROR = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str | Severity) -> Severity:
        if isinstance(text, Severity):
            return text
        try:
            return cls[str(text).strip().upper()]
        except KeyError:
            raise ValueError(f"unknown severity {text!r}: use one of {', '.join(s.name for s in cls)}") from None

    @classmethod
    def worst(cls, items: Iterable[Any], *, default: Severity | str | None = "OK") -> Severity | None:
        """The worst severity among findings, severities or severity names; what is not a severity (None, "", a
        typo) is skipped, and `default` is returned when nothing is left."""
        levels = []
        for item in items:
            try:
                levels.append(cls.parse(getattr(item, "severity", item)))
            except ValueError:
                continue
        return max(levels) if levels else (None if default is None else cls.parse(default))


@dataclass
class Finding:
    check: str
    component: str
    severity: Severity
    _: KW_ONLY  # the rest by name: Finding("cache.hit_rate", "cache", "WARNING", value=0.7, threshold=0.8, ...)
    value: Any = None
    threshold: Any = None
    unit: str = ""
    message: str = ""
    evidence: list[dict[str, Any]] | None = field(default=None, repr=False)
    period: Period | None = None  # the span the value covers (None: a reading taken now)

    def __post_init__(self) -> None:
        self.severity = Severity.parse(self.severity)
        if self.component not in COMPONENTS:
            raise ValueError(f"component {self.component!r} is not one of {COMPONENTS}")
        if self.evidence is not None and hasattr(self.evidence, "to_dict"):
            self.evidence = evidence_rows(self.evidence)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "component": self.component,
            "severity": self.severity.name,
            "value": _plain(self.value),
            "threshold": _plain(self.threshold),
            "unit": self.unit,
            "message": self.message,
            "evidence": self.evidence,
            "period": None if self.period is None else self.period.to_dict(),
        }

    @classmethod
    def of(
        cls,
        check: str,
        severity: Severity | str,
        message: str,
        *,
        value: Any = None,
        threshold: Any = None,
        unit: str = "",
        evidence: Any = None,
        period: Period | None = None,
    ) -> Finding:
        """A finding with its message up front and the rest by name (instead of seven positional arguments); the
        component is the check's (`component_of`: `postgres.*` is the database's), so a check names it once."""
        return cls(
            check,
            component_of(check),
            severity,
            value=value,
            threshold=threshold,
            unit=unit,
            message=message,
            evidence=evidence,
            period=period,
        )

    @classmethod
    def ok(cls, check: str, message: str, **extra: Any) -> Finding:
        """An OK finding, the rest by name: `Finding.ok("postgres.blocked_queries", "no wait", value=0)`."""
        return cls.of(check, Severity.OK, message, **extra)

    @classmethod
    def unusable(cls, failure: Unreachable | NotConfigured, source: str) -> Finding:
        """What a source that cannot be used is reported as: `<source>.reachable` CRITICAL when it did not answer,
        `<source>.configured` INFO ("...: skipped") when it is not set up; the failure's own `check` if it names one."""
        if isinstance(failure, NotConfigured):
            return cls.of(failure.check or f"{source}.configured", Severity.INFO, f"{failure}{SKIPPED}")
        return cls.of(failure.check or f"{source}.reachable", Severity.CRITICAL, str(failure))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(
            **{k: data.get(k) for k in ("check", "component", "severity", "value", "threshold", "message")},
            unit=data.get("unit") or "",
            evidence=data.get("evidence"),
            period=Period.from_dict(data.get("period")),
        )


def skipped_target(finding: Finding | dict[str, Any]) -> bool:
    """Whether a finding (or its summary dict) says a target was not configured and its checks were skipped
    (`Finding.unusable` of a NotConfigured): listed first, apart from the findings, where people read a run."""
    get = finding.get if isinstance(finding, dict) else lambda key: getattr(finding, key)
    severity = get("severity")
    return (
        str(getattr(severity, "name", severity)) == "INFO"
        and str(get("message") or "").endswith(SKIPPED)
        and (str(get("check")).endswith(".configured") or get("check") == "aws.credentials")
    )


def skipped_text(finding: Finding | dict[str, Any]) -> str:
    """A skipped target's message without its ": skipped" ending: what to set."""
    message = finding["message"] if isinstance(finding, dict) else finding.message
    return message.removesuffix(SKIPPED)


def _plain(value: Any) -> Any:
    """JSON-safe scalars: numpy/Decimal to float, NaN to None, datetimes to ISO strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number) or math.isinf(number):
        return None
    return int(number) if number.is_integer() and not isinstance(value, float) else number


def evidence_rows(frame: Any) -> list[dict[str, Any]]:
    """A finding's evidence from a DataFrame: its first EVIDENCE_ROWS rows as JSON-safe records."""
    rows = frame.head(EVIDENCE_ROWS).to_dict(orient="records")
    return [{str(k): _plain(v) for k, v in row.items()} for row in rows]


class Missing(Exception):
    """Raised by `Findings.needs` inside a section: a value an earlier section should have produced is None."""

    def __init__(self, name: str) -> None:
        super().__init__(f"needs {name}")
        self.name = name


class Findings(list):
    """The findings of one run, in the order they were found."""

    def __init__(self, found: Iterable[Finding] = ()) -> None:
        super().__init__(found)
        self._failed: list[tuple[str, str]] = []  # the sections that failed so far, oldest first: (check, why)

    def add(self, *found: Finding | list[Finding] | None) -> None:
        for item in found:
            if item is None:
                continue
            if isinstance(item, Finding):
                self.append(item)
            else:
                self.extend(item)

    @property
    def worst(self) -> Severity:
        return Severity.worst(self)

    @contextmanager
    def section(self, check: str) -> Iterator[None]:
        """Run one notebook section; a failure becomes a finding instead of an error that stops the notebook.

        An unreachable target is reported once as a CRITICAL `<source>.reachable` finding; later sections for the
        same target are skipped with a note. A missing feature is INFO with its hint; anything else (a timeout,
        a lock wait, a permission error) is a WARNING that the check could not complete. A section that needs a
        name an earlier, failed section did not set is skipped (INFO "skipped: ..." naming that failure) instead
        of reporting a NameError. The findings' component is the check's (`component_of`).
        """
        try:
            yield
        except (Unreachable, NotConfigured) as exc:
            self._failed.append((check, str(exc)))
            failed = Finding.unusable(exc, check.split(".")[0])
            if any(f.check == failed.check for f in self):
                print(f"skipped {check}: {exc}")
            else:
                self.add(failed)
        except NotAvailable as exc:
            self._failed.append((check, str(exc)))
            self.add(Finding.of(check, Severity.INFO, f"{exc}. {exc.hint}".strip()))
        except NameError as exc:
            if not self._failed or _raised_in_library(exc):  # a bug, not a name a failed section left unset
                self._could_not_complete(check, exc)
                return
            self._skipped(check, exc.name or _quoted_name(str(exc)))
        except Missing as exc:
            self._skipped(check, exc.name)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must never crash the notebook
            self._could_not_complete(check, exc)

    def needs(self, **values: Any) -> None:
        """Skip the rest of this section (INFO "skipped: ...", naming the earlier failure) when a value an earlier
        section should have produced is None: `findings.needs(chosen=chosen)`."""
        for name, value in values.items():
            if value is None:
                raise Missing(name)

    def _skipped(self, check: str, name: str | None) -> None:
        if self._failed:
            earlier, why = self._failed[-1]
            message = f"skipped: needs `{name}`, which was not set because {earlier} failed earlier ({why})"
        else:
            message = f"skipped: `{name}` is None: an earlier section found nothing to act on (see its finding)"
        print(message)
        self.add(Finding.of(check, Severity.INFO, message))

    def _could_not_complete(self, check: str, exc: BaseException) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        self._failed.append((check, f"{type(exc).__name__}: {reason}"))
        self.add(Finding.of(check, Severity.WARNING, f"check could not complete: {type(exc).__name__}: {reason}"))
        traceback.print_exc(limit=1)


def _raised_in_library(exc: BaseException) -> bool:
    """Whether the innermost frame of the traceback is imsnb's own code (a NameError there is a bug in imsnb), not
    the notebook cell's."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


def _quoted_name(text: str) -> str | None:
    """The name in "cannot access local variable 'x' ..." (an UnboundLocalError carries no `name`)."""
    match = re.search(r"'(\w+)'", text)
    return match[1] if match else None


def component_of(check: str) -> str:
    """The component a check belongs to, from its first part: `postgres` is the database, `prometheus` the API."""
    source = check.split(".")[0]
    component = SOURCE_COMPONENTS.get(source, source)
    if component not in COMPONENTS:
        raise ValueError(f"check {check!r}: name its component, one of {COMPONENTS}")
    return component
