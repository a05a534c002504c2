"""Domain errors, each with the stable `code` the API puts in its problem+json."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "domain_error"
    status = 422

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class InsufficientBalance(DomainError):
    code = "insufficient_balance"


class InvalidAmount(DomainError):
    code = "invalid_amount"


class UnknownHold(DomainError):
    code = "unknown_hold"
    status = 404


class HoldAlreadyExists(DomainError):
    code = "hold_exists"
    status = 409


class IdempotencyConflict(DomainError):
    """The same idempotency key came back with a different request."""

    code = "idempotency_conflict"
    status = 409


class NotFound(DomainError):
    code = "not_found"
    status = 404


class ConcurrencyExhausted(DomainError):
    """Retried on optimistic-concurrency conflicts until the retry budget ran out."""

    code = "busy_retry"
    status = 503
