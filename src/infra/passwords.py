"""Password hashing (argon2id) and the strength rule for the accounts people sign in with."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verified against when the account does not exist, so both answers take the same time.
_DUMMY = _hasher.hash("no such account: constant-time answer")
MIN_LENGTH = 12
COMMON = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiop12",
        "adminadmin12",
        "changeme1234",
        "password123!",
        "administrator",
        "letmein12345",
        "iloveyou1234",
    }
)


class WeakPassword(ValueError):
    pass


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_strength(password: str, *, name: str = "") -> str:
    """At least 12 characters with letters and digits, not a common one, not the name."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > 256:
        raise WeakPassword("a password may have at most 256 characters")
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        raise WeakPassword("a password needs letters and digits")
    lowered = password.lower()
    if lowered in COMMON or (name and name.lower() in lowered) or len(set(password)) < 6:
        raise WeakPassword("this password is too easy to guess")
    return password
