"""No secret in any artifact: every configured secret, in every spelling (raw, JSON, HTML, repr, percent-encoded),
replaced by ******** in notebooks, reports and summaries; secret-looking parameters redacted in summary.json."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from imsnb import config
from imsnb.errors import BadParameter

REDACTED = "********"
_SECRET_NAME = re.compile(r"(^|_)(pass(word|wd)?|pwd|secret|token|credentials?|dsn)(_|$)|(^|_)(api)?key$", re.I)


# Identifiers in summary.json, never scrubbed (a password equal to "postgres" must not rename checks).
SUMMARY_KEYS_KEPT = frozenset({"check", "component", "severity", "notebook", "status", "unit", "action"})


def check_not_secret(name: str, value: Any) -> None:
    """A parameter named like a secret, or holding one (by the one rule of every value, or a configured secret's
    value), is bad input: secrets come from the environment, never from -p."""
    if _SECRET_NAME.search(name):
        raise BadParameter(
            f"parameter {name!r} looks like a secret: set secrets in the environment (e.g. PGPASSWORD), never with -p"
        )
    if isinstance(value, (list, tuple)):
        for item in value:
            check_not_secret(name, item)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            check_not_secret(name, key)
            check_not_secret(name, item)
        return
    if not isinstance(value, str):
        return
    what = config.secret_in_value(value)  # the one rule of every place a value enters
    if what:
        raise BadParameter(f"the value of {name!r} looks like {what}: pass secrets through the environment")
    if any(secret in value for secret in config.secret_values()):
        raise BadParameter(f"the value of {name!r} contains a secret known from the environment: remove it")


def redact_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    clean = {}
    for name, value in parameters.items():
        try:
            check_not_secret(name, value)
            clean[name] = value
        except BadParameter:
            clean[name] = REDACTED
    return clean


def secret_forms(secret: str) -> set[str]:
    """The ways a secret can be spelled inside an artifact: raw, JSON-, HTML- (with and without quotes),
    JSON-of-HTML-, Python-repr- and percent-encoded."""
    forms = {
        secret,
        json.dumps(secret)[1:-1],
        html.escape(secret),
        html.escape(secret, quote=False),
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
    }
    forms |= {json.dumps(f)[1:-1] for f in list(forms)}
    return {f for f in forms if f}


def _all_forms(secret_values: list[str]) -> list[str]:
    return sorted({f for s in secret_values for f in secret_forms(s)}, key=len, reverse=True)


def scrub(text: str, secret_values: list[str] | None = None, *, forms: list[str] | None = None) -> str:
    """Replace every known secret, in every spelling, by ********."""
    if forms is None:
        forms = _all_forms(config.secret_values() if secret_values is None else secret_values)
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def scrubber(secret_values: list[str] | None = None) -> Callable[[str], str]:
    """`scrub` with the secrets' spellings worked out once: for text scrubbed line by line (a run's progress)."""
    forms = _all_forms(config.secret_values() if secret_values is None else secret_values)
    return lambda text: scrub(text, forms=forms)


def scrub_tree(
    value: Any, secret_values: list[str], keep: frozenset[str] = frozenset(), *, forms: list[str] | None = None
) -> Any:
    """`scrub` applied to every string in a JSON-like tree; values under the keys in `keep` are left alone."""
    forms = _all_forms(secret_values) if forms is None else forms
    if isinstance(value, str):
        return scrub(value, forms=forms)
    if isinstance(value, list):
        return [scrub_tree(v, secret_values, keep, forms=forms) for v in value]
    if isinstance(value, dict):
        return {k: v if k in keep else scrub_tree(v, secret_values, keep, forms=forms) for k, v in value.items()}
    return value
