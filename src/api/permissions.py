"""Back-office permissions (A8): every /v1/admin endpoint names one `resource:action`.

    @router.get("/coupon-templates")
    def templates(admin: Principal = Depends(require_permission("coupons", "view"))): ...

An admin token (role "admin") says who is calling; what they may do is read live from their
role in office.roles, so a role edited or an admin disabled takes effect on the next
request. The super-admin (office.admins.is_super, scope "admin:*" in the token) passes every
permission. A token that names no admin row passes only if it carries "admin:*": that is
the super-admin scope, which only the sign-in (or a test holding the JWT secret) can mint.

Partners pass `station_scope(station_id)`: their token carries "station:<id>" per station.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from api.auth import CurrentPrincipal, Principal, forbidden

RESOURCES: tuple[str, ...] = (
    "stations",  # stations, their login accounts and settlement rates (A2)
    "members",  # A3
    "orders",  # fuel orders (A4)
    "mall",  # goods, categories, mall orders (A1, A5)
    "coupons",  # templates, issuing, issued coupons (A6)
    "campaigns",  # campaigns and red packets (A13)
    "distribution",  # referral relations and commissions (A7)
    "withdrawals",  # member and station withdrawals (A7, P5)
    "figures",  # platform figures and reports (A13)
    "journal",  # journal lines and balances
    "admins",  # administrators (A8)
    "roles",  # roles and their permissions (A8)
    "log",  # the admin log (A12)
    "settings",  # SMS, WeChat and payment settings (A9, A10)
    "backups",  # A11
    "exports",  # export jobs and their files
    "tickets",  # customer service and feedback (M15, T5)
    "reconciliation",  # provider statement reconciliation and its exceptions
)
ACTIONS: tuple[str, ...] = ("view", "change", "approve", "export")
CATALOG: tuple[str, ...] = tuple(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)
SUPER_SCOPE = "admin:*"
SUPER_ADMIN_SCOPE: tuple[str, ...] = (SUPER_SCOPE,)
ADMIN_SCOPE: tuple[str, ...] = ("admin",)


@dataclass(frozen=True)
class AdminIdentity:
    """Who an admin token belongs to, and what they may do, as of this request."""

    admin_id: UUID | None
    name: str
    is_super: bool
    permissions: frozenset[str]

    def allows(self, resource: str, action: str) -> bool:
        return self.is_super or f"{resource}:{action}" in self.permissions


def validate_permissions(permissions: list[str]) -> list[str]:
    unknown = sorted(set(permissions) - set(CATALOG))
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(unknown)}")
    return sorted(set(permissions))


def load_identity(pool: ConnectionPool, principal: Principal) -> AdminIdentity:
    try:
        admin_id = principal.id
    except ValueError:
        raise forbidden() from None
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT a.name, a.is_super, a.disabled, coalesce(r.permissions, '{}') "
            "FROM office.admins a LEFT JOIN office.roles r ON r.name = a.role "
            "WHERE a.admin_id = %s",
            (admin_id,),
        ).fetchone()
    if row is None:
        if principal.has_scope(SUPER_SCOPE):
            return AdminIdentity(admin_id, "super-admin", True, frozenset())
        raise forbidden("This admin account does not exist")
    name, is_super, disabled, permissions = row
    if disabled:
        raise forbidden("This admin account is disabled")
    return AdminIdentity(admin_id, name, bool(is_super), frozenset(permissions))


def current_admin(request: Request, principal: CurrentPrincipal) -> AdminIdentity:
    """The calling admin (looked up once per request); 403 for any other role."""
    if principal.role != "admin":
        raise forbidden()
    cached = getattr(request.state, "admin", None)
    if isinstance(cached, AdminIdentity):
        return cached
    identity = load_identity(request.app.state.core.read_pool, principal)
    request.state.admin = identity
    return identity


CurrentAdmin = Annotated[AdminIdentity, Depends(current_admin)]


def require_permission(resource: str, action: str) -> Callable[..., Principal]:
    """A dependency admitting admins whose role grants `resource:action` (and the
    super-admin); it answers 403 problem+json otherwise and returns the Principal."""
    if resource not in RESOURCES or action not in ACTIONS:
        raise ValueError(f"unknown permission {resource}:{action}")

    def check(principal: CurrentPrincipal, admin: CurrentAdmin) -> Principal:
        if not admin.allows(resource, action):
            raise forbidden(f"This needs the permission {resource}:{action}")
        return principal

    check.permission = (resource, action)  # type: ignore[attr-defined]
    check.__name__ = f"require_{resource}_{action}"
    return check


def declared_permission(dependant: Any) -> tuple[str, str] | None:
    """The permission a route (its FastAPI dependant) declares anywhere in its dependencies."""
    for dep in dependant.dependencies:
        found = getattr(dep.call, "permission", None) or declared_permission(dep)
        if found:
            return found  # type: ignore[no-any-return]
    return None


# -- partners ------------------------------------------------------------------------------


def station_scope(station_id: UUID, principal: CurrentPrincipal) -> Principal:
    """For /v1/partner/stations/{station_id}/...: a partner token scoped to that station."""
    if principal.role != "partner" or not principal.has_scope(f"station:{station_id}"):
        raise forbidden("This account is not for that station")
    return principal


StationPartner = Annotated[Principal, Depends(station_scope)]


def partner_stations(principal: Principal) -> list[UUID]:
    return [UUID(s.split(":", 1)[1]) for s in principal.scope if s.startswith("station:")]
