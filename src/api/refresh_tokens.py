"""Opaque, single-use refresh tokens in auth.refresh_tokens, rotated on every use.

Only the sha256 of a token is stored. Each sign-in starts a family; using a token marks it
used and issues the next one in the family. A used token presented again means it was
copied: the whole family is revoked, so the thief and the owner both sign in again.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg_pool import ConnectionPool

from api.errors import ApiError

TOKEN_BYTES = 32


@dataclass(frozen=True)
class Grant:
    """What a rotated refresh token vouches for, and its successor."""

    owner: str
    role: str
    scope: tuple[str, ...]
    family_id: uuid.UUID
    token: str


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _new_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_BYTES)).rstrip(b"=").decode()


def _invalid(reason: str) -> ApiError:
    return ApiError(401, "invalid_refresh_token", "Sign in again", reason=reason)


class RefreshTokens:
    def __init__(self, pool: ConnectionPool[Any], *, days: int) -> None:
        self.pool = pool
        self.days = days

    def issue(
        self, owner: str, role: str, scope: Sequence[str] = (), family_id: uuid.UUID | None = None
    ) -> str:
        with self.pool.connection() as conn:
            return self._insert(conn, owner, role, scope, family_id or uuid.uuid4())

    def rotate(self, token: str) -> Grant:
        reused = None
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT owner, role, scope, family_id, used_at IS NOT NULL, "
                "revoked_at IS NOT NULL, expires_at <= now() "
                "FROM auth.refresh_tokens WHERE token_hash = %s FOR UPDATE",
                (_hash(token),),
            ).fetchone()
            if row is None:
                raise _invalid("unknown")
            owner, role, scope, family_id, used, revoked, expired = row
            if revoked:
                raise _invalid("revoked")
            if used:
                self._revoke_family(conn, family_id)
                reused = family_id
            elif expired:
                raise _invalid("expired")
            else:
                conn.execute(
                    "UPDATE auth.refresh_tokens SET used_at = now() WHERE token_hash = %s",
                    (_hash(token),),
                )
                successor = self._insert(conn, owner, role, scope, family_id)
        if reused is not None:  # raised after the commit: the revocation must stick
            raise _invalid("reused")
        return Grant(owner, role, tuple(scope), family_id, successor)

    def revoke(self, token: str) -> bool:
        """Sign out: revoke the family this token belongs to; False if it is unknown."""
        with self.pool.connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT family_id FROM auth.refresh_tokens WHERE token_hash = %s",
                (_hash(token),),
            ).fetchone()
            if row is None:
                return False
            self._revoke_family(conn, row[0])
        return True

    def revoke_owner(self, owner: str, role: str) -> int:
        """Sign an account out everywhere (blocked member, disabled admin)."""
        with self.pool.connection() as conn:
            cur = conn.execute(
                "UPDATE auth.refresh_tokens SET revoked_at = now() "
                "WHERE owner = %s AND role = %s AND revoked_at IS NULL",
                (owner, role),
            )
            return cur.rowcount

    @staticmethod
    def _revoke_family(conn: Any, family_id: uuid.UUID) -> None:
        conn.execute(
            "UPDATE auth.refresh_tokens SET revoked_at = now() "
            "WHERE family_id = %s AND revoked_at IS NULL",
            (family_id,),
        )

    def _insert(
        self, conn: Any, owner: str, role: str, scope: Sequence[str], family_id: uuid.UUID
    ) -> str:
        token = _new_token()
        conn.execute(
            "INSERT INTO auth.refresh_tokens (token_hash, family_id, owner, role, scope, "
            "expires_at) VALUES (%s, %s, %s, %s, %s, now() + make_interval(days => %s))",
            (_hash(token), family_id, owner, role, list(scope), self.days),
        )
        return token
