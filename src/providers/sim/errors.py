"""The one error a simulator raises to answer a request with a provider error."""

from __future__ import annotations


class SimError(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message or code
