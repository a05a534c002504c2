"""Password sign-in with lockout, for the back-office tables that hold accounts (admins,
partner accounts): after MAX_FAILURES wrong passwords in a row an account is locked for
LOCK_MINUTES, and while locked no password is even checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from infra.passwords import verify_password

MAX_FAILURES = 5
LOCK_MINUTES = 15

# table -> (id column, login column); the only tables this module touches.
TABLES = {
    "office.admins": ("admin_id", "name"),
    "office.partner_accounts": ("account_id", "account"),
}


@dataclass(frozen=True)
class SignIn:
    outcome: str  # ok | bad_credentials | locked | disabled
    account: dict[str, Any] | None = None
    locked_until: datetime | None = None
    failures: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def authenticate(pool: ConnectionPool, table: str, login: str, password: str) -> SignIn:
    id_column, login_column = TABLES[table]
    with pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT *, locked_until > now() AS is_locked FROM {table} "
            f"WHERE {login_column} = %s FOR UPDATE",
            (login,),
        ).fetchone()
        if row is None:
            verify_password(None, password)  # the same time as a real check
            return SignIn("bad_credentials")
        if row["is_locked"]:
            return SignIn("locked", row, row["locked_until"], row["failed_attempts"])
        if not verify_password(row["password_hash"], password):
            failed = cur.execute(
                f"UPDATE {table} SET failed_attempts = CASE WHEN failed_attempts + 1 >= %s "
                "THEN 0 ELSE failed_attempts + 1 END, "
                "locked_until = CASE WHEN failed_attempts + 1 >= %s "
                "THEN now() + make_interval(mins => %s) ELSE locked_until END "
                f"WHERE {id_column} = %s RETURNING failed_attempts, locked_until, "
                "locked_until > now() AS is_locked",
                (MAX_FAILURES, MAX_FAILURES, LOCK_MINUTES, row[id_column]),
            ).fetchone()
            assert failed is not None
            if failed["is_locked"]:
                return SignIn("locked", row, failed["locked_until"], MAX_FAILURES)
            return SignIn("bad_credentials", row, None, failed["failed_attempts"])
        if row["disabled"]:
            return SignIn("disabled", row)
        cur.execute(
            f"UPDATE {table} SET failed_attempts = 0, locked_until = NULL, "
            f"last_sign_in_at = now() WHERE {id_column} = %s",
            (row[id_column],),
        )
        return SignIn("ok", row)
