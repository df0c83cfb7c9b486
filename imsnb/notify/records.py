"""What every channel's step shares: the one masking of payloads and records, a failed record, the time, a JSON file
written atomically."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imsnb import config
from imsnb.files import write_atomic
from imsnb.scrub import SUMMARY_KEYS_KEPT, scrub_tree

# The user info of a URL (scheme://user:pw@host): a target's name never carries it, nor does any message text.
_USERINFO = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


def scrub(value: Any) -> Any:
    """The one masking every channel's payload and every record goes through: known secrets in every spelling
    (`imsnb.scrub`), then the user info of any URL."""

    return _without_userinfo(scrub_tree(value, config.secret_values(), keep=SUMMARY_KEYS_KEPT))


def _without_userinfo(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub(r"\1", value)
    if isinstance(value, dict):
        return {k: _without_userinfo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_userinfo(v) for v in value]
    return value


def failed_record(channel: str, error: str, mode: str) -> dict[str, Any]:
    return {"channel": channel, "status": "failed", "error": scrub(error), "detail": None, "mode": mode, "at": now()}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
