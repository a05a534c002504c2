"""Secrets at rest: a JSON object sealed with Fernet (AES-128-CBC + HMAC-SHA256) under
SECRETS_KEY from the environment; shown to people only masked."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from infra.settings import Settings


class SecretsUnreadable(Exception):
    """The stored secrets were sealed with another key (SECRETS_KEY changed) or altered."""


class SecretBox:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(settings.secrets_key.get_secret_value())

    def seal(self, secrets: dict[str, str]) -> bytes:
        return self._fernet.encrypt(json.dumps(secrets, sort_keys=True).encode())

    def open(self, token: bytes | None) -> dict[str, str]:
        if not token:
            return {}
        try:
            data: Any = json.loads(self._fernet.decrypt(bytes(token)))
        except (InvalidToken, ValueError) as exc:
            raise SecretsUnreadable("stored secrets cannot be decrypted with SECRETS_KEY") from exc
        return {str(k): str(v) for k, v in data.items()}


def mask(value: str | None) -> str | None:
    """Enough to recognise a secret, never enough to use it: '****' plus its last 4 when long."""
    if not value:
        return None
    return "****" + value[-4:] if len(value) >= 12 else "****"
