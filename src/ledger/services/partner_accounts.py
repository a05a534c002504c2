"""Station login accounts (P1): issued by an admin for one or more stations.

Back-office data that is not money, so a plain table (office.partner_accounts, DESIGN.md 3);
passwords are argon2id hashes; sign-in locks an account after repeated failures
(infra.sign_in).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from infra.passwords import WeakPassword, check_strength, hash_password
from infra.sign_in import SignIn, authenticate
from ledger.errors import DomainError, NotFound

COLUMNS = (
    "account_id, account, name, station_ids, disabled, failed_attempts, locked_until, "
    "last_sign_in_at, created_at, updated_at"
)


class AccountExists(DomainError):
    code = "account_exists"
    status = 409


class PasswordTooWeak(DomainError):
    code = "weak_password"


class InvalidAccount(DomainError):
    code = "invalid_account"


def strong(password: str, name: str) -> str:
    try:
        return check_strength(password, name=name)
    except WeakPassword as exc:
        raise PasswordTooWeak(str(exc)) from None


class PartnerAccountService:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def create(
        self, *, account: str, password: str, name: str, station_ids: list[UUID]
    ) -> dict[str, Any]:
        if not station_ids:
            raise InvalidAccount("an account needs at least one station", field="station_ids")
        strong(password, account)
        try:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    "INSERT INTO office.partner_accounts (account_id, account, name, "
                    f"password_hash, station_ids) VALUES (%s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                    (uuid4(), account, name, hash_password(password), sorted(set(station_ids))),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise AccountExists(f"the account {account!r} exists", account=account) from None
        except psycopg.errors.CheckViolation:
            raise InvalidAccount(
                "an account name is 3-64 letters, digits or _.@-", field="account"
            ) from None
        assert row is not None
        return row

    def get(self, account_id: UUID) -> dict[str, Any]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"SELECT {COLUMNS} FROM office.partner_accounts WHERE account_id = %s",
                (account_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no partner account {account_id}")
        return row

    def all(self, station_id: UUID | None = None) -> list[dict[str, Any]]:
        sql = f"SELECT {COLUMNS} FROM office.partner_accounts"
        params: list[Any] = []
        if station_id is not None:
            sql += " WHERE station_ids @> ARRAY[%s]::uuid[]"
            params.append(station_id)
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql + " ORDER BY account", params).fetchall()

    def update(
        self,
        account_id: UUID,
        *,
        name: str | None = None,
        station_ids: list[UUID] | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Change what is given; returns the account before and after."""
        before = self.get(account_id)
        sets: list[str] = []
        params: list[Any] = []
        if name is not None:
            sets.append("name = %s")
            params.append(name)
        if station_ids is not None:
            if not station_ids:
                raise InvalidAccount("an account needs at least one station", field="station_ids")
            sets.append("station_ids = %s")
            params.append(sorted(set(station_ids)))
        if password is not None:
            strong(password, before["account"])
            sets += ["password_hash = %s", "failed_attempts = 0", "locked_until = NULL"]
            params.append(hash_password(password))
        if disabled is not None:
            sets.append("disabled = %s")
            params.append(disabled)
        if not sets:
            return before, before
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            after = cur.execute(
                f"UPDATE office.partner_accounts SET {', '.join(sets)}, updated_at = now() "
                f"WHERE account_id = %s RETURNING {COLUMNS}",
                [*params, account_id],
            ).fetchone()
        assert after is not None
        return before, after

    def sign_in(self, account: str, password: str) -> SignIn:
        return authenticate(self.pool, "office.partner_accounts", account, password)
