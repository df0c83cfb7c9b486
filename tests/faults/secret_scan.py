"""Scan artifacts for secrets, byte by byte, in every spelling imsnb knows plus base64 and hex.

Reusable outside this suite (e.g. on objects downloaded from an `--archive s3://` upload):

    from secret_scan import assert_no_secrets
    assert_no_secrets([run_folder, b"...bytes of an S3 object..."], secrets)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

from imsnb.scrub import secret_forms


def encoded_forms(secret: str) -> set[bytes]:
    """Byte strings that betray `secret`: imsnb's text spellings in UTF-8, hex, and base64 at any alignment (the
    stable middle of the encoding, so a secret inside a longer base64 blob, like an embedded PNG's, is found)."""
    forms = {form.encode() for form in secret_forms(secret)}
    raw = secret.encode()
    forms |= {raw.hex().encode(), raw.hex().upper().encode()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw)
            start = -(-offset * 4 // 3)  # characters that depend on the bytes before the secret
            end = len(encoded) - 4  # the last group may depend on the bytes after it
            if end - start >= 8:
                forms.add(encoded[start:end])
    return {f for f in forms if f}


def _blobs(items: Iterable[Path | str | bytes]) -> Iterable[tuple[str, bytes]]:
    for item in items:
        if isinstance(item, bytes):
            yield "<bytes>", item
            continue
        path = Path(item)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            yield str(file), file.read_bytes()


def find_secrets(items: Iterable[Path | str | bytes], secrets: Iterable[str]) -> list[str]:
    """Where any form of any secret occurs: "<file>: <form>" lines (empty when clean)."""
    forms = {s: encoded_forms(s) for s in secrets if s}
    leaks = []
    for where, blob in _blobs(items):
        for secret, spelled in forms.items():
            for form in spelled:
                if form in blob:
                    leaks.append(f"{where}: a secret ({len(secret)} chars) spelled {form[:6]!r}...")
    return leaks


def assert_no_secrets(items: Iterable[Path | str | bytes], secrets: Iterable[str]) -> int:
    """Fail naming each file that holds a secret; returns how many bytes were scanned (so a caller can check the
    scan saw something)."""
    items = list(items)
    leaks = find_secrets(items, secrets)
    assert not leaks, "secrets in artifacts:\n" + "\n".join(leaks)
    return sum(len(blob) for _, blob in _blobs(items))
