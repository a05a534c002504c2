"""Opaque cursors for keyset pagination: the client hands back what the last page ended on."""

from __future__ import annotations

import base64
import json
from typing import Any

from ledger.errors import DomainError


class BadCursor(DomainError):
    code = "invalid_cursor"
    status = 400


def encode(*values: Any) -> str:
    raw = json.dumps([str(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, parts: int) -> list[str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError) as e:
        raise BadCursor("the cursor is not one this API issued") from e
    if not isinstance(values, list) or len(values) != parts:
        raise BadCursor("the cursor is not one this API issued")
    return [str(v) for v in values]
