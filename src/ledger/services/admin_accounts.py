"""Administrators and roles (A8): plain back-office tables (DESIGN.md 3).

A role is a name and a set of 'resource:action' permissions; an admin has one role, or is
the super-admin, who may do everything and is created from the command line only.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from infra.passwords import hash_password
from infra.sign_in import SignIn, authenticate
from ledger.errors import DomainError, NotFound
from ledger.services.partner_accounts import AccountExists, InvalidAccount, strong

COLUMNS = (
    "admin_id, name, display_name, role, is_super, disabled, failed_attempts, locked_until, "
    "last_sign_in_at, created_at, updated_at"
)
ROLE_COLUMNS = "name, description, permissions, created_at, updated_at"


class UnknownRole(DomainError):
    code = "unknown_role"


class RoleInUse(DomainError):
    code = "role_in_use"
    status = 409


class LastSuperAdmin(DomainError):
    code = "last_super_admin"
    status = 409


class AdminAccountService:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    # -- admins ------------------------------------------------------------------------------

    def create(
        self,
        *,
        name: str,
        password: str,
        display_name: str = "",
        role: str | None = None,
        is_super: bool = False,
    ) -> dict[str, Any]:
        strong(password, name)
        if role is None and not is_super:
            raise UnknownRole("an admin needs a role", field="role")
        try:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                row = cur.execute(
                    "INSERT INTO office.admins (admin_id, name, display_name, password_hash, "
                    f"role, is_super) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
                    (uuid4(), name, display_name, hash_password(password), role, is_super),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise AccountExists(f"the admin {name!r} exists", name=name) from None
        except psycopg.errors.ForeignKeyViolation:
            raise UnknownRole(f"no role {role!r}", role=str(role)) from None
        except psycopg.errors.CheckViolation:
            raise InvalidAccount("an admin name is 3-64 letters, digits or _.@-") from None
        assert row is not None
        return row

    def get(self, admin_id: UUID) -> dict[str, Any]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"SELECT {COLUMNS} FROM office.admins WHERE admin_id = %s", (admin_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no admin {admin_id}")
        return row

    def all(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(f"SELECT {COLUMNS} FROM office.admins ORDER BY name").fetchall()

    def update(
        self,
        admin_id: UUID,
        *,
        display_name: str | None = None,
        role: str | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        before = self.get(admin_id)
        sets: list[str] = []
        params: list[Any] = []
        if display_name is not None:
            sets.append("display_name = %s")
            params.append(display_name)
        if role is not None:
            sets.append("role = %s")
            params.append(role)
        if password is not None:
            strong(password, before["name"])
            sets += ["password_hash = %s", "failed_attempts = 0", "locked_until = NULL"]
            params.append(hash_password(password))
        if disabled is not None:
            if disabled and before["is_super"]:
                self._keep_a_super_admin(admin_id)
            sets.append("disabled = %s")
            params.append(disabled)
        if not sets:
            return before, before
        try:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                after = cur.execute(
                    f"UPDATE office.admins SET {', '.join(sets)}, updated_at = now() "
                    f"WHERE admin_id = %s RETURNING {COLUMNS}",
                    [*params, admin_id],
                ).fetchone()
        except psycopg.errors.ForeignKeyViolation:
            raise UnknownRole(f"no role {role!r}", role=str(role)) from None
        assert after is not None
        return before, after

    def delete(self, admin_id: UUID) -> dict[str, Any]:
        before = self.get(admin_id)
        if before["is_super"]:
            self._keep_a_super_admin(admin_id)
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM office.admins WHERE admin_id = %s", (admin_id,))
        return before

    def _keep_a_super_admin(self, leaving: UUID) -> None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT count(*) FROM office.admins WHERE is_super AND NOT disabled "
                "AND admin_id <> %s",
                (leaving,),
            ).fetchone()
        if not row or row[0] == 0:
            raise LastSuperAdmin("the last active super-admin cannot be removed or disabled")

    def sign_in(self, name: str, password: str) -> SignIn:
        return authenticate(self.pool, "office.admins", name, password)

    # -- roles -------------------------------------------------------------------------------

    def roles(self) -> list[dict[str, Any]]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(f"SELECT {ROLE_COLUMNS} FROM office.roles ORDER BY name").fetchall()

    def role(self, name: str) -> dict[str, Any]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(
                f"SELECT {ROLE_COLUMNS} FROM office.roles WHERE name = %s", (name,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no role {name!r}")
        return row

    def put_role(
        self, name: str, permissions: list[str], description: str = ""
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Create or replace a role; returns it before (None when new) and after."""
        try:
            before: dict[str, Any] | None = self.role(name)
        except NotFound:
            before = None
        try:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                after = cur.execute(
                    "INSERT INTO office.roles (name, description, permissions) "
                    "VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
                    "description = EXCLUDED.description, permissions = EXCLUDED.permissions, "
                    f"updated_at = now() RETURNING {ROLE_COLUMNS}",
                    (name, description, sorted(set(permissions))),
                ).fetchone()
        except psycopg.errors.CheckViolation:
            raise InvalidAccount("a role name is 2-40 of a-z, 0-9, _ and -", field="name") from None
        assert after is not None
        return before, after

    def delete_role(self, name: str) -> dict[str, Any]:
        before = self.role(name)
        try:
            with self.pool.connection() as conn:
                conn.execute("DELETE FROM office.roles WHERE name = %s", (name,))
        except psycopg.errors.ForeignKeyViolation:
            raise RoleInUse(f"admins still have the role {name!r}", role=name) from None
        return before
