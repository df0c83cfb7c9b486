"""The exceptions imsnb raises, in one tree.

ImsnbError                 root: anything imsnb raises on purpose
├── BadParameter           a run's input is wrong (exit 2); the message names it and what to do
├── NotConfigured          a target is not set (no env var, no imsnb.toml entry)
├── Unreachable            a target did not answer (refused, timeout, auth); becomes a `*.reachable` finding
├── NotAvailable           a target answered but lacks a feature (e.g. pg_stat_statements not installed)
└── StoreError             imsnb's own store (history, notification state, run catalogue) cannot be used
"""


class ImsnbError(Exception):
    """Root of every error imsnb raises on purpose."""


class BadParameter(ImsnbError):
    """A parameter, window, notebook name or incident id that cannot be used."""


class NotConfigured(ImsnbError):
    """A target has no configuration; `check` names the finding a notebook section reports it as."""

    def __init__(self, message: str, *, check: str | None = None):
        super().__init__(message)
        self.check = check


class Unreachable(ImsnbError):
    """A target could not be reached; `target` says which, the message says why."""

    def __init__(self, target: str, reason: str, *, check: str | None = None):
        super().__init__(f"{target} unreachable: {reason}")
        self.target = target
        self.reason = reason
        self.check = check  # the finding to report it as, when not `<source>.reachable`


class NotAvailable(ImsnbError):
    """The target answered but the feature a diagnostic needs is missing; `hint` says how to enable it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class StoreError(ImsnbError):
    """imsnb's own store (`imsnb.state`: history, baselines, notification state, run catalogue) cannot be used:
    unreachable, refused, or of a newer schema. Named without credentials; a run goes on from what it can read."""
