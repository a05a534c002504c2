"""SMS one-time codes in auth.sms_codes: six digits, salted hash only, short-lived.

A code lives 5 minutes and allows 5 guesses; a phone gets at most one code a minute and ten
a day. A per-phone advisory lock serialises requests, so the limits hold under concurrency.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from psycopg_pool import ConnectionPool

from api.errors import ApiError

TTL_S = 300
MAX_ATTEMPTS = 5
RESEND_AFTER_S = 60
DAILY_LIMIT = 10
CODE_DIGITS = 6


def _digest(salt: bytes, code: str) -> bytes:
    return hashlib.sha256(salt + code.encode()).digest()


class SmsCodes:
    def __init__(self, pool: ConnectionPool[Any], purpose: str = "bind_phone") -> None:
        self.pool = pool
        self.purpose = purpose

    def issue(self, phone: str, owner: str) -> tuple[int, str]:
        """A new code for this phone: (row id, code). Raises 429 `sms_rate_limited`."""
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        salt = secrets.token_bytes(16)
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (phone,))
            last_minute, last_day, oldest_today = conn.execute(
                "SELECT count(*) FILTER (WHERE created_at > now() - make_interval(secs => %s)), "
                "count(*), extract(epoch FROM min(created_at) + interval '1 day' - now()) "
                "FROM auth.sms_codes WHERE phone = %s AND created_at > now() - interval '1 day'",
                (RESEND_AFTER_S, phone),
            ).fetchone()
            if last_minute:
                raise _rate_limited(RESEND_AFTER_S, "one code a minute")
            if last_day >= DAILY_LIMIT:
                raise _rate_limited(int(oldest_today) + 1, "daily limit reached")
            row = conn.execute(
                "INSERT INTO auth.sms_codes (phone, purpose, owner, salt, code_hash, expires_at) "
                "VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) RETURNING id",
                (phone, self.purpose, owner, salt, _digest(salt, code), TTL_S),
            ).fetchone()
        assert row is not None
        return int(row[0]), code

    def withdraw(self, code_id: int) -> None:
        """The message was not sent: the code never existed, and does not count."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM auth.sms_codes WHERE id = %s", (code_id,))

    def verify(self, phone: str, owner: str, code: str) -> None:
        """Consume the latest code this owner asked for this phone, or raise."""
        failure: ApiError | None = None
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT id, salt, code_hash, attempts, consumed_at IS NOT NULL, "
                "expires_at <= now() FROM auth.sms_codes "
                "WHERE phone = %s AND owner = %s AND purpose = %s "
                "ORDER BY id DESC LIMIT 1 FOR UPDATE",
                (phone, owner, self.purpose),
            ).fetchone()
            if row is None or row[4]:
                raise ApiError(400, "sms_code_invalid", "Ask for a new code")
            code_id, salt, expected, attempts, _, expired = row
            if expired:
                raise ApiError(400, "sms_code_expired", "The code has expired; ask for a new one")
            if attempts >= MAX_ATTEMPTS:
                raise _too_many()
            if hmac.compare_digest(_digest(bytes(salt), code.strip()), bytes(expected)):
                conn.execute(
                    "UPDATE auth.sms_codes SET consumed_at = now() WHERE id = %s", (code_id,)
                )
                return
            # A wrong guess is counted even though the request fails: commit, then raise.
            conn.execute(
                "UPDATE auth.sms_codes SET attempts = attempts + 1 WHERE id = %s", (code_id,)
            )
            left = MAX_ATTEMPTS - attempts - 1
            failure = (
                _too_many()
                if left == 0
                else ApiError(400, "sms_code_invalid", "Wrong code", attempts_left=left)
            )
        raise failure


def _rate_limited(retry_after: int, why: str) -> ApiError:
    return ApiError(429, "sms_rate_limited", f"Too many codes: {why}", retry_after=retry_after)


def _too_many() -> ApiError:
    return ApiError(429, "sms_code_attempts_exceeded", "Too many wrong codes; ask for a new one")
