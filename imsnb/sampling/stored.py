"""What imsnb's store could not do for one run: said as it happens (a line in the notebook), then once as a WARNING
finding (`host.state_store`) naming the store without credentials, how many snapshots were not written and what was
not read. The run goes on from what it can read: its own sample instead of the stored history, no baseline."""

from __future__ import annotations

from typing import Any

from imsnb.findings import Finding, Severity

CHECK = "host.state_store"


class StoreProblems:
    """The store's failures during one run (`Sample`), in order."""

    def __init__(self, history: Any) -> None:
        self.history = history
        self.unwritten = 0  # snapshots this run took that are not in the store
        self.reasons: list[str] = []  # why, each once
        self.missed: list[str] = []  # what was not read or kept: "history", "baseline", "plans"
        self._said = False

    def failed(self, what: str, exc: BaseException, *, snapshots: int = 0, missed: str = "") -> None:
        """One failure: `what` is the line said now ("history store not written"); `snapshots` not written,
        `missed` what the run goes without ("history", "baseline", "plans")."""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{what}: {reason}" if self.history.name in reason else f"{what} ({self.history.name}): {reason}")
        self.unwritten += snapshots
        if reason not in self.reasons:
            self.reasons.append(reason)
        if missed and missed not in self.missed:
            self.missed.append(missed)

    def finding(self) -> Finding | None:
        """The WARNING finding, once (None when the store did all it was asked, or it was said already)."""
        if self._said or not (self.reasons or self.unwritten):
            return None
        self._said = True
        what = []
        if self.unwritten:
            what.append(f"{self.unwritten} snapshot(s) of this run not written (a later run cannot start from them)")
        if self.missed:
            what.append(f"{' and '.join(self.missed)} not read or kept")
        reason = self.reasons[0] if self.reasons else "unknown"
        if self.history.name not in reason:
            reason = f"{self.history.name}: {reason}"
        message = (
            f"imsnb's store could not be used ({reason}): {'; '.join(what) or 'nothing kept'}; "
            "this run's numbers come from what it could read (its own sample)"
        )
        return Finding.of(CHECK, Severity.WARNING, message, value=self.unwritten, unit="snapshots")
