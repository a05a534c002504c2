"""Errors every provider client raises, with stable codes callers can branch on."""

from __future__ import annotations


class ProviderError(Exception):
    """A call to a provider failed.

    `retryable` is True when the same request may be sent again safely (timeouts,
    5xx, "busy"): callers of non-idempotent calls must query before retrying.
    """

    def __init__(
        self, code: str, message: str = "", status: int | None = None, retryable: bool = False
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.retryable = retryable


class NotificationRejected(Exception):
    """An incoming notification failed verification; `code` is stable for logs and replies."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
