"""One HTTP POST with a deadline, for the notification channels (stdlib only, so tests can point it anywhere)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from imsnb.errors import ImsnbError

TIMEOUT_S = 10.0


class DeliveryFailed(ImsnbError):
    """A channel did not take the message; the message names the channel and why, never its secret URL."""


def post(
    url: str, body: bytes, headers: dict[str, str], *, what: str, timeout_s: float = TIMEOUT_S
) -> tuple[int, bytes]:
    """POST and return (status, body); DeliveryFailed (one line, no URL: a webhook URL is a secret) otherwise."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - URLs come from config
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        detail = " ".join(exc.read(300).decode("utf-8", "replace").split())
        raise DeliveryFailed(f"{what} answered HTTP {exc.code}{': ' + detail if detail else ''}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"{what} unreachable: {' '.join(str(reason).split()) or type(exc).__name__}") from None


def post_json(url: str, payload: Any, *, what: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return post(url, body, {"Content-Type": "application/json", **(headers or {})}, what=what)
