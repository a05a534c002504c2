"""The operator back office under /v1/admin: sign-in, stations and their login accounts (A2),
members (A3), fuel orders and journal lines (A4).

Every route declares a permission with `require_permission(resource, action)` (the matrix
test walks app.routes and fails on one that does not); every change goes to the admin log.
Admins and roles, the log, settings, backups, exports and tickets are routers of their own,
included at the bottom.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from api import (
    admin_backups,
    admin_lists,
    admin_people,
    admin_settings,
    admin_station_accounts,
    exports,
    tickets,
)
from api.admin_log import AdminLog, ChangeLog, client_ip
from api.auth import RefreshTokensDep, SettingsDep, issue_session
from api.errors import ApiError
from api.permissions import ADMIN_SCOPE, SUPER_ADMIN_SCOPE, CurrentAdmin, require_permission
from ledger.errors import NotFound
from ledger.services.admin_accounts import AdminAccountService
from ledger.services.partner_accounts import PartnerAccountService, strong
from projections import office_queries as q

router = APIRouter(prefix="/v1/admin", tags=["admin"])
Limit = Annotated[int, Query(ge=1, le=200)]
OrderStatus = Literal["created", "paying", "paid", "expired", "refunded", "partially_refunded"]
Method = Literal["card", "wechat", "alipay"]


def _core(request: Request) -> Any:
    return request.app.state.core


def admin_accounts(request: Request) -> AdminAccountService:
    return AdminAccountService(_core(request).read_pool)


def partner_accounts(request: Request) -> PartnerAccountService:
    return PartnerAccountService(_core(request).read_pool)


Admins = Annotated[AdminAccountService, Depends(admin_accounts)]
Partners = Annotated[PartnerAccountService, Depends(partner_accounts)]


# -- sign-in ---------------------------------------------------------------------------------


class SignInRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


@router.post("/auth/sign-in")
def sign_in(
    body: SignInRequest,
    request: Request,
    admins: Admins,
    settings: SettingsDep,
    refresh: RefreshTokensDep,
) -> dict[str, Any]:
    """Name and password -> tokens. Every attempt is logged with its IP; five wrong
    passwords in a row lock the account for 15 minutes."""
    result = admins.sign_in(body.name, body.password)
    account = result.account
    AdminLog(_core(request).read_pool).record(
        action="admin.sign_in",
        resource="admins",
        outcome=result.outcome,
        admin_id=account["admin_id"] if account else None,
        admin_name=body.name,
        ip=client_ip(request),
        detail={"failures": result.failures} if result.failures else None,
    )
    if result.outcome == "locked":
        until = result.locked_until.isoformat() if result.locked_until else ""
        raise ApiError(
            429, "account_locked", "Too many wrong passwords; try again later", locked_until=until
        )
    if not result.ok or account is None:
        raise ApiError(401, "invalid_credentials", "Wrong name or password")
    scope = SUPER_ADMIN_SCOPE if account["is_super"] else ADMIN_SCOPE
    tokens = issue_session(settings, refresh, account["admin_id"], "admin", scope)
    return {**tokens, "admin": _admin_view(account)}


def _admin_view(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("admin_id", "name", "display_name", "role", "is_super")}


@router.get("/auth/me")
def me(admin: CurrentAdmin) -> dict[str, Any]:
    """Who is signed in, and what they may do."""
    return {
        "admin_id": admin.admin_id,
        "name": admin.name,
        "is_super": admin.is_super,
        "permissions": sorted(admin.permissions),
    }


# -- stations (A2) ---------------------------------------------------------------------------


class GradeSetup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nozzles: list[int] = Field(min_length=1, max_length=50)
    price_fen_per_litre: int | None = Field(default=None, ge=1, le=100_000)


class LoginAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str = Field(min_length=3, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    name: str = Field(default="", max_length=64)


class NewStation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: str = Field(min_length=1, max_length=80)
    address: str = Field(max_length=200)
    phone: str = Field(max_length=32)
    lat_e6: int = Field(ge=-90_000_000, le=90_000_000)
    lng_e6: int = Field(ge=-180_000_000, le=180_000_000)
    settlement_rate_bps: int = Field(ge=0, le=3_000)
    rating: int = Field(default=0, ge=0, le=50)
    grades: dict[str, GradeSetup] = Field(default_factory=dict)
    login: LoginAccount | None = None


class StationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=80)
    address: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    lat_e6: int | None = Field(default=None, ge=-90_000_000, le=90_000_000)
    lng_e6: int | None = Field(default=None, ge=-180_000_000, le=180_000_000)
    settlement_rate_bps: int | None = Field(default=None, ge=0, le=3_000)
    rating: int | None = Field(default=None, ge=0, le=50)
    status: Literal["open", "closed"] | None = None


class PriceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    price_fen_per_litre: int = Field(ge=1, le=100_000)


@router.get("/stations")
def list_stations(
    request: Request,
    _: Any = Depends(require_permission("stations", "view")),
    q_: Annotated[str | None, Query(alias="q", max_length=80)] = None,
    status: Literal["open", "closed"] | None = None,
    limit: Limit = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Stations by code with their income (unsettled, available, held, total earned)."""
    return q.stations(_core(request).read_pool, q=q_, status=status, limit=limit, cursor=cursor)


@router.post("/stations", status_code=201)
def add_station(
    body: NewStation,
    request: Request,
    log: ChangeLog,
    partners: Partners,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    """Register a station, optionally with its grades, prices and a login account."""
    catalog = _core(request).catalog
    if body.login is not None:  # refuse a weak password before anything is recorded
        strong(body.login.password, body.login.account)
    profile = body.model_dump(exclude={"grades", "login"})
    station = catalog.register(**profile)
    station_id = UUID(station["station_id"])
    for grade, setup in body.grades.items():
        station = catalog.configure_grade(station_id, grade, setup.nozzles)
        if setup.price_fen_per_litre is not None:
            catalog.change_price(
                station_id, grade, setup.price_fen_per_litre, log.actor, key=f"register:{grade}"
            )
            station = catalog.get(station_id)
    account = None
    if body.login is not None:
        account = partners.create(
            account=body.login.account,
            password=body.login.password,
            name=body.login.name,
            station_ids=[station_id],
        )
    log.change(
        "stations",
        "add",
        target=str(station_id),
        after={**station, "login": account and account["account"]},
    )
    return {**station, "login": account}


@router.get("/stations/{station_id}")
def get_station(
    station_id: UUID, request: Request, _: Any = Depends(require_permission("stations", "view"))
) -> dict[str, Any]:
    row = q.station(_core(request).read_pool, station_id)
    if row is None:
        raise NotFound(f"no station {station_id}")
    row["accounts"] = PartnerAccountService(_core(request).read_pool).all(station_id)
    return row


@router.patch("/stations/{station_id}")
def edit_station(
    station_id: UUID,
    body: StationPatch,
    request: Request,
    log: ChangeLog,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    """Change profile fields, the settlement rate or the status (open/closed)."""
    catalog = _core(request).catalog
    fields = body.model_dump(exclude_none=True)
    before = catalog.get(station_id)
    after = catalog.edit(station_id, **fields)
    if after["changed"]:
        log.change(
            "stations",
            "edit",
            target=str(station_id),
            before={k: before[k] for k in after["changed"]},
            after={k: after[k] for k in after["changed"]},
        )
    return after


@router.put("/stations/{station_id}/grades/{grade}")
def configure_grade(
    station_id: UUID,
    grade: str,
    body: GradeSetup,
    request: Request,
    log: ChangeLog,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    """Which nozzles dispense a grade (and optionally its price); '#' is sent as %23."""
    catalog = _core(request).catalog
    before = catalog.get(station_id)["grades"].get(grade)
    station = catalog.configure_grade(station_id, grade, body.nozzles)
    if body.price_fen_per_litre is not None:
        catalog.change_price(
            station_id, grade, body.price_fen_per_litre, log.actor, key=_key(request)
        )
        station = catalog.get(station_id)
    log.change(
        "stations",
        "configure_grade",
        target=f"{station_id}/{grade}",
        before=before,
        after=station["grades"].get(grade),
    )
    return station


@router.put("/stations/{station_id}/prices/{grade}")
def set_price(
    station_id: UUID,
    grade: str,
    body: PriceRequest,
    request: Request,
    log: ChangeLog,
    _: Any = Depends(require_permission("stations", "change")),
) -> dict[str, Any]:
    result = _core(request).catalog.change_price(
        station_id,
        grade,
        body.price_fen_per_litre,
        log.actor,
        key=_key(request),
    )
    if result["changed"]:
        log.change(
            "stations",
            "change_price",
            target=f"{station_id}/{grade}",
            before=result["previous_fen_per_litre"],
            after=body.price_fen_per_litre,
        )
    return result


def _key(request: Request) -> str:
    return request.headers.get("Idempotency-Key") or uuid4().hex


for _sub in (
    admin_lists.router,
    admin_station_accounts.router,
    admin_people.router,
    admin_settings.router,
    admin_backups.router,
    exports.router,
    tickets.admin_router,
):
    router.include_router(_sub)
