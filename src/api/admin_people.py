"""Administrators, roles and the permission catalog (A8); the admin log (A12)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.admin_log import AdminLogDep, ChangeLog
from api.auth import RefreshTokensDep
from api.errors import ApiError
from api.instants import Instant
from api.permissions import ACTIONS, CATALOG, RESOURCES, CurrentAdmin, require_permission
from ledger.services.admin_accounts import AdminAccountService

router = APIRouter(tags=["admin: admins and roles"])


def admin_accounts(request: Request) -> AdminAccountService:
    return AdminAccountService(request.app.state.core.read_pool)


Admins = Annotated[AdminAccountService, Depends(admin_accounts)]


class NewAdmin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=256)
    display_name: str = Field(default="", max_length=64)
    role: str = Field(min_length=2, max_length=40)


class AdminPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, max_length=64)
    role: str | None = Field(default=None, min_length=2, max_length=40)
    password: str | None = Field(default=None, min_length=1, max_length=256)
    disabled: bool | None = None


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(default="", max_length=200)
    permissions: list[str] = Field(max_length=len(CATALOG))

    @field_validator("permissions")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(CATALOG))
        if unknown:
            raise ValueError(f"unknown permissions: {', '.join(unknown)}")
        return sorted(set(value))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "password_hash"}


@router.get("/permissions")
def permission_catalog(_: Any = Depends(require_permission("roles", "view"))) -> dict[str, Any]:
    """Every permission a role may grant: resource x action."""
    return {"resources": list(RESOURCES), "actions": list(ACTIONS), "permissions": list(CATALOG)}


@router.get("/admins")
def list_admins(admins: Admins, _: Any = Depends(require_permission("admins", "view"))) -> dict:
    return {"items": admins.all()}


@router.post("/admins", status_code=201)
def add_admin(
    body: NewAdmin,
    admins: Admins,
    log: ChangeLog,
    _: Any = Depends(require_permission("admins", "change")),
) -> dict[str, Any]:
    """An admin with a role (super-admins are made with `ledger admin create` only)."""
    row = admins.create(
        name=body.name, password=body.password, display_name=body.display_name, role=body.role
    )
    log.change("admins", "add", target=str(row["admin_id"]), after=_public(row))
    return row


@router.get("/admins/{admin_id}")
def get_admin(
    admin_id: UUID, admins: Admins, _: Any = Depends(require_permission("admins", "view"))
) -> dict[str, Any]:
    return admins.get(admin_id)


@router.patch("/admins/{admin_id}")
def edit_admin(
    admin_id: UUID,
    body: AdminPatch,
    admins: Admins,
    refresh: RefreshTokensDep,
    log: ChangeLog,
    me: CurrentAdmin,
    _: Any = Depends(require_permission("admins", "change")),
) -> dict[str, Any]:
    """Change the role, reset the password, disable or enable; a reset or a disable signs
    the admin out everywhere."""
    if body.disabled and me.admin_id == admin_id:
        raise ApiError(409, "cannot_disable_self", "An admin cannot disable their own account")
    before, after = admins.update(admin_id, **body.model_dump(exclude_none=True))
    if body.password is not None or body.disabled:
        refresh.revoke_owner(str(admin_id), "admin")
    log.change(
        "admins",
        "edit",
        target=str(admin_id),
        before=_public(before),
        after=_public(after),
        detail={"password_reset": True} if body.password is not None else None,
    )
    return after


@router.delete("/admins/{admin_id}")
def delete_admin(
    admin_id: UUID,
    admins: Admins,
    refresh: RefreshTokensDep,
    log: ChangeLog,
    me: CurrentAdmin,
    _: Any = Depends(require_permission("admins", "change")),
) -> dict[str, Any]:
    if me.admin_id == admin_id:
        raise ApiError(409, "cannot_delete_self", "An admin cannot delete their own account")
    before = admins.delete(admin_id)
    refresh.revoke_owner(str(admin_id), "admin")
    log.change("admins", "delete", target=str(admin_id), before=_public(before))
    return {"deleted": str(admin_id)}


@router.get("/roles")
def list_roles(admins: Admins, _: Any = Depends(require_permission("roles", "view"))) -> dict:
    return {"items": admins.roles()}


@router.get("/roles/{name}")
def get_role(
    name: str, admins: Admins, _: Any = Depends(require_permission("roles", "view"))
) -> dict[str, Any]:
    return admins.role(name)


@router.put("/roles/{name}")
def put_role(
    name: str,
    body: RoleBody,
    admins: Admins,
    log: ChangeLog,
    _: Any = Depends(require_permission("roles", "change")),
) -> dict[str, Any]:
    """Create or replace a role; its admins have the new permissions on their next request."""
    before, after = admins.put_role(name, body.permissions, body.description)
    log.change("roles", "put", target=name, before=before, after=after)
    return after


@router.delete("/roles/{name}")
def delete_role(
    name: str,
    admins: Admins,
    log: ChangeLog,
    _: Any = Depends(require_permission("roles", "change")),
) -> dict[str, Any]:
    """Delete a role no admin has (409 otherwise)."""
    before = admins.delete_role(name)
    log.change("roles", "delete", target=name, before=before)
    return {"deleted": name}


@router.get("/log")
def admin_log(
    log: AdminLogDep,
    _: Any = Depends(require_permission("log", "view")),
    admin_id: UUID | None = None,
    admin_name: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    resource: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=32)] = None,
    target: Annotated[str | None, Query(max_length=200)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Sign-ins and changes, newest first, filtered."""
    return log.list(
        limit=limit,
        cursor=cursor,
        admin_id=admin_id,
        admin_name=admin_name,
        action=action,
        resource=resource,
        outcome=outcome,
        target=target,
        since=since,
        until=until,
    )
