"""No secret in any artifact: every configured secret, in every spelling (raw, JSON, HTML, repr, percent-encoded),
replaced by ******** in notebooks, reports and summaries; secret-looking parameters redacted in summary.json."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from imsnb import config
from imsnb.errors import BadParameter

REDACTED = "********"


# Identifiers in summary.json, never scrubbed (a password equal to "postgres" must not rename checks).
SUMMARY_KEYS_KEPT = frozenset({"check", "component", "severity", "notebook", "status", "unit", "action"})


def redact_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    from imsnb.runs.parameters import check_not_secret

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
