"""Stations' login accounts in the back office (A2, P1): create, list, change, disable."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.admin_log import ChangeLog
from api.auth import RefreshTokensDep
from api.permissions import require_permission
from ledger.errors import NotFound
from ledger.services.partner_accounts import PartnerAccountService

router = APIRouter(tags=["admin"])


def _core(request: Request) -> Any:
    return request.app.state.core


def partner_accounts(request: Request) -> PartnerAccountService:
    return PartnerAccountService(_core(request).read_pool)


Partners = Annotated[PartnerAccountService, Depends(partner_accounts)]


# -- station login accounts (A2, P1) ---------------------------------------------------------


class NewPartnerAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=64)
    station_ids: list[UUID] = Field(min_length=1, max_length=100)


class PartnerAccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=64)
    password: str | None = Field(default=None, min_length=1, max_length=256)
    station_ids: list[UUID] | None = Field(default=None, min_length=1, max_length=100)
    disabled: bool | None = None


def _check_stations(request: Request, station_ids: list[UUID]) -> None:
    with _core(request).read_pool.connection() as conn:
        found = {
            r[0]
            for r in conn.execute(
                "SELECT station_id FROM read.stations WHERE station_id = ANY(%s)", (station_ids,)
            ).fetchall()
        }
    missing = [str(s) for s in station_ids if s not in found]
    if missing:
        raise NotFound(f"no station {missing[0]}", station_id=missing[0])


def _redact(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "password_hash"}


@router.get("/partner-accounts")
def list_partner_accounts(
    partners: Partners,
    station_id: UUID | None = None,
    _: Any = Depends(require_permission("stations", "view")),
) -> dict[str, Any]:
    return {"items": partners.all(station_id)}


@router.post("/partner-accounts", status_code=201)
def add_partner_account(
    body: NewPartnerAccount,
    request: Request,
    partners: Partners,
    log: ChangeLog,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    """A login account for one or more stations."""
    _check_stations(request, body.station_ids)
    row = partners.create(
        account=body.account, password=body.password, name=body.name, station_ids=body.station_ids
    )
    log.change("stations", "add_account", target=str(row["account_id"]), after=_redact(row))
    return row


@router.patch("/partner-accounts/{account_id}")
def edit_partner_account(
    account_id: UUID,
    body: PartnerAccountPatch,
    request: Request,
    partners: Partners,
    refresh: RefreshTokensDep,
    log: ChangeLog,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    """Rename, reset the password, change the stations, disable or enable. A changed
    password, stations or disabling signs the account out everywhere."""
    if body.station_ids is not None:
        _check_stations(request, body.station_ids)
    before, after = partners.update(account_id, **body.model_dump(exclude_none=True))
    if body.password is not None or body.station_ids is not None or body.disabled:
        refresh.revoke_owner(str(account_id), "partner")
    detail = {"password_reset": True} if body.password is not None else None
    log.change(
        "stations",
        "edit_account",
        target=str(account_id),
        before=_redact(before),
        after=_redact(after),
        detail=detail,
    )
    return after
