"""One HTTP POST with a whole-call deadline and a cap on the answer, for the notification channels (stdlib only,
through `imsnb.deadline`, so tests can point it anywhere and a trickling endpoint cannot hold a run)."""

from __future__ import annotations

import json
from typing import Any

from imsnb import deadline
from imsnb.errors import ImsnbError

TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 64 * 1024


class DeliveryFailed(ImsnbError):
    """A channel did not take the message; the message names the channel and why, never its secret URL."""


def post(
    url: str, body: bytes, headers: dict[str, str], *, what: str, timeout_s: float = TIMEOUT_S
) -> tuple[int, bytes]:
    """POST and return (status, body); DeliveryFailed (one line, no URL: a webhook URL is a secret) otherwise."""
    reply = deadline.post(url, body, timeout_s=timeout_s, max_bytes=MAX_ANSWER_BYTES, headers=headers)
    if reply.error:
        reason = "bad destination URL" if reply.error.startswith("bad URL") else reply.error  # never the URL
        raise DeliveryFailed(f"{what} unreachable: {reason}")
    if reply.status is None or reply.status >= 400:
        detail = " ".join(reply.body[:300].decode("utf-8", "replace").split())
        raise DeliveryFailed(f"{what} answered HTTP {reply.status}{': ' + detail if detail else ''}")
    return reply.status, reply.body


def post_json(url: str, payload: Any, *, what: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return post(url, body, {"Content-Type": "application/json", **(headers or {})}, what=what)
